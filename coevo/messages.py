"""The message vocabulary: every event of a run as one pydantic union tagged by `type`.

The same JSON is what the memory stores (messages table), what the TUI renders and what export
reads. Two families share it:

- messages, which agents send each other along the role graph's edges (`MESSAGE_TYPES`); the
  docstring of each class is its description in `coevo roles` and the README;
- lifecycle events, which the scheduler and the training service write (`LIFECYCLE_TYPES`).

Every event gets its `id` when it is created. The runtime derives ids from where an event stands
in its run (round, episode, the messages it answers, sender, position), never from the clock, so
the same seed gives the same ids and links between events (`in_reply_to`, an ExamResult's
`explanation_id`, a CoachReport's `transcript_ids`) are real ids that survive resume.

This module sits at the bottom of the package: memory, agents, society, trainers and the TUI all
import it, and it imports nothing of coevo.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter


def _now() -> datetime:
    return datetime.now(UTC)


def derive_event_id(*parts: object) -> str:
    """A stable 16-hex-digit id from an event's position in its run."""
    return hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def _fresh_id() -> str:
    # Only for events built outside a run (tests, tools): the runtime always derives ids.
    return uuid.uuid4().hex[:16]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class EventBase(BaseModel):
    id: str = Field(default_factory=_fresh_id)
    run_id: str = ""
    round: int = 0
    episode: int | None = None
    sender: str = ""
    recipients: list[str] = Field(default_factory=list)
    # Ids of the messages this one answers (the inbox of the handler that emitted it).
    in_reply_to: list[str] = Field(default_factory=list)
    # Policy version of the sender that produced this event ("base", "v1", ...; "procedural").
    policy_version: str | None = None
    created_at: datetime = Field(default_factory=_now)
    usage: Usage = Field(default_factory=Usage)


# --- messages between agents (graph edges carry these) --------------------------------------


class ProblemPosed(EventBase):
    """A problem to solve (question only; the poser keeps the reference answer)."""

    type: Literal["ProblemPosed"] = "ProblemPosed"
    problem_id: str
    question: str
    skills: list[str] = Field(default_factory=list)
    difficulty: dict[str, float] = Field(default_factory=dict)


class SolutionSubmitted(EventBase):
    """One attempt at a problem; k attempts sampled together arrive as one batch."""

    type: Literal["SolutionSubmitted"] = "SolutionSubmitted"
    problem_id: str
    attempt_index: int
    response: str
    finish_reason: str = "stop"


class AttemptGraded(EventBase):
    """The verdict on one attempt: the extracted answer checked against the reference."""

    type: Literal["AttemptGraded"] = "AttemptGraded"
    problem_id: str
    attempt_index: int
    solver: str = ""
    extracted_answer: str | None
    correct: bool
    reward: float
    # Why the attempt failed (empty, no answer found, hedged, timeout, ...); None when correct.
    failure: str | None = None
    # False when the verifier could not judge the attempt (timeout, out of memory, grader error):
    # then `correct` is False but means nothing, and the attempt is never a training label nor
    # counted in an accuracy. `detail` says why.
    graded: bool = True
    detail: str | None = None


class ProblemRefined(EventBase):
    """A new problem made from a failed one (Socratic-Zero refinement), with its answer."""

    type: Literal["ProblemRefined"] = "ProblemRefined"
    parent_problem_id: str
    problem_id: str
    question: str
    answer: str
    success_rate: float
    zone: Literal["mastered", "learning", "too_hard"]


class Demonstration(EventBase):
    """A refinement shown to a Generator: failed problem and attempt → the refined problem."""

    type: Literal["Demonstration"] = "Demonstration"
    source_problem_id: str
    failed_response: str
    target_problem_id: str
    target_question: str


class ProblemProposed(EventBase):
    """A problem a Generator wrote; it counts only after its answer is verified."""

    type: Literal["ProblemProposed"] = "ProblemProposed"
    source_problem_id: str
    problem_id: str | None = None
    question: str = ""
    answer: str = ""
    raw: str = ""
    # Why the output could not be read as a problem; None when it parsed.
    parse_error: str | None = None


class ProposalReviewed(EventBase):
    """The verdict on a proposed problem: accepted into the curriculum, or why not."""

    type: Literal["ProposalReviewed"] = "ProposalReviewed"
    proposal_id: str
    problem_id: str | None = None
    accepted: bool
    reason: str


class ExamItem(BaseModel):
    problem_id: str
    question: str


class Explanation(EventBase):
    """A worked rationale for a problem, with exam problems that test what it teaches."""

    type: Literal["Explanation"] = "Explanation"
    problem_id: str
    question: str = ""
    rationale: str
    answer: str | None
    exam: list[ExamItem] = Field(default_factory=list)
    # What a language-model Teacher was given and wrote, exactly (chat messages as {"role",
    # "content"}; its raw reply, JSON for a prompt that asks for JSON): the prompt and completion
    # a Teacher trainer trains on. Empty for a procedural Teacher, which writes no text.
    prompt: list[dict[str, str]] = Field(default_factory=list)
    completion: str = ""


class ExamResult(EventBase):
    """A Student's score on the exam of one explanation (the explanation's LbT evidence)."""

    type: Literal["ExamResult"] = "ExamResult"
    explanation_id: str
    problem_id: str
    exam_problem_ids: list[str]
    # Graded exam answers (`total`) and the right ones among them; `ungraded` answers the verifier
    # could not judge are in neither.
    correct: int
    total: int
    ungraded: int = 0
    # The Student's extracted answers, exam problem by exam problem, try by try.
    answers: list[str | None] = Field(default_factory=list)


class ExplanationScored(EventBase):
    """An explanation's LbT score: its own correctness and its Students' exam accuracy."""

    type: Literal["ExplanationScored"] = "ExplanationScored"
    explanation_id: str
    problem_id: str
    correct: bool
    lbt_score: float
    # weight * correctness + (1 - weight) * LbT score (the LbT paper's M2 preference score; its
    # weight 0.5 is the Teacher's `score_weight` default).
    score: float
    students: int
    weight: float = 0.5
    # False when the verifier could not judge the rationale's answer or any exam answer: the
    # score is then unknown, and the explanation is never a training label.
    graded: bool = True


class CoachReport(EventBase):
    """A structured review of a teaching transcript: scores, highlights, misses, suggestions."""

    type: Literal["CoachReport"] = "CoachReport"
    transcript_ids: list[str]
    scores: dict[str, float] = Field(default_factory=dict)
    highlights: list[str] = Field(default_factory=list)
    missed: list[str] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    raw: str = ""
    parse_error: str | None = None


# --- lifecycle events (written by the scheduler and the training service) ---------------------


class RoundStarted(EventBase):
    type: Literal["RoundStarted"] = "RoundStarted"
    episodes: int


class RoundFinished(EventBase):
    type: Literal["RoundFinished"] = "RoundFinished"
    # Graded attempts and the correct ones; accuracy is over graded attempts. `ungraded` attempts
    # (no verdict: the verifier timed out, ran out of memory or failed) are counted apart.
    attempts: int
    correct: int
    accuracy: float
    ungraded: int = 0
    per_skill: dict[str, float] = Field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0
    # Per-round figures of the roles: proposals/accepted, explanations scored, reports, ...
    metrics: dict[str, float] = Field(default_factory=dict)


class TrainingStarted(EventBase):
    type: Literal["TrainingStarted"] = "TrainingStarted"
    trainer: str
    agent: str
    examples: int


class TrainingStep(EventBase):
    """One optimizer step of a training under way (a live step counter; journaled as it happens,
    committed with the training)."""

    type: Literal["TrainingStep"] = "TrainingStep"
    trainer: str
    agent: str
    step: int
    max_steps: int
    metrics: dict[str, float] = Field(default_factory=dict)


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


class EvalFinished(EventBase):
    type: Literal["EvalFinished"] = "EvalFinished"
    agent: str
    policy: str
    dataset: str
    n: int
    accuracy: float
    ci_low: float
    ci_high: float
    per_skill: dict[str, float] = Field(default_factory=dict)


class RunFinished(EventBase):
    type: Literal["RunFinished"] = "RunFinished"
    rounds: int
    summary: dict[str, Any] = Field(default_factory=dict)


MESSAGE_CLASSES: tuple[type[EventBase], ...] = (
    ProblemPosed,
    SolutionSubmitted,
    AttemptGraded,
    ProblemRefined,
    Demonstration,
    ProblemProposed,
    ProposalReviewed,
    Explanation,
    ExamResult,
    ExplanationScored,
    CoachReport,
)
LIFECYCLE_CLASSES: tuple[type[EventBase], ...] = (
    RoundStarted,
    RoundFinished,
    TrainingStarted,
    TrainingStep,
    TrainingFinished,
    AdapterLoaded,
    EvalFinished,
    RunFinished,
)

Message = (
    ProblemPosed
    | SolutionSubmitted
    | AttemptGraded
    | ProblemRefined
    | Demonstration
    | ProblemProposed
    | ProposalReviewed
    | Explanation
    | ExamResult
    | ExplanationScored
    | CoachReport
)
Event = Annotated[
    Message
    | RoundStarted
    | RoundFinished
    | TrainingStarted
    | TrainingStep
    | TrainingFinished
    | AdapterLoaded
    | EvalFinished
    | RunFinished,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def _type_name(cls: type[EventBase]) -> str:
    return str(cls.model_fields["type"].default)


# Message types an agent can put on a graph edge, and the events only the runtime writes.
MESSAGE_TYPES: frozenset[str] = frozenset(_type_name(c) for c in MESSAGE_CLASSES)
LIFECYCLE_TYPES: frozenset[str] = frozenset(_type_name(c) for c in LIFECYCLE_CLASSES)
MESSAGE_DOCS: dict[str, str] = {_type_name(c): (c.__doc__ or "").strip() for c in MESSAGE_CLASSES}


def event_from_json(data: str | bytes) -> Event:
    return EVENT_ADAPTER.validate_json(data)


# --- outcomes: what edge conditions (`when:`) are evaluated on ------------------------------


@dataclass(frozen=True)
class Outcome:
    """The graded result a message is about: successes over graded attempts (of one problem, one
    exam). Attempts the verifier could not judge are `ungraded`, in neither count."""

    attempts: int
    correct: int
    ungraded: int = 0

    @property
    def success_rate(self) -> float:
        return self.correct / self.attempts if self.attempts else 0.0


def accuracy_text(correct: int, graded: int, ungraded: int = 0) -> str:
    """ "accuracy 40.0% (4/10)", with the answers the verifier could not judge beside it (never in
    the accuracy): "accuracy 40.0% (4/10), 2 ungraded"."""
    text = f"accuracy {correct / graded if graded else 0.0:.1%} ({correct}/{graded})"
    return text + (f", {ungraded} ungraded" if ungraded else "")
