"""What every LLM-backed role shares: its engine, the policy (LoRA adapter) it currently serves,
its sampling defaults, and a way to run it as an autogen-agentchat `AssistantAgent`.

Group sampling (k attempts at one problem) goes straight to the engine as one request with
`n=k`, because autogen's clients cannot ask for several samples; single-turn conversational
roles (an LLM Teacher, the Coach) run as autogen agents on the same engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from coevo.engines.base import ChatMessage, Engine, GenerationRequest, GenerationResult, SamplingParams

if TYPE_CHECKING:
    from autogen_agentchat.agents import AssistantAgent


@dataclass
class Policy:
    """The weights an agent serves: the base model (version 0) or a LoRA adapter version."""

    version: int = 0
    adapter: str | None = None  # the engine's adapter name; None = base model

    @property
    def label(self) -> str:
        return "base" if self.version == 0 else f"v{self.version}"


@dataclass
class LLMRole:
    name: str
    engine: Engine
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prompt_version: str = "v1"
    policy: Policy = field(default_factory=Policy)

    async def complete(
        self, messages: Sequence[ChatMessage], *, n: int = 1, seed: int | None = None, **overrides: Any
    ) -> GenerationResult:
        params = replace(self.sampling, n=n, seed=seed, **overrides)
        [result] = await self.engine.generate(
            [GenerationRequest(messages=list(messages), params=params, adapter=self.policy.adapter)]
        )
        return result

    def autogen_agent(self, system_message: str) -> AssistantAgent:
        """This role as an autogen `AssistantAgent` served by its engine and current policy."""
        from autogen_agentchat.agents import AssistantAgent

        from coevo.engines.autogen_client import EngineChatCompletionClient

        client = EngineChatCompletionClient(self.engine, adapter=self.policy.adapter, params=self.sampling)
        return AssistantAgent(self.name, model_client=client, system_message=system_message)

    async def converse(self, system_message: str, task: str) -> tuple[str, int, int]:
        """One autogen turn: the agent's reply text and (prompt, completion) token usage."""
        agent = self.autogen_agent(system_message)
        result = await agent.run(task=task)
        reply = result.messages[-1]
        text = reply.to_text() if hasattr(reply, "to_text") else str(reply)
        usage = getattr(reply, "models_usage", None)
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        return text, prompt_tokens, completion_tokens
