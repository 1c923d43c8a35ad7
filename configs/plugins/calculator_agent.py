"""An example of a user's own autogen-agentchat agent placed in a society (configs/autogen_tool.yaml):
an `AssistantAgent` with a calculator tool, standing in the Solver's place. coevo hands the factory
its engine-backed model client; the agent may call the tool before it answers.

coevo offers tools to models in text (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`,
see coevo.engines.autogen_client), so any chat model can use them; how well a 135M model does is
another matter: this file shows the wiring, the replay-engine test shows it working end to end.
"""

from __future__ import annotations

from typing import Any

from coevo.tasks.arithmetic import evaluate


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with + - * / and brackets, exactly."""
    value = evaluate(expression)
    if value is None:
        return "error: not an arithmetic expression"
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def make_agent(name: str, model_client: Any, system_message: str) -> Any:
    """The factory named in the config: (name, model_client, system_message) -> an autogen agent."""
    from autogen_agentchat.agents import AssistantAgent

    return AssistantAgent(
        name,
        model_client=model_client,
        system_message=system_message + " Use the calculator tool for arithmetic.",
        tools=[calculator],
        reflect_on_tool_use=True,
    )
