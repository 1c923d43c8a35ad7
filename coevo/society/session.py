"""Starting, resuming and finishing a run: the run folder (its marker, config snapshot, database,
adapters), the store, the verifier, the society's engines and agents, liveness, and the runner.

A run folder carries a marker file (`.coevo-run`) written by coevo with the run's id, so:
- a moved or copied folder resumes as the same run (the id is read, not derived from the path);
- `coevo run` never writes into a folder it did not create: it refuses a non-empty folder without
  the marker, and a folder that holds a run unless `--resume` (continue from the last committed
  round) or `--force` (start over);
- `--force` deletes only what coevo created there (marker, snapshot, database, adapters), never
  the current directory or a parent of it, and with an external `memory.url` it also deletes that
  run's rows, so a forced run really starts over.

`--resume` accepts only overrides that leave what a round does unchanged (more rounds, concurrency,
periodic evaluation, the engine options that leave what is sampled unchanged, such as a server URL
(RESUMABLE_ENGINE_OPTIONS), the memory URL), and records them in the run with their secrets masked
(coevo.society.secrets); resuming a run that already finished all its rounds says so and changes
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from coevo.engines.base import Engine
from coevo.memory.journal import Heartbeat
from coevo.memory.store import DB_NAME, Store, sqlite_url
from coevo.society.bus import EventBus
from coevo.society.config import SocietyConfig, parse_structure, read_config_text
from coevo.society.loading import load_config
from coevo.society.logs import LOG_NAME, run_log
from coevo.society.runner import RoundReport, SocietyRunner, build_society
from coevo.society.secrets import expand, mask, mask_override, mask_url
from coevo.tasks.verifier import Grader

log = logging.getLogger(__name__)

CONFIG_SNAPSHOT = "config.yaml"
MARKER = ".coevo-run"
# What coevo creates in a run folder (all that `--force` may delete there).
CREATED = (
    MARKER,
    CONFIG_SNAPSHOT,
    DB_NAME,
    f"{DB_NAME}-wal",
    f"{DB_NAME}-shm",
    f"{DB_NAME}-journal",
    "adapters",
    LOG_NAME,
)
# Overrides a resume accepts: they change how or how long a run goes on, not what a round does.
RESUMABLE = (
    "schedule.rounds",
    "schedule.max_concurrency",
    "schedule.eval_every",
    "schedule.eval_problems",
    "schedule.eval_max_tokens",
    "engines.*.options",
    # Where the run's memory is (the same database, or its password given again): a resume finds
    # its run there or stops.
    "memory.url",
)
# Of an engine's options (`engines.*.options` above), those a resume may change, per engine as its
# kind resolves here: how the engine is reached and how much it holds at once, never what a round
# samples. Every other option is refused: a seed, a dtype or device, max_model_len (what fits in a
# prompt), enforce_eager (vLLM's eager mode samples differently), lora_serving (merged weights and
# adapters differ in their last bits), return_token_ids (what is recorded of each sample), and any
# of vLLM's own engine arguments.
RESUMABLE_ENGINE_OPTIONS: dict[str, frozenset[str]] = {
    # The server's address and key, and how patiently and how concurrently it is asked.
    "openai": frozenset(
        {"base_url", "api_key", "api_key_env", "max_retries", "backoff_s", "timeout_s", "max_concurrency"}
    ),
    # Its share of GPU memory and its adapter slots: how much is batched at once, like
    # schedule.max_concurrency, not how a request is sampled.
    "vllm": frozenset({"gpu_memory_utilization", "max_loras"}),
    # Micro-batching: each sample row draws from its own seeded generator, whatever its batch mates.
    "transformers": frozenset({"max_batch_size", "batch_window_ms"}),
}
RESUMES_KEY = "resume_overrides"


class RunDirError(ValueError):
    """A run folder that cannot be used as asked (exists, not coevo's, nothing to resume, ...)."""


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    reports: list[RoundReport]
    # True when a resumed run had already finished all its rounds (nothing was done).
    already_finished: bool = False
    notes: list[str] = field(default_factory=list)


def default_run_dir(config: SocietyConfig) -> Path:
    return Path(config.run_dir) if config.run_dir else Path("runs") / config.name


def run_id_for(run_dir: Path) -> str:
    """The run's id: stored in its folder's marker; for a new folder, derived from its path."""
    marker = run_dir / MARKER
    if marker.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return str(json.loads(marker.read_text())["run_id"])
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]
    return f"{run_dir.name}-{digest}"


def memory_url(config: SocietyConfig, run_dir: Path) -> str:
    return expand(config.memory.url, "memory.url") if config.memory.url else sqlite_url(run_dir)


def write_snapshot(config: SocietyConfig, run_dir: Path) -> None:
    """The config as YAML, literal secrets masked (coevo.society.secrets)."""
    # Nulls are kept: some mean something (`max_turns: null` is an unbounded edge, not the default).
    snapshot = mask(config.model_dump(mode="json"))
    (run_dir / CONFIG_SNAPSHOT).write_text(yaml.safe_dump(snapshot, sort_keys=False))


def prepare_run_dir(config: SocietyConfig, run_dir: Path, *, force: bool) -> str:
    """Make (or, with `force`, clear) the run folder; return the new run's id."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a folder for a run")
    resolved = run_dir.resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        if not (run_dir / MARKER).exists():
            raise RunDirError(
                f"{run_dir} is not empty and holds no coevo run (no {MARKER} marker); "
                "coevo only writes into new or empty folders, or its own run folders"
            )
        if not force:
            raise RunDirError(
                f"{run_dir} already holds a run; use --resume {run_dir} to continue it "
                "or --force to start over"
            )
        cwd = Path.cwd().resolve()
        if resolved == cwd or resolved in cwd.parents:
            raise RunDirError(f"--force will not clear {run_dir}: it is the current folder or a parent of it")
        if config.memory.url:  # the database is elsewhere: the old run's rows must go too
            store = Store(memory_url(config, run_dir))
            try:
                store.delete_run(run_id_for(run_dir))
            finally:
                store.close()
        for name in CREATED:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        run_id = run_id_for(run_dir)
        (run_dir / MARKER).write_text(json.dumps({"run_id": run_id, "name": config.name}) + "\n")
        write_snapshot(config, run_dir)
    except OSError as exc:
        raise RunDirError(f"cannot write the run folder {run_dir}: {exc.strerror or exc}") from exc
    return run_id


def load_snapshot(run_dir: Path, overrides: list[str]) -> SocietyConfig:
    """A run's config from its folder, with the overrides a resume may apply (others refused)."""
    path = run_dir / CONFIG_SNAPSHOT
    if not (run_dir / MARKER).exists() or not path.exists():
        raise RunDirError(f"{run_dir} holds no run to resume (no {MARKER} or {CONFIG_SNAPSHOT})")
    # Named with their values masked: a refused override may still hold a key.
    refused = [mask_override(o) for o in overrides if not _resumable(o.partition("=")[0].strip())]
    if refused:
        raise RunDirError(
            f"--resume cannot apply {', '.join(refused)}: it would change what the run's rounds do, "
            f"so the resumed rounds would not continue the same run; it accepts: {', '.join(RESUMABLE)} "
            "(start a new run to change anything else)"
        )
    config = load_config(path, overrides)
    changed = _engine_option_changes(parse_structure(read_config_text(path), str(path)), config)
    if changed:
        allowed = "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in RESUMABLE_ENGINE_OPTIONS.items())
        raise RunDirError(
            f"--resume cannot change {', '.join(changed)}: it would change what the engine samples, so "
            "the resumed rounds would not continue the same run; a resume may change only these engine "
            f"options: {allowed}"
        )
    return config


def _engine_option_changes(before: SocietyConfig, after: SocietyConfig) -> list[str]:
    """The engine options (as `engines.NAME.options.KEY`) that `after` adds, drops or changes and
    that RESUMABLE_ENGINE_OPTIONS does not allow for the engine's kind."""
    from coevo.engines.factory import resolve_kind_quietly

    changed = []
    for name, engine in after.engines.items():
        old = before.engines[name].options if name in before.engines else {}
        allowed = RESUMABLE_ENGINE_OPTIONS.get(resolve_kind_quietly(engine.kind), frozenset())
        for key in sorted(old.keys() | engine.options.keys()):
            differs = (key in old) != (key in engine.options) or old.get(key) != engine.options.get(key)
            if differs and key not in allowed:
                changed.append(f"engines.{name}.options.{key}")
    return changed


def _resumable(key: str) -> bool:
    parts = key.split(".")
    for allowed in RESUMABLE:
        pattern = allowed.split(".")
        if len(parts) >= len(pattern) and all(p in ("*", k) for p, k in zip(pattern, parts, strict=False)):
            return True
    return False


async def run_society(
    config: SocietyConfig,
    run_dir: Path,
    *,
    resume: bool,
    force: bool = False,
    engines: dict[str, Engine] | None = None,
    bus: EventBus | None = None,
    grader: Grader | None = None,
    overrides: list[str] | None = None,
) -> RunOutcome:
    """Run (or resume) a society to its last round. `engines` replaces configured engines by name;
    `grader` replaces the verifier the run starts (and closes) for itself;
    `overrides` are the resume's `--set`s, recorded in the run."""
    from coevo.tasks.verifier import Verifier

    run_id = run_id_for(run_dir) if resume else prepare_run_dir(config, run_dir, force=force)
    store = Store(memory_url(config, run_dir))
    run = store.get_run(run_id)
    if run is None:
        if resume:
            raise RunDirError(
                f"{run_dir} holds no run {run_id} in its memory ({mask_url(store.url)}); nothing to resume"
            )
        store.create_run(
            run_id=run_id,
            name=config.name,
            config_json=json.dumps(mask(config.model_dump(mode="json"))),
            seed=config.seed,
            agents=[
                {
                    "name": n,
                    "role": a.role,
                    # An agent without a model (a procedural Teacher) runs on no engine.
                    "engine": a.engine or "procedural",
                    "model": config.engines[a.engine].model if a.engine else None,
                    "trainable": a.trainable,
                }
                for n, a in config.agents.items()
            ],
        )
    elif resume:
        last = store.last_committed_round(run_id)
        if run.status == "finished" and last >= config.schedule.rounds - 1:
            return RunOutcome(run_id, run_dir, [], already_finished=True)
        if overrides:
            history = store.get_state(run_id, RESUMES_KEY) or []
            # A literal key given again is used, not stored: only its mask is recorded.
            recorded = {"after_round": last, "overrides": [mask_override(o) for o in overrides]}
            store.put_state(run_id, RESUMES_KEY, [*history, recorded], last)
            write_snapshot(config, run_dir)
    bus = bus or EventBus()
    with run_log(run_dir):
        log.info("run %s %s in %s", run_id, "resumes" if resume else "starts", run_dir)
        store.set_status(run_id, "running")
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(Heartbeat(store, run_id))
                # The run owns its verifier's worker processes: they end with the run.
                verifier = grader if grader is not None else await stack.enter_async_context(Verifier())
                society = build_society(config, verifier, engines)
                try:
                    runner = SocietyRunner(society, store, run_id, run_dir, verifier, bus=bus)
                    start = await runner.restore()
                    reports = await runner.run(start)
                finally:
                    await society.close()
        except (KeyboardInterrupt, asyncio.CancelledError):
            store.set_status(run_id, "failed")
            bus.close()
            log.warning("run %s stopped before its end; coevo run --resume %s continues it", run_id, run_dir)
            raise
        except BaseException as exc:
            store.set_status(run_id, "failed")
            bus.close()
            log.error("run %s failed", run_id, exc_info=exc)
            raise
        store.set_status(run_id, "finished")
        log.info("run %s finished", run_id)
    return RunOutcome(run_id=run_id, run_dir=run_dir, reports=reports)
