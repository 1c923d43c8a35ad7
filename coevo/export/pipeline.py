"""`export_dataset`: one export from start to finish — open the run, select, build the kind's rows,
clean them, write the data files in batches and the card, and move the result into place.

The output is assembled in a hidden folder next to `out` and renamed into place at the end, so an
interrupted or failed export never leaves a half-written dataset where a finished one is expected.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coevo.export.card import CardFacts, Counts, render_card
from coevo.export.clean import Decontaminator, Deduplicator
from coevo.export.kinds import KINDS, Kind, KindContext
from coevo.export.selection import Filters, RunView
from coevo.export.source import ExportError, OpenedRun, open_run
from coevo.export.writer import FORMATS, DataWriter
from coevo.trainers.common import TrainSettings


@dataclass(frozen=True)
class ExportRequest:
    run_dir: Path
    kind: str
    out: Path
    format: str = "hf"
    filters: Filters = field(default_factory=Filters)
    agent: str | None = None
    # JSONL evaluation sets to decontaminate against, besides the built-in ones.
    decontaminate: tuple[Path, ...] = ()
    keep_duplicates: bool = False
    force: bool = False
    # Rows read from the memory (and written) per batch.
    batch_size: int = 5000
    # How the export was asked for, quoted in the card.
    command: str = ""


@dataclass
class ExportReport:
    out: Path
    rows: int
    files: list[Path]
    exact_duplicates: int
    near_duplicates: int
    # Evaluation set -> rows removed as contaminated by it.
    contaminated: Counter[str]
    seconds: float


def export_dataset(request: ExportRequest) -> ExportReport:
    """Write the export `request` asks for; ExportError (nothing written) when it cannot."""
    started = time.perf_counter()
    kind = KINDS.get(request.kind)
    if kind is None:
        raise ExportError(f"unknown kind {request.kind!r}; expected one of {', '.join(KINDS)}")
    if request.format not in FORMATS:
        raise ExportError(f"unknown format {request.format!r}; expected one of {', '.join(FORMATS)}")
    out = request.out
    run_dir = request.run_dir.resolve()
    if out.resolve() in (run_dir, *run_dir.parents):
        raise ExportError(f"--out {out} holds the run itself; write the export somewhere else")
    if out.exists() and not (out.is_dir() and (request.force or not any(out.iterdir()))):
        raise ExportError(f"{out} already exists and is not an empty folder; use --force to replace it")
    run = open_run(request.run_dir)
    try:
        return _export(request, kind, run, started)
    finally:
        run.close()


def _export(request: ExportRequest, kind: Kind, run: OpenedRun, started: float) -> ExportReport:
    view = RunView(run, request.filters, request.batch_size)
    agent = _agent(kind, run, request.agent)
    context = KindContext(view, agent, request.batch_size)
    decontaminator = Decontaminator(run.config, request.decontaminate)
    dedup = Deduplicator()
    counts = Counts(view)
    removed: Counter[str] = Counter()
    out = request.out
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    schema = kind.schema()
    writer = DataWriter(partial, request.format, schema)
    try:
        batch = []
        for record in kind.records(context):
            problems = (*record.problems, *(view.origin(p) for p in record.problems))
            verdict = decontaminator.contaminated(problems, record.texts)
            if verdict is not None:
                removed[verdict] += 1
                continue
            if not request.keep_duplicates and dedup.duplicate(record.unit, record.rest, near=record.near):
                continue
            counts.add(record, kind.model_text)
            batch.append(record.row)
            if len(batch) >= request.batch_size:
                writer.write(batch)
                batch = []
        writer.write(batch)
        files = writer.close()
        if not files:
            raise ExportError(_nothing(kind, view, agent, dedup, removed))
        settings = context.trainer_settings(kind.trainer_kind) if kind.trainer_kind else None
        facts = CardFacts(
            kind=kind,
            view=view,
            agent=agent,
            settings=_row_settings(settings),
            counts=counts,
            exact_duplicates=dedup.exact,
            near_duplicates=dedup.near,
            keep_duplicates=request.keep_duplicates,
            decontaminator=decontaminator,
            removed=removed,
            data_files=writer.pattern,
            data_bytes=sum(f.stat().st_size for f in files),
            schema=schema,
            command=request.command or f"coevo export --run {run.run_dir} --kind {kind.name}",
        )
        (partial / "README.md").write_text(render_card(facts), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    except BaseException:
        writer.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ExportReport(
        out=out,
        rows=counts.rows,
        files=[out / f.relative_to(partial) for f in files],
        exact_duplicates=dedup.exact,
        near_duplicates=dedup.near,
        contaminated=removed,
        seconds=time.perf_counter() - started,
    )


def _agent(kind: Kind, run: OpenedRun, asked: str | None) -> str | None:
    """The agent whose data the kind exports: the one asked for, else the agent a trainer of the
    kind's trainer kind trains, else the first agent of the kind's first role that has one."""
    agents = run.config.agents
    if asked is not None:
        if asked not in agents:
            raise ExportError(f"no agent {asked!r} in run {run.run_id}; its agents: {', '.join(agents)}")
        if not kind.roles and not kind.by_sender:
            raise ExportError(f"--agent does not apply to {kind.name}: its rows are the run's problems")
        if kind.roles and agents[asked].role not in kind.roles:
            raise ExportError(
                f"agent {asked!r} is a {agents[asked].role}; {kind.name} exports the data of a "
                f"{' or '.join(kind.roles)}"
            )
        return asked
    if not kind.roles:
        return None
    trained = [t.agent for t in run.config.trainers if t.kind == kind.trainer_kind and t.agent in agents]
    if trained:
        return trained[0]
    for role in kind.roles:
        for name, agent in agents.items():
            if agent.role == role:
                return name
    raise ExportError(
        f"run {run.run_id} has no {' or '.join(kind.roles)} agent: nothing to export as {kind.name}"
    )


def _nothing(kind: Kind, view: RunView, agent: str | None, dedup: Deduplicator, removed: Counter[str]) -> str:
    why = [
        f"no {kind.name} rows to export from rounds {view.window.start}-{view.window.stop - 1} "
        f"(as of round {view.as_of}) for {agent or 'any agent'}: {len(view.selected)} problems selected"
    ]
    if dedup.exact or dedup.near:
        why.append(f"{dedup.exact + dedup.near} duplicate rows removed")
    if removed:
        why.append(f"{sum(removed.values())} contaminated rows removed")
    return "; ".join(why) + " (loosen the filters, or pick rounds where the run produced this kind of data)"


def _row_settings(settings: TrainSettings | None) -> dict[str, Any] | None:
    """The settings that shape a trainer's rows: its own, not the optimizer's or LoRA's."""
    if settings is None:
        return None
    own = set(type(settings).model_fields) - set(TrainSettings.model_fields)
    return {name: getattr(settings, name) for name in sorted(own)}
