"""Starting, resuming and finishing a run: the run directory (config snapshot, database,
adapters), the store, the society's engines and agents, and the runner.

A run directory that already holds a run is never overwritten by accident: `coevo run` refuses
unless `--resume` (continue from the last committed round) or `--force` (start over).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from coevo.engines.base import Engine
from coevo.memory.store import DB_NAME, Store, sqlite_url
from coevo.society.bus import EventBus
from coevo.society.config import SocietyConfig, load_config
from coevo.society.runner import RoundReport, SocietyRunner, build_society

CONFIG_SNAPSHOT = "config.yaml"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, or has nothing to resume)."""


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    reports: list[RoundReport]


def default_run_dir(config: SocietyConfig) -> Path:
    return Path(config.run_dir) if config.run_dir else Path("runs") / config.name


def run_id_for(run_dir: Path) -> str:
    """Stable per run directory, so a resumed process finds its run in a shared database."""
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]
    return f"{run_dir.name}-{digest}"


def memory_url(config: SocietyConfig, run_dir: Path) -> str:
    return config.memory.url or sqlite_url(run_dir)


def prepare_run_dir(config: SocietyConfig, run_dir: Path, *, force: bool) -> None:
    holds_run = (run_dir / CONFIG_SNAPSHOT).exists() or (run_dir / DB_NAME).exists()
    if holds_run and not force:
        raise RunDirError(
            f"{run_dir} already holds a run; use --resume {run_dir} to continue it or --force to start over"
        )
    if holds_run:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    snapshot = config.model_dump(mode="json", exclude_none=True)
    (run_dir / CONFIG_SNAPSHOT).write_text(yaml.safe_dump(snapshot, sort_keys=False))


def load_snapshot(run_dir: Path, overrides: list[str]) -> SocietyConfig:
    path = run_dir / CONFIG_SNAPSHOT
    if not path.exists():
        raise RunDirError(f"{run_dir} holds no run to resume (no {CONFIG_SNAPSHOT})")
    return load_config(path, overrides)


async def run_society(
    config: SocietyConfig,
    run_dir: Path,
    *,
    resume: bool,
    force: bool = False,
    engines: dict[str, Engine] | None = None,
    bus: EventBus | None = None,
) -> RunOutcome:
    """Run (or resume) a society to its last round. `engines` replaces configured engines by name."""
    if not resume:
        prepare_run_dir(config, run_dir, force=force)
    store = Store(memory_url(config, run_dir))
    run_id = run_id_for(run_dir)
    if store.get_run(run_id) is None:
        store.create_run(
            run_id=run_id,
            name=config.name,
            config_json=config.model_dump_json(),
            seed=config.seed,
            agents=[
                {
                    "name": n,
                    "role": a.role,
                    # A procedural Teacher runs on no engine: it computes its problems.
                    "engine": a.engine or "procedural",
                    "model": config.engines[a.engine].model if a.engine else None,
                    "trainable": a.trainable,
                }
                for n, a in config.agents.items()
            ],
        )
    society = build_society(config, engines)
    runner = SocietyRunner(society, store, run_id, run_dir, bus=bus)
    store.set_status(run_id, "running")
    try:
        start = await runner.restore()
        reports = await runner.run(start)
    except BaseException:
        store.set_status(run_id, "failed")
        raise
    finally:
        await society.close()
    store.set_status(run_id, "finished")
    return RunOutcome(run_id=run_id, run_dir=run_dir, reports=reports)
