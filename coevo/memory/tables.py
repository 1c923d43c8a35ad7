"""SQLModel tables of the durable memory, every one keyed by run.

Round-scoped rows (messages, problems, attempts, skill profiles, run state) carry the round
that wrote them, so a resume can drop anything past the last committed round. JSON columns
hold lists and dicts as they are; timestamps are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from coevo.tasks.problem import Problem, Provenance

# Bump whenever a table or column changes: a database of another version is refused, not migrated.
SCHEMA_VERSION = 3

RunStatus = Literal["running", "finished", "failed"]
RUN_STATUSES: frozenset[str] = frozenset({"running", "finished", "failed"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def _created() -> Any:
    return Field(default_factory=utc_now, sa_type=DateTime(timezone=True))


def _json_list() -> Any:
    return Field(default_factory=list, sa_type=JSON)


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_type=JSON)


class Meta(SQLModel, table=True):
    __tablename__ = "meta"

    id: int = Field(default=1, primary_key=True)
    schema_version: int


class Run(SQLModel, table=True):
    __tablename__ = "runs"

    id: str = Field(primary_key=True)
    name: str
    config_json: str = Field(sa_type=Text)
    seed: int
    status: str = "running"
    # The last round whose data was committed as a whole; -1 before the first one.
    last_round: int = -1
    created_at: datetime = _created()
    updated_at: datetime = _created()
    # Liveness: the process running it (on `host`) and when it last said it was alive, so a
    # reader can tell a running run from one whose process was killed.
    pid: int | None = None
    host: str | None = None
    heartbeat_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class AgentRecord(SQLModel, table=True):
    __tablename__ = "agents"

    run: str = Field(foreign_key="runs.id", primary_key=True)
    name: str = Field(primary_key=True)
    role: str
    engine: str
    model: str | None = None
    trainable: bool = False


class PolicyVersion(SQLModel, table=True):
    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("run", "agent", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    run: str = Field(foreign_key="runs.id", index=True)
    agent: str
    # 0 is the base model (no adapter); v1, v2, ... are the trained LoRA adapters.
    version: int
    adapter_path: str | None = None
    trainer: str | None = None
    created_round: int = -1
    metrics_json: dict[str, Any] = _json_dict()
    created_at: datetime = _created()


class MessageRecord(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_run_round", "run", "round"),
        Index("ix_messages_run_event", "run", "event_id"),
        Index("ix_messages_run_type", "run", "type"),
        # SQLite would otherwise hand the ids of deleted rows out again: after a resume deletes a
        # killed round's provisional events, the round's new events would get ids a follower's
        # cursor has already passed, and it would never see them.
        {"sqlite_autoincrement": True},
    )

    # Autoincrement id, never reused: the stored order of events, and the cursor readers follow a
    # run with.
    id: int | None = Field(default=None, primary_key=True)
    run: str = Field(foreign_key="runs.id")
    # The event's own id (links between events use it).
    event_id: str
    # Journaled as it happened, but its round has not committed yet: a resume deletes it.
    provisional: bool = False
    round: int
    episode: int | None = None
    type: str
    sender: str
    recipients: list[str] = _json_list()
    policy_version: str | None = None
    created_at: datetime = _created()
    # The whole event as JSON (coevo.messages), so it parses back losslessly.
    payload: dict[str, Any] = _json_dict()


class ProblemRecord(SQLModel, table=True):
    __tablename__ = "problems"
    __table_args__ = (
        UniqueConstraint("run", "problem_id"),
        Index("ix_problems_run_round", "run", "round_created"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run: str = Field(foreign_key="runs.id")
    problem_id: str
    question: str = Field(sa_type=Text)
    answer: str = Field(sa_type=Text)
    solution: str | None = Field(default=None, sa_type=Text)
    skills: list[str] = _json_list()
    difficulty: dict[str, float] = _json_dict()
    source: str
    parent_id: str | None = None
    author: str | None = None
    details: dict[str, Any] = _json_dict()
    round_created: int
    in_curriculum: bool = False

    def to_problem(self) -> Problem:
        provenance = Provenance.model_validate(
            {
                "source": self.source,
                "parent_id": self.parent_id,
                "author": self.author,
                "details": self.details,
            }
        )
        return Problem(
            id=self.problem_id,
            question=self.question,
            answer=self.answer,
            solution=self.solution,
            skills=list(self.skills),
            difficulty=dict(self.difficulty),
            provenance=provenance,
        )


class AttemptRecord(SQLModel, table=True):
    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_run_round", "run", "round"),
        Index("ix_attempts_run_problem", "run", "problem_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run: str = Field(foreign_key="runs.id")
    round: int
    problem_id: str
    agent: str
    # The policy label that produced the attempt ("base", "v1", ...), as events carry it.
    policy_version: str | None = None
    attempt_index: int
    response: str = Field(sa_type=Text)
    extracted_answer: str | None = None
    correct: bool
    reward: float
    failure: str | None = None
    finish_reason: str | None = None
    completion_tokens: int = 0
    # False when the verifier could not judge the attempt (its time or memory limit, a grader
    # error): `correct` is then False but means nothing. Accuracies, curriculum counts, skill
    # profiles and training rows read graded attempts only. `detail` is the cause.
    graded: bool = True
    detail: str | None = Field(default=None, sa_type=Text)


class CurriculumHistory(SQLModel, table=True):
    """A problem's curriculum status as a round left it: whether it is in the curriculum, and the
    round's attempts at it. A problem gets a row in every round that posed, attempted or re-flagged
    it, so the curriculum "as of round R" is each problem's latest row up to R."""

    __tablename__ = "curriculum_history"
    __table_args__ = (Index("ix_curriculum_history_run_round", "run", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    run: str = Field(foreign_key="runs.id")
    round: int
    problem_id: str
    in_curriculum: bool
    # Graded attempts of the round, and the correct ones (ungraded attempts count in neither).
    attempts: int = 0
    correct: int = 0


class SkillProfileRecord(SQLModel, table=True):
    __tablename__ = "skill_profiles"
    __table_args__ = (Index("ix_skill_profiles_run_round", "run", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    run: str = Field(foreign_key="runs.id")
    agent: str
    round: int
    skill: str
    attempts: int
    correct: int
    # How much of the skill is missing (a rate or a count, as the profiler reports it).
    missing: float = 0.0


class RunState(SQLModel, table=True):
    """Resumable run state (teacher state_dict, RNG state, pending problems) as key/value JSON."""

    __tablename__ = "run_state"

    run: str = Field(foreign_key="runs.id", primary_key=True)
    key: str = Field(primary_key=True)
    value: Any = Field(default=None, sa_type=JSON)
    round: int


class TrainingRun(SQLModel, table=True):
    __tablename__ = "training_runs"
    __table_args__ = (Index("ix_training_runs_run_round", "run", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    run: str = Field(foreign_key="runs.id")
    agent: str
    trainer: str
    round: int
    from_version: int
    to_version: int | None = None
    ok: bool
    error: str | None = Field(default=None, sa_type=Text)
    examples: int = 0
    metrics_json: dict[str, Any] = _json_dict()
    adapter_path: str | None = None
    started_at: datetime = _created()
    finished_at: datetime = _created()


class EvalRecord(SQLModel, table=True):
    __tablename__ = "evals"

    id: int | None = Field(default=None, primary_key=True)
    # None for an evaluation outside any run (e.g. `coevo eval` of a base model).
    run: str | None = Field(default=None, foreign_key="runs.id", index=True)
    agent: str
    policy: str
    dataset: str
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    per_skill: dict[str, Any] = _json_dict()
    created_at: datetime = _created()


# Created and checked together; other SQLModel tables in the process are not the memory's business.
TABLES = [
    model.__table__  # type: ignore[union-attr]
    for model in (
        Meta,
        Run,
        AgentRecord,
        PolicyVersion,
        MessageRecord,
        ProblemRecord,
        AttemptRecord,
        CurriculumHistory,
        SkillProfileRecord,
        RunState,
        TrainingRun,
        EvalRecord,
    )
]
