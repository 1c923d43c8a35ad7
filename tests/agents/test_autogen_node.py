"""A user's own autogen-agentchat agent as a node of a society (configs/autogen_tool.yaml): an
AssistantAgent with a calculator tool in the Solver's place, on the replay engine. The stand-in
model calls the tool (in coevo's text protocol) and answers with its result, so every attempt the
Teacher grades is right, and each attempt was its own seeded run of the agent."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path

from coevo.engines.base import ChatMessage, SamplingParams
from coevo.engines.replay import ReplayEngine
from coevo.memory.store import Store
from coevo.society.loading import load_config
from coevo.society.session import run_id_for, run_society

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "autogen_tool.yaml"


def tool_using_model(
    messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None, index: int, seed: int | None
) -> str:
    last = messages[-1]["content"]
    if last.startswith("Result of calculator:"):
        return f"The answer is {last.split(':', 1)[1].strip()}."
    assert "<tool_call>" in messages[0]["content"], "the tool is offered in the system message"
    expression = re.search(r"\d[\d\s+\-*/()]*\d", last)
    assert expression is not None
    call = {"name": "calculator", "arguments": {"expression": expression.group(0)}}
    return f"<tool_call>{json.dumps(call)}</tool_call>"


def test_a_users_autogen_agent_with_a_tool_solves_in_the_solver_s_place(tmp_path: Path) -> None:
    config = load_config(CONFIG)
    engine = ReplayEngine(tool_using_model)
    asyncio.run(run_society(config, tmp_path / "run", resume=False, engines={"local": engine}))
    store = Store.for_run_dir(tmp_path / "run")
    run_id = run_id_for(tmp_path / "run")
    attempts = store.attempts(run_id)
    k, n = config.schedule.attempts_per_problem, config.schedule.problems_per_round
    assert len(attempts) == k * n and all(a.correct for a in attempts)
    # Each attempt is two model calls (the tool call, then the answer after the tool's result).
    assert len(engine.served_adapters) == 2 * k * n
