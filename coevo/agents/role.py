"""What a role is to the runtime: a handler of delivered messages, and its registry entry (`RoleSpec`).

The runtime (coevo.society.router) calls, per round, `begin_round` on every agent, then per
episode `open` on the agents that open episodes (problem sources), then `handle` with each batch
of messages the role graph delivers to an agent; a handler answers through its `Context`
(`ctx.emit`), which routes along the graph's edges. After the round, `end_round` lets an agent
apply what it learned (a curriculum's learning progress, a Coach's suggestions) in a fixed order
and report its figures for the round.

`Context` is a Protocol so roles do not import the runtime that implements it; `RoleBuild` is
everything a role is built from, already resolved from the config by the society.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from coevo.engines.base import SamplingParams
from coevo.messages import Message, Outcome
from coevo.tasks.problem import Problem

if TYPE_CHECKING:
    from coevo.engines.base import Engine
    from coevo.tasks.curriculum import CurriculumTeacher
    from coevo.tasks.verifier import Grader

# The prompt version an agent gets without `prompt_version:` (the only one a role without prompt
# tables of its own accepts).
DEFAULT_PROMPT_VERSION = "v1"


@dataclass(frozen=True)
class AttemptData:
    """One graded attempt, as the attempts table stores it."""

    problem_id: str
    agent: str
    policy_version: str | None
    attempt_index: int
    response: str
    extracted_answer: str | None
    correct: bool
    reward: float
    failure: str | None
    finish_reason: str | None
    completion_tokens: int
    skills: tuple[str, ...] = ()
    # False when the verifier could not judge it (see coevo.tasks.answers.UNGRADED_FAILURES);
    # `detail` says why.
    graded: bool = True
    detail: str | None = None


class Context(Protocol):
    """An agent's view of the episode it acts in (one per activation)."""

    round: int
    episode: int
    # The episode's seed; `opening` is True while the episode's first messages are handled.
    episode_seed: int
    opening: bool
    grader: Grader
    # Where this activation stands in the round: (episode, hops from the opening, a key of the
    # messages handled). Sorting by it orders a round's effects the same way in every run.
    order: tuple[Any, ...]

    def seed(self, *parts: object) -> int:
        """A seed for this activation, derived from the episode's seed, the agent and the messages
        it handles (so it is the same however concurrent episodes interleave), and `parts`."""
        ...

    def routes(self, message_type: str, outcome: Outcome | None = None) -> list[str]:
        """The agents a message of this type would reach now (edges, conditions, turns left), so
        a handler can skip work nobody would receive."""
        ...

    def emit(
        self, message: Message, *, outcome: Outcome | None = None, reply_to: Sequence[Message] | None = None
    ) -> Message:
        """Send a message: it gets its id, is journaled, and is delivered along every edge from
        this agent that carries its type, whose condition holds on `outcome` and that has turns
        left (a message no edge carries is still stored, with no recipients). It answers the
        handled batch, or just `reply_to` where it answers part of it."""
        ...

    def problem(self, problem_id: str) -> Problem | None:
        """A problem posed in this run (this round, or stored by an earlier one)."""
        ...

    def add_problem(self, problem: Problem, *, in_curriculum: bool = False) -> None:
        """Make a problem known to the run (and stored with this round)."""
        ...

    def record_attempt(self, attempt: AttemptData) -> None: ...

    def policy_of(self, agent: str) -> str:
        """The policy label another agent serves now ("base", "v1", ...)."""
        ...


@dataclass
class RoleBuild:
    """Everything a role is built from (resolved from the config by the society)."""

    name: str
    role: str
    policy: str | None
    engine: Engine | None
    params: BaseModel
    grader: Grader
    run_seed: int = 0
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prompt_version: str = DEFAULT_PROMPT_VERSION
    # Attempts per problem (schedule.attempts_per_problem) and the curriculum's success band.
    attempts: int = 1
    success_band: tuple[float, float] = (0.0, 1.0)
    curriculum: CurriculumTeacher | None = None
    pool: tuple[Problem, ...] = ()
    # A user's autogen-agentchat agent factory: (name, model_client, system_message) -> agent.
    autogen_factory: Callable[..., Any] | None = None


class Role:
    """Base class of every role. Subclasses are registered with `register_role`, which sets `spec`."""

    spec: ClassVar[RoleSpec]

    def __init__(self, build: RoleBuild) -> None:
        self.name = build.name
        self.build = build

    @property
    def policy_label(self) -> str:
        return "procedural"

    async def begin_round(self, round_index: int, episodes: int, rng: random.Random) -> int:
        """Prepare a round of `episodes` new episodes; a role that opens episodes returns how
        many it can open (fewer when its source runs dry), others return 0."""
        return 0

    async def open(self, ctx: Context, slot: int) -> None:
        """Open new episode number `slot` of this round (roles whose spec has `opens`)."""
        raise NotImplementedError(f"{type(self).__name__} does not open episodes")

    async def handle(self, ctx: Context, inbox: Sequence[Message]) -> None:
        """Handle one batch of delivered messages."""
        raise NotImplementedError(f"{type(self).__name__} handles no messages")

    def end_round(self, round_index: int) -> dict[str, float]:
        """Apply what the round taught (in a fixed order) and return the round's figures."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved (after a resume)."""


Activation = Literal["any", "all"]
EngineUse = Literal["required", "none"]


class NoParams(BaseModel):
    """A role without settings of its own: `params:` must be empty."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class RoleSpec:
    """What the checker and the runtime know about a role (one policy variant of it)."""

    name: str
    summary: str
    factory: Callable[[RoleBuild], Role]
    # Message type it accepts -> the message types it may send in reply.
    handles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Message types it sends when it opens an episode (a problem source such as a Teacher).
    opens: frozenset[str] = frozenset()
    # Accepted types whose reply must leave along an edge, or the work is thrown away (a Solver
    # whose attempts nobody grades); other replies are stored even when no edge carries them.
    needs_reply: frozenset[str] = frozenset()
    # Fan-in per accepted type: "any" handles each batch as it arrives, "all" waits until the
    # episode is otherwise quiet and handles everything that arrived together.
    activation: Mapping[str, Activation] = field(default_factory=dict)
    engine: EngineUse = "required"
    params: type[BaseModel] = NoParams
    policy: str | None = None
    # Types it sends with an `Outcome` (the graded attempts behind them): only an edge carrying one
    # of these can have a `when` condition, since a condition on a message without one never holds.
    outcomes: frozenset[str] = frozenset()
    # Accepted types it can be handed as the first message of an episode of a later round
    # (`deliver: next_round`): those whose handling, and the answers it sends, need nothing the
    # sender keeps only for the round it sent them in (a Teacher scores an exam only in the round
    # of the explanation it examines, so an ExamResult cannot wait).
    holdable: frozenset[str] = frozenset()
    # The `prompt_version`s an agent of this role may name: the keys of the prompt tables it reads.
    prompts: frozenset[str] = frozenset({DEFAULT_PROMPT_VERSION})
    # How many of each opening type one opening sends, given the agent's params (an LLM Teacher
    # sends `explanations` rationales); None: one of each. An opening edge's turns follow it.
    opening_counts: Callable[[Any], Mapping[str, int]] | None = None

    @property
    def label(self) -> str:
        """How messages and docs name it: "solver", "teacher (procedural)"."""
        return f"{self.name} ({self.policy})" if self.policy else self.name

    @property
    def accepts(self) -> frozenset[str]:
        return frozenset(self.handles)

    @property
    def produces(self) -> frozenset[str]:
        replies: set[str] = set(self.opens)
        for emitted in self.handles.values():
            replies |= emitted
        return frozenset(replies)

    def activation_of(self, message: str) -> Activation:
        return self.activation.get(message, "any")
