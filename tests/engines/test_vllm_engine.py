"""The vLLM engine on the built-in model: real generation, seeded sampling, LoRA hot-loading, the
same greedy text from a LoRA policy whether it is served merged or as a vLLM adapter, and the
Coach's report schema enforced by constrained decoding."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from coevo.engines.base import EngineError, GenerationRequest, SamplingParams
from coevo.engines.vllm_engine import VLLMEngine

# The shared engine lives on the session event loop, so these tests must run on it too.
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

QUESTION = "What is 17 + 25?"
# Read when this module is imported, before any engine of the session starts.
AOT_SETTING_BEFORE = os.environ.get("VLLM_USE_AOT_COMPILE")


def ask(adapter: str | None = None, **params: object) -> GenerationRequest:
    defaults: dict[str, object] = {"max_tokens": 24}
    defaults.update(params)
    return GenerationRequest(
        messages=[{"role": "user", "content": QUESTION}],
        params=SamplingParams(**defaults),  # type: ignore[arg-type]
        adapter=adapter,
    )


async def greedy_text(engine: VLLMEngine, adapter: str | None = None) -> str:
    [result] = await engine.generate([ask(adapter)])
    return result.completions[0].text


async def test_greedy_generation_is_nonempty_and_deterministic(vllm_engine: VLLMEngine) -> None:
    first, second = await vllm_engine.generate([ask(), ask()])
    assert first.completions[0].text.strip()
    assert first.completions == second.completions
    completion = first.completions[0]
    assert first.completion_tokens == len(completion.token_ids) > 0
    assert first.prompt_tokens > 5  # the chat template adds a system prompt and role markers
    assert completion.finish_reason in {"stop", "length"}


async def test_max_tokens_and_logprobs(vllm_engine: VLLMEngine) -> None:
    [result] = await vllm_engine.generate([ask(max_tokens=3, logprobs=True)])
    completion = result.completions[0]
    assert len(completion.token_ids) == 3
    assert completion.finish_reason == "length"
    assert completion.logprobs is not None and len(completion.logprobs) == 3
    assert all(lp <= 0.0 for lp in completion.logprobs)


async def test_seeded_sampling_with_n_is_reproducible(vllm_engine: VLLMEngine) -> None:
    request = ask(n=4, temperature=1.0, seed=7)
    [a] = await vllm_engine.generate([request])
    [b] = await vllm_engine.generate([request])
    assert len(a.completions) == 4
    assert [c.text for c in a.completions] == [c.text for c in b.completions]
    assert len({c.text for c in a.completions}) > 1  # the n samples differ from each other


async def test_concurrent_callers_all_get_answers(vllm_engine: VLLMEngine) -> None:
    results = await asyncio.gather(*(vllm_engine.generate([ask(max_tokens=8)]) for _ in range(16)))
    texts = {r[0].completions[0].text for r in results}
    assert len(texts) == 1 and texts != {""}


async def test_lora_changes_output_and_base_is_unchanged(vllm_engine: VLLMEngine, lora_adapter: Path) -> None:
    base = await greedy_text(vllm_engine)
    await vllm_engine.load_adapter("random-lora", lora_adapter)
    tuned, base_again = await asyncio.gather(
        greedy_text(vllm_engine, "random-lora"), greedy_text(vllm_engine)
    )
    assert tuned != base
    assert base_again == base


async def test_interleaved_policies_each_get_their_own_weights(
    vllm_engine: VLLMEngine, lora_adapter: Path
) -> None:
    # With merged weights the engine swaps policies between requests; none may see the wrong one.
    await vllm_engine.load_adapter("interleaved", lora_adapter)
    base, tuned = await greedy_text(vllm_engine), await greedy_text(vllm_engine, "interleaved")
    policies = ["interleaved" if i % 2 else None for i in range(8)]
    texts = await asyncio.gather(*(greedy_text(vllm_engine, policy) for policy in policies))
    assert texts == [tuned if policy else base for policy in policies]


async def test_replacing_an_adapter_uses_the_new_weights(
    vllm_engine: VLLMEngine, lora_adapter: Path, second_lora_adapter: Path, tmp_path: Path
) -> None:
    await vllm_engine.load_adapter("first", lora_adapter)
    await vllm_engine.load_adapter("second", second_lora_adapter)
    first = await greedy_text(vllm_engine, "first")
    second = await greedy_text(vllm_engine, "second")
    assert first != second

    # A trainer overwrites the same folder with new weights and reloads it under the same name.
    folder = tmp_path / "policy"
    shutil.copytree(lora_adapter, folder)
    await vllm_engine.load_adapter("policy", folder)
    assert await greedy_text(vllm_engine, "policy") == first
    shutil.rmtree(folder)
    shutil.copytree(second_lora_adapter, folder)
    await vllm_engine.load_adapter("policy", folder)
    assert await greedy_text(vllm_engine, "policy") == second


async def test_unknown_adapter_names_the_known_ones(vllm_engine: VLLMEngine, lora_adapter: Path) -> None:
    await vllm_engine.load_adapter("known-one", lora_adapter)
    with pytest.raises(EngineError, match=r"unknown adapter 'nope'.*known-one"):
        await vllm_engine.generate([ask("nope")])


async def test_bad_adapter_folder_is_a_clear_error(vllm_engine: VLLMEngine, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not a PEFT LoRA adapter"):
        await vllm_engine.load_adapter("broken", tmp_path)


async def test_stop_strings_end_the_completion(vllm_engine: VLLMEngine) -> None:
    base = await greedy_text(vllm_engine)
    stop = base.strip().split()[1] if len(base.split()) > 1 else base.strip()[:2]
    [result] = await vllm_engine.generate([ask(stop=(stop,))])
    assert stop not in result.completions[0].text
    assert result.completions[0].finish_reason == "stop"


async def test_starting_the_engine_leaves_the_process_environment_as_it_was(vllm_engine: VLLMEngine) -> None:
    # The engine turns vLLM's AOT compile cache off on CPU through the environment, which vLLM's
    # engine process reads when it starts: set for the start only, not for the rest of the process.
    if AOT_SETTING_BEFORE is not None:
        pytest.skip("VLLM_USE_AOT_COMPILE is set in this environment")
    assert "VLLM_USE_AOT_COMPILE" not in os.environ


SOLVER_QUESTIONS = ["What is 17 + 25?", "Tom has 3 apples and buys 4 more. How many apples does he have?"]


@pytest.fixture(scope="session")
def greedy_by_serving_mode() -> dict[str, dict[str, str]]:
    """Each serving mode's greedy answers in the comparison below, kept for the other mode's run
    (the two engines never run at once: pytest closes one mode's before starting the other's)."""
    return {}


async def test_merged_and_adapter_serving_give_a_lora_policy_the_same_greedy_text(
    vllm_engine: VLLMEngine,
    lora_adapter: Path,
    mild_lora_adapter: Path,
    greedy_by_serving_mode: dict[str, dict[str, str]],
    request: pytest.FixtureRequest,
) -> None:
    # LoRA policies only. The base model's own greedy text is not the same in both modes: with
    # LoRA enabled ("adapter") vLLM's base-model numerics differ from plain bf16 ("merged"), and on
    # the first of these prompts they pick different near-tied first tokens (measured; transformers
    # in fp32 agrees with one mode, in bf16 with the other).
    from coevo.tasks.prompts import solver_messages

    mode = vllm_engine.lora_serving
    await vllm_engine.load_adapter("strong-policy", lora_adapter)
    await vllm_engine.load_adapter("mild-policy", mild_lora_adapter)
    texts: dict[str, str] = {}
    for adapter in (None, "strong-policy", "mild-policy"):
        for question in SOLVER_QUESTIONS:
            # One request at a time, so both modes compute the same batches.
            request_ = GenerationRequest(solver_messages(question), SamplingParams(max_tokens=32), adapter)
            [result] = await vllm_engine.generate([request_])
            texts[f"{adapter}: {question}"] = result.completions[0].text
    for question in SOLVER_QUESTIONS:  # each policy really answers differently from the base model
        assert len({texts[f"{a}: {question}"] for a in (None, "strong-policy", "mild-policy")}) == 3
    policies = {k: v for k, v in texts.items() if not k.startswith("None")}
    greedy_by_serving_mode[mode] = policies
    other = "adapter" if mode == "merged" else "merged"
    if other in greedy_by_serving_mode:
        assert policies == greedy_by_serving_mode[other]
    elif request.node.nodeid.replace(f"[{mode}]", f"[{other}]") not in {
        i.nodeid for i in request.session.items
    }:
        pytest.skip(f"compares with the {other} mode's answers, and that mode's run is not selected")


async def test_the_coach_s_report_schema_is_enforced_greedy_and_at_temperature_1(
    vllm_engine: VLLMEngine,
) -> None:
    # What the Coach sends (autogen client → engine): its prompt, a transcript, the JSON schema of
    # its report, and the token budget configs/coach.yaml gives it. 4 samples at temperature 1.0
    # and the greedy reply in each serving mode (the schema does not depend on it): 8 and 2 in all.
    import json

    from coevo.agents.coach import COACH_PROMPTS, INSTRUMENT_ITEMS, CoachReview, parse_coach_report
    from coevo.engines.autogen_client import json_schema_for
    from coevo.society.loading import load_config

    coach = load_config(Path(__file__).resolve().parents[2] / "configs" / "coach.yaml").agents["coach"]
    max_tokens = coach.sampling["max_tokens"]
    messages = [
        {"role": "system", "content": COACH_PROMPTS["v1"]},
        {
            "role": "user",
            "content": 'teacher (teacher) explains "What is 2 + 3?":\nAdd 2 and 3. The answer is 5.\n'
            "student (student) exam: 1/2 correct (answers: 5, 7)",
        },
    ]
    schema = json_schema_for(CoachReview)
    sampled, greedy = await vllm_engine.generate(
        [
            GenerationRequest(
                messages,
                SamplingParams(n=4, temperature=1.0, seed=1, max_tokens=max_tokens, json_schema=schema),
            ),
            GenerationRequest(messages, SamplingParams(max_tokens=max_tokens, json_schema=schema)),
        ]
    )
    replies = [*sampled.completions, *greedy.completions]
    assert len(replies) == 5
    for reply in replies:
        # Every reply closes inside the budget and is the schema's JSON, but for raw control
        # characters inside its strings, which the grammar lets through (JSON forbids them; the
        # Coach reads them): every item scored, an integer on its scale.
        assert reply.finish_reason == "stop", reply.text
        CoachReview.model_validate(json.loads(reply.text, strict=False))
        fields = parse_coach_report(reply.text)
        assert set(fields.scores) == set(INSTRUMENT_ITEMS) and fields.parse_error is None, reply.text
