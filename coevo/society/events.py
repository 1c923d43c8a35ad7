"""Typed events: one pydantic union tagged by `type`, named after what happened.

The same JSON is what the memory stores (messages table), what the TUI renders and what
export reads. Every event carries the run, round, episode, sender, recipients, the policy
version that produced it, a timestamp and token usage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter


def _now() -> datetime:
    return datetime.now(UTC)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class EventBase(BaseModel):
    run_id: str = ""
    round: int = 0
    episode: int | None = None
    sender: str = ""
    recipients: list[str] = Field(default_factory=list)
    # Policy version of the sender that produced this event ("base" or "v1", "v2", ...).
    policy_version: str | None = None
    created_at: datetime = Field(default_factory=_now)
    usage: Usage = Field(default_factory=Usage)


# --- messages between agents -------------------------------------------------------------


class ProblemPosed(EventBase):
    type: Literal["ProblemPosed"] = "ProblemPosed"
    problem_id: str
    question: str
    skills: list[str] = Field(default_factory=list)
    difficulty: dict[str, float] = Field(default_factory=dict)


class SolutionSubmitted(EventBase):
    type: Literal["SolutionSubmitted"] = "SolutionSubmitted"
    problem_id: str
    attempt_index: int
    response: str
    finish_reason: str = "stop"


class AttemptGraded(EventBase):
    type: Literal["AttemptGraded"] = "AttemptGraded"
    problem_id: str
    attempt_index: int
    extracted_answer: str | None
    correct: bool
    reward: float
    # Why grading failed to find an answer (empty output, no number, ...); None when parsed.
    failure: str | None = None


class ProblemRefined(EventBase):
    type: Literal["ProblemRefined"] = "ProblemRefined"
    parent_problem_id: str
    problem_id: str
    question: str
    answer: str
    success_rate: float
    zone: Literal["mastered", "learning", "too_hard"]


class Demonstration(EventBase):
    type: Literal["Demonstration"] = "Demonstration"
    source_problem_id: str
    failed_response: str
    target_problem_id: str
    target_question: str


class Explanation(EventBase):
    type: Literal["Explanation"] = "Explanation"
    problem_id: str
    rationale: str
    answer: str | None


class ExamResult(EventBase):
    type: Literal["ExamResult"] = "ExamResult"
    explanation_event_id: str | None = None
    problem_id: str
    exam_problem_ids: list[str]
    correct: int
    total: int


class CoachReport(EventBase):
    type: Literal["CoachReport"] = "CoachReport"
    transcript_ref: str
    scores: dict[str, float] = Field(default_factory=dict)
    highlights: list[str] = Field(default_factory=list)
    missed: list[str] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    raw: str = ""
    parse_error: str | None = None


# --- lifecycle events ----------------------------------------------------------------------


class RoundStarted(EventBase):
    type: Literal["RoundStarted"] = "RoundStarted"
    episodes: int


class RoundFinished(EventBase):
    type: Literal["RoundFinished"] = "RoundFinished"
    attempts: int
    correct: int
    accuracy: float
    per_skill: dict[str, float] = Field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0


class TrainingStarted(EventBase):
    type: Literal["TrainingStarted"] = "TrainingStarted"
    trainer: str
    agent: str
    examples: int


class TrainingFinished(EventBase):
    type: Literal["TrainingFinished"] = "TrainingFinished"
    trainer: str
    agent: str
    ok: bool
    new_version: str | None
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = None


class AdapterLoaded(EventBase):
    type: Literal["AdapterLoaded"] = "AdapterLoaded"
    agent: str
    version: str
    path: str


class RunFinished(EventBase):
    type: Literal["RunFinished"] = "RunFinished"
    rounds: int
    summary: dict[str, Any] = Field(default_factory=dict)


Event = Annotated[
    ProblemPosed
    | SolutionSubmitted
    | AttemptGraded
    | ProblemRefined
    | Demonstration
    | Explanation
    | ExamResult
    | CoachReport
    | RoundStarted
    | RoundFinished
    | TrainingStarted
    | TrainingFinished
    | AdapterLoaded
    | RunFinished,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

# Message types an agent can put on a graph edge (lifecycle events are not edge payloads).
MESSAGE_TYPES: frozenset[str] = frozenset(
    {
        "ProblemPosed",
        "SolutionSubmitted",
        "AttemptGraded",
        "ProblemRefined",
        "Demonstration",
        "Explanation",
        "ExamResult",
        "CoachReport",
    }
)


def event_from_json(data: str | bytes) -> Event:
    return EVENT_ADAPTER.validate_json(data)
