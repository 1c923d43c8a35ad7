"""`Store`: the durable memory of runs — one transaction per round, immediate out-of-round writes,
and the read API the trainers, the TUI and export use.

A round's rows are collected in a `RoundBatch` and written by `commit_round` together with
`Run.last_round` in ONE transaction, so a process killed at any moment leaves either the whole
round or none of it; resume starts after `last_committed_round`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, func, insert, update
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from coevo.memory.batch import RoundBatch, event_row
from coevo.memory.database import WRITE_OPTION, open_engine
from coevo.memory.errors import StoreError
from coevo.memory.tables import (
    RUN_STATUSES,
    AgentRecord,
    AttemptRecord,
    EvalRecord,
    MessageRecord,
    PolicyVersion,
    ProblemRecord,
    Run,
    RunState,
    SkillProfileRecord,
    TrainingRun,
    utc_now,
)
from coevo.society.events import EVENT_ADAPTER, Event

DB_NAME = "coevo.db"

# Tables whose rows belong to one round, with the column that names it (for discard_after).
_ROUND_SCOPED = (
    (MessageRecord, MessageRecord.round),
    (AttemptRecord, AttemptRecord.round),
    (SkillProfileRecord, SkillProfileRecord.round),
    (RunState, RunState.round),
    (ProblemRecord, ProblemRecord.round_created),
)


def sqlite_url(run_dir: Path) -> str:
    """The default memory of a run: SQLite in its run directory."""
    return f"sqlite:///{(run_dir / DB_NAME).resolve()}"


@dataclass(frozen=True)
class RoundSummary:
    round: int
    attempts: int
    correct: int
    accuracy: float


class Store:
    """The memory at one SQLAlchemy URL; safe to share between threads (a session per call)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = open_engine(url)
        self._write_engine = self._engine.execution_options(**{WRITE_OPTION: True})

    @classmethod
    def for_run_dir(cls, run_dir: Path) -> Store:
        run_dir.mkdir(parents=True, exist_ok=True)
        return cls(sqlite_url(run_dir))

    def close(self) -> None:
        self._engine.dispose()

    def _read(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    def _write(self) -> Session:
        return Session(self._write_engine, expire_on_commit=False)

    # --- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        name: str,
        config_json: str,
        seed: int,
        agents: Sequence[Mapping[str, Any]],
        run_id: str | None = None,
    ) -> str:
        """Store a new run and its agents (mappings with name, role, engine, model?, trainable?)."""
        run_id = run_id or f"{_slug(name)}-{uuid.uuid4().hex[:8]}"
        try:
            records = [
                AgentRecord(
                    run=run_id,
                    name=agent["name"],
                    role=agent["role"],
                    engine=agent["engine"],
                    model=agent.get("model"),
                    trainable=bool(agent.get("trainable", False)),
                )
                for agent in agents
            ]
        except KeyError as exc:
            raise StoreError(f"an agent of run {run_id} lacks {exc} (needs name, role, engine)") from exc
        with self._write() as session:
            if session.get(Run, run_id) is not None:
                raise StoreError(f"run {run_id} already exists")
            session.add(Run(id=run_id, name=name, config_json=config_json, seed=seed))
            session.flush()  # the run row first: agents reference it
            session.add_all(records)
            session.commit()
        return run_id

    def get_run(self, run_id: str) -> Run | None:
        with self._read() as session:
            return session.get(Run, run_id)

    def list_runs(self) -> list[Run]:
        with self._read() as session:
            return list(session.exec(select(Run).order_by(col(Run.created_at))))

    def agents(self, run_id: str) -> list[AgentRecord]:
        with self._read() as session:
            query = select(AgentRecord).where(AgentRecord.run == run_id).order_by(col(AgentRecord.name))
            return list(session.exec(query))

    def set_status(self, run_id: str, status: str) -> None:
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; expected one of {sorted(RUN_STATUSES)}")
        with self._write() as session:
            run = _require_run(session, run_id)
            run.status = status
            run.updated_at = utc_now()
            session.commit()

    def last_committed_round(self, run_id: str) -> int:
        with self._read() as session:
            return _require_run(session, run_id).last_round

    # --- rounds ----------------------------------------------------------------------------

    def round_batch(self, run_id: str, round: int) -> RoundBatch:
        return RoundBatch(run_id=run_id, round=round)

    def commit_round(self, batch: RoundBatch) -> None:
        """Write the batch and mark its round committed, all in one transaction."""
        with self._write() as session:
            # Row lock on servers (SQLite's BEGIN IMMEDIATE already serializes writers).
            run = _require_run(session, batch.run_id, lock=True)
            if batch.round <= run.last_round:
                raise StoreError(
                    f"round {batch.round} of run {batch.run_id} is not after the last committed "
                    f"round ({run.last_round})"
                )
            if batch.events:
                session.execute(_bulk_insert(MessageRecord), batch.events)
            _write_problems(session, batch)
            if batch.attempts:
                session.execute(_bulk_insert(AttemptRecord), batch.attempts)
            if batch.skill_profiles:
                session.execute(_bulk_insert(SkillProfileRecord), batch.skill_profiles)
            for key, value in batch.state.items():
                session.merge(RunState(run=batch.run_id, key=key, value=value, round=batch.round))
            run.last_round = batch.round
            run.updated_at = utc_now()
            session.commit()

    async def commit_round_async(self, batch: RoundBatch) -> None:
        """`commit_round` in a worker thread, so the event loop keeps running meanwhile."""
        await asyncio.to_thread(self.commit_round, batch)

    def add_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Events between rounds (training, adapters, run end), committed at once with the round
        they follow, so they survive the rollback of a later, uncommitted round."""
        if not events:
            return
        with self._write() as session:
            _require_run(session, run_id)
            session.execute(_bulk_insert(MessageRecord), [event_row(run_id, e.round, e) for e in events])
            session.commit()

    def discard_after(self, run_id: str, round: int) -> None:
        """Delete every round-scoped row past `round` (left by anything but a committed round)."""
        with self._write() as session:
            run = _require_run(session, run_id)
            for table, round_column in _ROUND_SCOPED:
                session.execute(delete(table).where(col(table.run) == run_id, col(round_column) > round))
            run.last_round = min(run.last_round, round)
            session.commit()

    def get_state(self, run_id: str, key: str) -> Any:
        """The run state stored under `key` by the last round that set it; None when never set."""
        with self._read() as session:
            state = session.get(RunState, (run_id, key))
            return None if state is None else state.value

    # --- policies, training, evaluation (committed at once) -------------------------------

    def add_policy_version(
        self,
        run_id: str,
        agent: str,
        version: int,
        *,
        adapter_path: str | None = None,
        trainer: str | None = None,
        created_round: int = -1,
        metrics: Mapping[str, Any] | None = None,
    ) -> PolicyVersion:
        record = PolicyVersion(
            run=run_id,
            agent=agent,
            version=version,
            adapter_path=adapter_path,
            trainer=trainer,
            created_round=created_round,
            metrics_json=dict(metrics or {}),
        )
        with self._write() as session:
            _require_run(session, run_id)
            if session.exec(_policy_query(run_id, agent).where(PolicyVersion.version == version)).first():
                raise StoreError(f"policy version {version} of {agent} already exists in run {run_id}")
            session.add(record)
            session.commit()
        return record

    def latest_policy(self, run_id: str, agent: str) -> PolicyVersion | None:
        with self._read() as session:
            return session.exec(_policy_query(run_id, agent, newest_first=True)).first()

    def policy_versions(self, run_id: str, agent: str) -> list[PolicyVersion]:
        with self._read() as session:
            return list(session.exec(_policy_query(run_id, agent)))

    def record_training(
        self,
        run_id: str,
        agent: str,
        trainer: str,
        round: int,
        from_version: int,
        ok: bool,
        *,
        to_version: int | None = None,
        error: str | None = None,
        examples: int = 0,
        metrics: Mapping[str, Any] | None = None,
        adapter_path: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> TrainingRun:
        now = utc_now()
        record = TrainingRun(
            run=run_id,
            agent=agent,
            trainer=trainer,
            round=round,
            from_version=from_version,
            to_version=to_version,
            ok=ok,
            error=error,
            examples=examples,
            metrics_json=dict(metrics or {}),
            adapter_path=adapter_path,
            started_at=started_at or now,
            finished_at=finished_at or now,
        )
        with self._write() as session:
            _require_run(session, run_id)
            session.add(record)
            session.commit()
        return record

    def training_runs(self, run_id: str, agent: str | None = None) -> list[TrainingRun]:
        with self._read() as session:
            query = select(TrainingRun).where(TrainingRun.run == run_id)
            if agent is not None:
                query = query.where(TrainingRun.agent == agent)
            return list(session.exec(query.order_by(col(TrainingRun.id))))

    def record_eval(
        self,
        agent: str,
        policy: str,
        dataset: str,
        n: int,
        correct: int,
        ci_low: float,
        ci_high: float,
        *,
        run_id: str | None = None,
        per_skill: Mapping[str, Any] | None = None,
    ) -> EvalRecord:
        record = EvalRecord(
            run=run_id,
            agent=agent,
            policy=policy,
            dataset=dataset,
            n=n,
            correct=correct,
            accuracy=correct / n if n else 0.0,
            ci_low=ci_low,
            ci_high=ci_high,
            per_skill=dict(per_skill or {}),
        )
        with self._write() as session:
            if run_id is not None:
                _require_run(session, run_id)
            session.add(record)
            session.commit()
        return record

    def evals(self, run_id: str | None = None) -> list[EvalRecord]:
        with self._read() as session:
            query = select(EvalRecord)
            if run_id is not None:
                query = query.where(EvalRecord.run == run_id)
            return list(session.exec(query.order_by(col(EvalRecord.id))))

    # --- reads -----------------------------------------------------------------------------

    def event_records(
        self, run_id: str, after_id: int = 0, types: Iterable[str] | None = None, limit: int | None = None
    ) -> list[tuple[int, Event]]:
        """(id, event) pairs in stored order; poll with the last id seen as `after_id`."""
        query = select(MessageRecord.id, MessageRecord.payload).where(
            MessageRecord.run == run_id, col(MessageRecord.id) > after_id
        )
        if types is not None:
            query = query.where(col(MessageRecord.type).in_(list(types)))
        query = query.order_by(col(MessageRecord.id)).limit(limit)
        with self._read() as session:
            rows = session.exec(query).all()
        return [(int(row_id or 0), EVENT_ADAPTER.validate_python(payload)) for row_id, payload in rows]

    def events(self, run_id: str, after_id: int = 0, types: Iterable[str] | None = None) -> list[Event]:
        return [event for _, event in self.event_records(run_id, after_id, types)]

    def attempts(
        self, run_id: str, rounds: Iterable[int] | None = None, agent: str | None = None
    ) -> list[AttemptRecord]:
        query = select(AttemptRecord).where(AttemptRecord.run == run_id)
        if rounds is not None:
            query = query.where(col(AttemptRecord.round).in_(list(rounds)))
        if agent is not None:
            query = query.where(AttemptRecord.agent == agent)
        with self._read() as session:
            return list(session.exec(query.order_by(col(AttemptRecord.id))))

    def problems(self, run_id: str, in_curriculum: bool | None = None) -> list[ProblemRecord]:
        query = select(ProblemRecord).where(ProblemRecord.run == run_id)
        if in_curriculum is not None:
            query = query.where(ProblemRecord.in_curriculum == in_curriculum)
        with self._read() as session:
            return list(session.exec(query.order_by(col(ProblemRecord.id))))

    def problem(self, run_id: str, problem_id: str) -> ProblemRecord | None:
        query = select(ProblemRecord).where(
            ProblemRecord.run == run_id, ProblemRecord.problem_id == problem_id
        )
        with self._read() as session:
            return session.exec(query).first()

    def skill_profile(self, run_id: str, agent: str, round: int | None = None) -> list[SkillProfileRecord]:
        """The agent's per-skill profile of `round`, or of the latest round that has one."""
        mine = (SkillProfileRecord.run == run_id, SkillProfileRecord.agent == agent)
        with self._read() as session:
            if round is None:
                round = session.exec(select(func.max(SkillProfileRecord.round)).where(*mine)).first()
                if round is None:
                    return []
            query = select(SkillProfileRecord).where(*mine, SkillProfileRecord.round == round)
            return list(session.exec(query.order_by(col(SkillProfileRecord.skill))))

    def rounds_summary(self, run_id: str) -> list[RoundSummary]:
        """Attempts, correct answers and accuracy of each round that has attempts, in order."""
        correct = func.sum(case((col(AttemptRecord.correct), 1), else_=0))
        query = (
            select(AttemptRecord.round, func.count(), correct)
            .where(AttemptRecord.run == run_id)
            .group_by(col(AttemptRecord.round))
            .order_by(col(AttemptRecord.round))
        )
        with self._read() as session:
            rows = session.exec(query).all()
        return [
            RoundSummary(round=r, attempts=n, correct=int(c or 0), accuracy=(int(c or 0) / n) if n else 0.0)
            for r, n, c in rows
        ]


def _bulk_insert(table: type[SQLModel]) -> Any:
    # NULLs rendered as such keep every row in one executemany; otherwise the ORM splits the rows
    # into a batch per set of non-null columns.
    return insert(table).execution_options(render_nulls=True)


def _require_run(session: Session, run_id: str, *, lock: bool = False) -> Run:
    run = session.get(Run, run_id, with_for_update=lock)
    if run is None:
        raise StoreError(f"no run {run_id!r} in this memory")
    return run


def _policy_query(run_id: str, agent: str, *, newest_first: bool = False) -> SelectOfScalar[PolicyVersion]:
    order = col(PolicyVersion.version).desc() if newest_first else col(PolicyVersion.version)
    query = select(PolicyVersion).where(PolicyVersion.run == run_id, PolicyVersion.agent == agent)
    return query.order_by(order)


def _write_problems(session: Session, batch: RoundBatch) -> None:
    """Insert new problems; a problem stored by an earlier round keeps its row and gets its new flag."""
    ids = list(batch.problems) + list(batch.curriculum)
    stored: set[str] = set()
    if ids:
        query = select(ProblemRecord.problem_id).where(
            ProblemRecord.run == batch.run_id, col(ProblemRecord.problem_id).in_(ids)
        )
        stored = set(session.exec(query).all())
    unknown = sorted(set(batch.curriculum) - stored)
    if unknown:
        raise StoreError(f"set_curriculum names problems never stored in run {batch.run_id}: {unknown[:5]}")
    fresh = [row for pid, row in batch.problems.items() if pid not in stored]
    if fresh:
        session.execute(_bulk_insert(ProblemRecord), fresh)
    flags = {pid: row["in_curriculum"] for pid, row in batch.problems.items() if pid in stored}
    flags.update({pid: flag for pid, flag in batch.curriculum.items() if pid in stored})
    for flag in (True, False):
        chosen = [pid for pid, value in flags.items() if value is flag]
        if chosen:
            session.execute(
                update(ProblemRecord)
                .where(col(ProblemRecord.run) == batch.run_id, col(ProblemRecord.problem_id).in_(chosen))
                .values(in_curriculum=flag)
            )


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "run"
