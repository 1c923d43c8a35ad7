"""`Store`: the durable memory of runs — a journal of events as they happen, one transaction per
round, immediate out-of-round writes, and the reads the trainers, the TUI and export use.

Events are journaled while their round runs (`append_events`, marked provisional) so another
process can follow a run mid-round (coevo.memory.journal). A round's derived rows are collected
in a `RoundBatch` and written by `commit_round` together with `Run.last_round` and the
confirmation of the round's journaled events in ONE transaction, so a process killed at any
moment leaves either the whole round or none of it: resume deletes what is provisional and starts
after `last_committed_round`.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
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
    TABLES,
    AgentRecord,
    AttemptRecord,
    CurriculumHistory,
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
from coevo.messages import EVENT_ADAPTER, Event

DB_NAME = "coevo.db"

# Tables whose rows belong to one round, with the column that names it (for discard_after).
_ROUND_SCOPED = (
    (MessageRecord, MessageRecord.round),
    (AttemptRecord, AttemptRecord.round),
    (SkillProfileRecord, SkillProfileRecord.round),
    (CurriculumHistory, CurriculumHistory.round),
    (RunState, RunState.round),
    (ProblemRecord, ProblemRecord.round_created),
)


def sqlite_url(run_dir: Path) -> str:
    """The default memory of a run: SQLite in its run directory."""
    return f"sqlite:///{(run_dir / DB_NAME).resolve()}"


@dataclass(frozen=True)
class RoundSummary:
    round: int
    # Graded attempts and correct ones (accuracy over graded attempts), and the ungraded ones.
    attempts: int
    correct: int
    accuracy: float
    ungraded: int = 0


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
        """Set a run's status; "running" also records this process as the one running it."""
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; expected one of {sorted(RUN_STATUSES)}")
        with self._write() as session:
            run = _require_run(session, run_id)
            run.status = status
            run.updated_at = utc_now()
            if status == "running":
                run.pid, run.host, run.heartbeat_at = os.getpid(), socket.gethostname(), utc_now()
            session.commit()

    def heartbeat(self, run_id: str) -> None:
        """Say the run's process is alive (called every few seconds while it runs)."""
        with self._write() as session:
            session.execute(update(Run).where(col(Run.id) == run_id).values(heartbeat_at=utc_now()))
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
            # The round's journaled events become part of the record with the round itself.
            session.execute(
                update(MessageRecord)
                .where(col(MessageRecord.run) == batch.run_id, col(MessageRecord.provisional))
                .values(provisional=False)
            )
            if batch.events:
                session.execute(_bulk_insert(MessageRecord), batch.events)
            _write_problems(session, batch)
            if batch.attempts:
                session.execute(_bulk_insert(AttemptRecord), batch.attempts)
            if batch.skill_profiles:
                session.execute(_bulk_insert(SkillProfileRecord), batch.skill_profiles)
            if batch.history:
                session.execute(_bulk_insert(CurriculumHistory), list(batch.history.values()))
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
        self.append_events(run_id, [event_row(run_id, e) for e in events])

    def append_events(self, run_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Journal event rows (from `event_row`) in one transaction, in the order given."""
        if not rows:
            return
        with self._write() as session:
            _require_run(session, run_id)
            session.execute(_bulk_insert(MessageRecord), list(rows))
            session.commit()

    def discard_after(self, run_id: str, round: int) -> None:
        """Delete every round-scoped row past `round`, and every event still provisional (left by
        anything but a committed round)."""
        with self._write() as session:
            run = _require_run(session, run_id)
            for table, round_column in _ROUND_SCOPED:
                session.execute(delete(table).where(col(table.run) == run_id, col(round_column) > round))
            session.execute(
                delete(MessageRecord).where(col(MessageRecord.run) == run_id, col(MessageRecord.provisional))
            )
            run.last_round = min(run.last_round, round)
            session.commit()

    def get_state(self, run_id: str, key: str) -> Any:
        """The run state stored under `key` by the last round that set it; None when never set."""
        with self._read() as session:
            state = session.get(RunState, (run_id, key))
            return None if state is None else state.value

    def put_state(self, run_id: str, key: str, value: Any, round: int) -> None:
        """Store run state at once, as of committed round `round` (e.g. a resume's overrides)."""
        with self._write() as session:
            _require_run(session, run_id)
            session.merge(RunState(run=run_id, key=key, value=value, round=round))
            session.commit()

    def delete_run(self, run_id: str) -> None:
        """Delete a run and every row of it (a forced restart in a shared database)."""
        with self._write() as session:
            for table in (
                *(t for t, _ in _ROUND_SCOPED),
                PolicyVersion,
                TrainingRun,
                EvalRecord,
                AgentRecord,
            ):
                session.execute(delete(table).where(col(table.run) == run_id))
            session.execute(delete(Run).where(col(Run.id) == run_id))
            session.commit()

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

    def commit_training(
        self,
        run_id: str,
        training: Mapping[str, Any],
        events: Sequence[Event],
        policy: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a finished (or failed) training as one unit: its training record, the policy
        version it produced, its events, and the confirmation of the events journaled while it ran
        (its TrainingStarted). A kill before this leaves no trace of the training but provisional
        rows, which a resume deletes; after it, the training is complete."""
        now = utc_now()
        with self._write() as session:
            _require_run(session, run_id, lock=True)
            session.execute(
                update(MessageRecord)
                .where(col(MessageRecord.run) == run_id, col(MessageRecord.provisional))
                .values(provisional=False)
            )
            if events:
                session.execute(_bulk_insert(MessageRecord), [event_row(run_id, e) for e in events])
            if policy is not None:
                session.add(PolicyVersion(run=run_id, created_at=now, **policy))
            session.add(
                TrainingRun(
                    run=run_id,
                    started_at=training.get("started_at", now),
                    finished_at=now,
                    **{k: v for k, v in training.items() if k != "started_at"},
                )
            )
            session.commit()

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
        self,
        run_id: str,
        after_id: int = 0,
        types: Iterable[str] | None = None,
        limit: int | None = None,
        *,
        committed_only: bool = False,
    ) -> list[tuple[int, bool, Event]]:
        """(row id, provisional, event) in stored order; poll with the last row id seen as
        `after_id` (coevo.memory.journal.EventCursor does)."""
        query = select(MessageRecord.id, MessageRecord.provisional, MessageRecord.payload).where(
            MessageRecord.run == run_id, col(MessageRecord.id) > after_id
        )
        if types is not None:
            query = query.where(col(MessageRecord.type).in_(list(types)))
        if committed_only:
            query = query.where(col(MessageRecord.provisional).is_(False))
        query = query.order_by(col(MessageRecord.id)).limit(limit)
        with self._read() as session:
            rows = session.exec(query).all()
        return [
            (int(row_id or 0), bool(provisional), EVENT_ADAPTER.validate_python(payload))
            for row_id, provisional, payload in rows
        ]

    def events(self, run_id: str, after_id: int = 0, types: Iterable[str] | None = None) -> list[Event]:
        """A run's committed events, in stored order."""
        return [event for _, _, event in self.event_records(run_id, after_id, types, committed_only=True)]

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

    def curriculum_history(self, run_id: str, until_round: int | None = None) -> list[CurriculumHistory]:
        """Curriculum rows in round order (see `CurriculumHistory`), up to `until_round`."""
        query = select(CurriculumHistory).where(CurriculumHistory.run == run_id)
        if until_round is not None:
            query = query.where(col(CurriculumHistory.round) <= until_round)
        with self._read() as session:
            return list(session.exec(query.order_by(col(CurriculumHistory.round), col(CurriculumHistory.id))))

    def curriculum_as_of(self, run_id: str, round: int) -> list[str]:
        """The ids of the problems in the curriculum as round `round` left it (exact after resume)."""
        latest: dict[str, bool] = {}
        for row in self.curriculum_history(run_id, until_round=round):
            latest[row.problem_id] = row.in_curriculum
        return [pid for pid, inside in latest.items() if inside]

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
        """Graded attempts, correct answers, accuracy and ungraded attempts of each round that has
        attempts, in order."""
        graded = func.sum(case((col(AttemptRecord.graded), 1), else_=0))
        correct = func.sum(case((col(AttemptRecord.graded) & col(AttemptRecord.correct), 1), else_=0))
        query = (
            select(AttemptRecord.round, func.count(), graded, correct)
            .where(AttemptRecord.run == run_id)
            .group_by(col(AttemptRecord.round))
            .order_by(col(AttemptRecord.round))
        )
        with self._read() as session:
            rows = session.exec(query).all()
        summaries = []
        for r, total, g, c in rows:
            n, right = int(g or 0), int(c or 0)
            summaries.append(
                RoundSummary(
                    round=r, attempts=n, correct=right, accuracy=right / n if n else 0.0, ungraded=total - n
                )
            )
        return summaries

    def dump(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row of the run in every table, column by column, each table in stored order
        (by primary key): what two runs that did the same thing must agree on, but for ids, times
        and paths (coevo.society.checker compares them)."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self._read() as session:
            for table in TABLES:
                if table.name == "meta":
                    continue
                key = table.c.id if table.name == "runs" else table.c.run
                query = table.select().where(key == run_id).order_by(*table.primary_key.columns)
                out[table.name] = [dict(row._mapping) for row in session.execute(query)]
        return out

    # --- streaming reads (export: bounded memory on runs of any size) ----------------------
    #
    # They page round by round, and by id within a round: `WHERE run = ? AND round = ? AND id > ?`
    # is an index seek on (run, round), whose entries are in id order, so each page reads only its
    # own rows. (Paging a whole run by id alone lets SQLite pick that index and sort the run for
    # every page.) Each page is a short read transaction: a long export never holds one open
    # against the run's writer. Rows come in round order, and in stored order within a round.

    def iter_problems(
        self, run_id: str, batch_size: int = 2000, *, created_until: int | None = None
    ) -> Iterable[list[ProblemRecord]]:
        """A run's problems, `batch_size` at a time (created by round `created_until` at the
        latest, when given)."""
        query = select(ProblemRecord).where(ProblemRecord.run == run_id)
        yield from self._pages(
            run_id, query, ProblemRecord, col(ProblemRecord.round_created), created_until, batch_size
        )

    def iter_attempts(
        self,
        run_id: str,
        batch_size: int = 5000,
        *,
        agent: str | None = None,
        until_round: int | None = None,
    ) -> Iterable[list[AttemptRecord]]:
        """A run's attempts (by `agent`, when given), `batch_size` at a time."""
        query = select(AttemptRecord).where(AttemptRecord.run == run_id)
        if agent is not None:
            query = query.where(AttemptRecord.agent == agent)
        yield from self._pages(
            run_id, query, AttemptRecord, col(AttemptRecord.round), until_round, batch_size
        )

    def iter_events(
        self,
        run_id: str,
        types: Iterable[str] | None = None,
        batch_size: int = 2000,
        *,
        until_round: int | None = None,
    ) -> Iterable[list[Event]]:
        """A run's committed events (of `types`, when given), `batch_size` at a time."""
        query = select(MessageRecord).where(
            MessageRecord.run == run_id, col(MessageRecord.provisional).is_(False)
        )
        if types is not None:
            query = query.where(col(MessageRecord.type).in_(list(types)))
        # Only the id and the payload's JSON text are loaded, and pydantic parses that text.
        columns = (col(MessageRecord.id), self._payload_text())
        pages = self._pages(
            run_id, query, MessageRecord, col(MessageRecord.round), until_round, batch_size, columns
        )
        for rows in pages:
            yield [EVENT_ADAPTER.validate_json(payload) for _, payload in rows]

    def events_by_id(self, run_id: str, event_ids: Iterable[str]) -> dict[str, Event]:
        """The committed events with these ids (links such as a CoachReport's `transcript_ids`)."""
        wanted = list(dict.fromkeys(event_ids))
        found: dict[str, Event] = {}
        # Chunked: SQLite binds at most 32,766 parameters per statement.
        for start in range(0, len(wanted), 5000):
            query = select(self._payload_text()).where(
                MessageRecord.run == run_id,
                col(MessageRecord.provisional).is_(False),
                col(MessageRecord.event_id).in_(wanted[start : start + 5000]),
            )
            with self._read() as session:
                for payload in session.exec(query).all():
                    event = EVENT_ADAPTER.validate_json(payload)
                    found[event.id] = event
        return found

    def attempt_counts(
        self, run_id: str, until_round: int | None = None
    ) -> list[tuple[str, int, str | None, int, int]]:
        """(problem id, round, policy version, attempts, correct attempts) per group of a run's
        graded attempts, counted in the database (an attempt nobody judged counts neither way)."""
        # SQLAlchemy's own select: SQLModel's typed one takes at most four columns.
        from sqlalchemy import select as select_columns

        group = (col(AttemptRecord.problem_id), col(AttemptRecord.round), col(AttemptRecord.policy_version))
        correct = func.sum(case((col(AttemptRecord.correct), 1), else_=0))
        query = select_columns(*group, func.count(), correct).where(
            col(AttemptRecord.run) == run_id, col(AttemptRecord.graded)
        )
        if until_round is not None:
            query = query.where(col(AttemptRecord.round) <= until_round)
        with self._read() as session:
            rows = session.execute(query.group_by(*group)).all()
        return [(pid, r, policy, n, int(c or 0)) for pid, r, policy, n, c in rows]

    def _pages(
        self,
        run_id: str,
        query: SelectOfScalar[Any],
        table: Any,
        round_column: Any,
        until_round: int | None,
        batch_size: int,
        columns: Sequence[Any] | None = None,
    ) -> Iterable[list[Any]]:
        """`query`'s rows (or just `columns` of them) in run `run_id`, round by round up to
        `until_round`, and by id within a round, at most `batch_size` per page (see the section
        comment)."""
        if batch_size < 1:
            raise StoreError(f"batch_size must be >= 1, got {batch_size}")
        # The run's rounds, read from the (run, round) index alone: a round without rows that
        # `query` keeps then costs one empty seek, not a scan.
        rounds = select(round_column).where(col(table.run) == run_id).distinct().order_by(round_column)
        if until_round is not None:
            rounds = rounds.where(round_column <= until_round)
        with self._read() as session:
            round_values = list(session.execute(rounds).scalars())
        rows_query: Any = query if columns is None else query.with_only_columns(*columns)
        for round_value in round_values:
            after = 0
            while True:
                page = rows_query.where(round_column == round_value, col(table.id) > after)
                with self._read() as session:
                    result = session.execute(page.order_by(col(table.id)).limit(batch_size))
                    rows = list(result.scalars() if columns is None else result.all())
                if not rows:
                    break
                after = int((rows[-1].id if columns is None else rows[-1][0]) or 0)
                yield rows
                if len(rows) < batch_size:
                    break

    @staticmethod
    def _payload_text() -> Any:
        # The payload as its stored JSON text: pydantic parses and validates that in one pass,
        # several times faster than validating the objects SQLAlchemy's JSON type decodes it to.
        from sqlalchemy import String, cast

        return cast(col(MessageRecord.payload), String)


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
