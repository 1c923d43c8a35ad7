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
periodic evaluation, engine options such as a server URL), and records them in the run; resuming
a run that already finished all its rounds says so and changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from coevo.agents.role import Grader
from coevo.engines.base import Engine
from coevo.memory.journal import Heartbeat
from coevo.memory.store import DB_NAME, Store, sqlite_url
from coevo.society.bus import EventBus
from coevo.society.config import SocietyConfig
from coevo.society.loading import load_config
from coevo.society.runner import RoundReport, SocietyRunner, build_society
from coevo.society.secrets import expand, mask

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
)
# Overrides a resume accepts: they change how or how long a run goes on, not what a round does.
RESUMABLE = (
    "schedule.rounds",
    "schedule.max_concurrency",
    "schedule.eval_every",
    "schedule.eval_problems",
    "schedule.eval_max_tokens",
    "engines.*.options",
)
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
    snapshot = mask(config.model_dump(mode="json", exclude_none=True))
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
    refused = [o for o in overrides if not _resumable(o.partition("=")[0].strip())]
    if refused:
        raise RunDirError(
            f"--resume cannot apply {', '.join(refused)}: it would change what the run's rounds do, "
            f"so the resumed rounds would not continue the same run; it accepts: {', '.join(RESUMABLE)} "
            "(start a new run to change anything else)"
        )
    return load_config(path, overrides)


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
    `grader` replaces the process's shared verifier;
    `overrides` are the resume's `--set`s, recorded in the run."""
    from coevo.tasks.verifier import default_verifier

    run_id = run_id_for(run_dir) if resume else prepare_run_dir(config, run_dir, force=force)
    store = Store(memory_url(config, run_dir))
    run = store.get_run(run_id)
    if run is None:
        if resume:
            raise RunDirError(
                f"{run_dir} holds no run {run_id} in its memory ({store.url}); nothing to resume"
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
            store.put_state(
                run_id, RESUMES_KEY, [*history, {"after_round": last, "overrides": overrides}], last
            )
            write_snapshot(config, run_dir)
    bus = bus or EventBus()
    store.set_status(run_id, "running")
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(Heartbeat(store, run_id))
            # The process's verifier: its workers outlive a run, so runs in one process (tests, the
            # demo's repeats) pay for starting them once.
            verifier = grader if grader is not None else default_verifier()
            society = build_society(config, verifier, engines)
            try:
                runner = SocietyRunner(society, store, run_id, run_dir, verifier, bus=bus)
                start = await runner.restore()
                reports = await runner.run(start)
            finally:
                await society.close()
    except BaseException:
        store.set_status(run_id, "failed")
        bus.close()
        raise
    store.set_status(run_id, "finished")
    return RunOutcome(run_id=run_id, run_dir=run_dir, reports=reports)
