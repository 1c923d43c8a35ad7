"""What every LLM-backed role shares: its engine, the policy (LoRA adapter) it serves, its sampling
defaults, and two ways to call its model.

- `sample`: straight to the engine, `n` samples in ONE request (k attempts at a problem), because
  autogen's chat clients return one reply per call and the engine batches n=k far better.
- `converse`: one turn of an autogen-agentchat agent on coevo's `EngineChatCompletionClient`,
  with a pydantic `output_content_type` where the role returns a structure (the engine constrains
  decoding to its JSON schema where it can). The agent is a built-in `AssistantAgent`, or the
  user's own agent when the config names an `autogen:` factory. A fresh agent per call: an agent
  keeps a conversation in its model context, and one role serves many concurrent episodes, so
  sharing one would mix their conversations. The call's seed reaches the engine through the client.

Model output that does not fit the requested structure is returned as text with the parse error,
never raised: the role records it as a failure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from coevo.agents.role import Role, RoleBuild
from coevo.engines.base import ChatMessage, Engine, EngineError, GenerationRequest, GenerationResult
from coevo.tasks.prompts import solver_messages

if TYPE_CHECKING:
    from autogen_agentchat.base import ChatAgent

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


@dataclass
class Policy:
    """The weights an agent serves: the base model (version 0) or a LoRA adapter version."""

    version: int = 0
    adapter: str | None = None  # the engine's adapter name; None = base model

    @property
    def label(self) -> str:
        return "base" if self.version == 0 else f"v{self.version}"


@dataclass(frozen=True)
class Reply(Generic[T]):
    """One agent turn: its text, the structure when one was asked for and parsed, token usage."""

    text: str
    value: T | None
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None
    # The chat messages of the engine call that produced `text` (what a trainer trains on).
    prompt: tuple[ChatMessage, ...] = ()


class LLMRole(Role):
    """A role that runs on a language model served by an engine."""

    def __init__(self, build: RoleBuild) -> None:
        super().__init__(build)
        if build.engine is None:
            raise ValueError(f"agent {build.name!r} ({build.role}) needs an engine")
        self.engine: Engine = build.engine
        self.sampling = build.sampling
        self.prompt_version = build.prompt_version
        self.policy = Policy()

    @property
    def policy_label(self) -> str:
        return self.policy.label

    def eval_messages(self, question: str) -> list[ChatMessage]:
        """The prompt this role's policy is evaluated with on a held-out problem: the Solver's,
        unless the role answers problems in a prompt of its own (a Teacher explaining)."""
        return solver_messages(question)

    async def sample(
        self, messages: Sequence[ChatMessage], *, n: int = 1, seed: int | None = None, **overrides: Any
    ) -> GenerationResult:
        params = replace(self.sampling, n=n, seed=seed, **overrides)
        [result] = await self.engine.generate(
            [GenerationRequest(messages=list(messages), params=params, adapter=self.policy.adapter)]
        )
        return result

    async def converse(
        self, system: str, task: str, *, seed: int | None, output_type: type[T] | None = None
    ) -> Reply[T]:
        """One autogen turn on this role's engine and policy (see the module docstring)."""
        from autogen_agentchat.messages import StructuredMessage

        from coevo.engines.autogen_client import EngineChatCompletionClient

        client = EngineChatCompletionClient(
            self.engine, adapter=self.policy.adapter, params=replace(self.sampling, seed=seed)
        )
        agent = self._agent(client, system, output_type)
        try:
            result = await agent.run(task=task)
        except ValidationError as exc:
            # The model's reply did not validate against the structure asked for (autogen parses it
            # with the output type, whose name the error carries): keep the raw text, and say why it
            # could not be used. Any other error (the engine, a tool, the agent's own setup, another
            # model's validation) is not the model's output: it raises.
            if output_type is None or exc.title != output_type.__name__:
                raise
            usage = client.actual_usage()
            log.debug("%s: the model's structured output did not validate: %s", self.name, exc)
            return Reply(
                client.last_text,
                None,
                usage.prompt_tokens,
                usage.completion_tokens,
                _short(exc),
                tuple(client.last_messages),
            )
        usage = client.total_usage()
        sent = tuple(client.last_messages)
        reply = result.messages[-1]
        if isinstance(reply, StructuredMessage):
            value = reply.content if output_type and isinstance(reply.content, output_type) else None
            return Reply(client.last_text, value, usage.prompt_tokens, usage.completion_tokens, prompt=sent)
        text = reply.to_text() if hasattr(reply, "to_text") else str(reply)
        if output_type is None:
            return Reply(text, None, usage.prompt_tokens, usage.completion_tokens, prompt=sent)
        try:
            value = output_type.model_validate_json(text)
        except ValidationError as exc:
            return Reply(text, None, usage.prompt_tokens, usage.completion_tokens, _short(exc), sent)
        return Reply(text, value, usage.prompt_tokens, usage.completion_tokens, prompt=sent)

    def _agent(self, client: Any, system: str, output_type: type[BaseModel] | None) -> ChatAgent:
        factory = self.build.autogen_factory
        if factory is not None:
            agent = factory(name=_identifier(self.name), model_client=client, system_message=system)
            from autogen_agentchat.base import ChatAgent

            if not isinstance(agent, ChatAgent):
                raise EngineError(
                    f"the autogen factory of agent {self.name!r} returned {type(agent).__name__}, "
                    "not an autogen-agentchat agent"
                )
            return agent
        from autogen_agentchat.agents import AssistantAgent

        return AssistantAgent(
            _identifier(self.name),
            model_client=client,
            system_message=system,
            output_content_type=output_type,
        )


def _identifier(name: str) -> str:
    # autogen-agentchat requires agent names to be Python identifiers; config names may hold "-".
    cleaned = re.sub(r"\W", "_", name)
    return cleaned if cleaned.isidentifier() else f"agent_{cleaned}"


def _short(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {first}"[:300]
