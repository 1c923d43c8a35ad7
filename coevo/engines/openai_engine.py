"""`OpenAIEngine`: an `Engine` on any OpenAI-compatible chat server (`vllm serve`, a hosted API).

Each request is one `/v1/chat/completions` call (n samples in one call); requests run
concurrently up to `max_concurrency`, so the server's own batching sees them together.
LoRA adapters follow vLLM's convention: an adapter is served under its own model name and
hot-loaded through `/v1/load_lora_adapter` (the server needs `--enable-lora` and
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`).

Transport failures, 429 and 5xx answers are retried with exponential backoff; other 4xx
answers fail at once with the server's own message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from coevo.engines.base import Completion, EngineError, GenerationRequest, GenerationResult

_MAX_BACKOFF_S = 30.0


class _RetriableError(Exception):
    """A failure worth another attempt (connection refused, timeout, 429, 5xx)."""


def _server_message(status: int, body: str) -> str:
    """The human part of an error answer: OpenAI's {"error": {"message"}}, vLLM's {"message"}, or the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP {status}: {body.strip()[:500]}"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and "message" in err:
            return f"HTTP {status}: {err['message']}"
        if "message" in data:
            return f"HTTP {status}: {data['message']}"
    return f"HTTP {status}: {body.strip()[:500]}"


def _split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """`url` without its userinfo, and the (user, password) it held, if any."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


class OpenAIEngine:
    """Chat completions against an OpenAI-compatible server, with retries and LoRA hot-loading."""

    kind = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str = "EMPTY",
        max_retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 120,
        max_concurrency: int = 256,
        return_token_ids: bool = True,
    ) -> None:
        if max_retries < 0 or max_concurrency < 1:
            raise EngineError("max_retries must be >= 0 and max_concurrency >= 1")
        self.model = model
        # Credentials in the URL (`http://user:password@host`) are sent as HTTP basic auth, as
        # httpx would; the URL the engine keeps, and names in its messages, holds none.
        base_url, self._basic_auth = _split_credentials(base_url)
        # Accept both "http://host:port" and the OpenAI-style "http://host:port/v1".
        root = base_url.rstrip("/")
        self.root_url = root[: -len("/v1")] if root.endswith("/v1") else root
        self.base_url = self.root_url + "/v1"
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        # vLLM returns generated token ids when asked; strict servers (OpenAI) reject the field.
        self.return_token_ids = return_token_ids
        self._api_key = api_key
        self._loaded_adapters: set[str] = set()
        # httpx clients and semaphores belong to one event loop; they are rebuilt on another.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._slots: asyncio.Semaphore | None = None

    # ----------------------------------------------------------------- Engine protocol

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return list(await asyncio.gather(*(self._generate_one(r) for r in requests)))

    async def load_adapter(self, name: str, path: str | Path) -> None:
        local = Path(path)
        # The server reads the path itself; an absolute path is right for a local server.
        lora_path = str(local.resolve()) if local.exists() else str(path)
        if name in self._loaded_adapters:
            await self._unload_adapter(name)
        status, body = await self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": lora_path})
        if status == 400 and "already been loaded" in body:
            # Loaded by an earlier process or engine: replace it, as the protocol promises.
            await self._unload_adapter(name)
            status, body = await self._post(
                "/v1/load_lora_adapter", {"lora_name": name, "lora_path": lora_path}
            )
        if status == 404 and '"Not Found"' in body:
            # FastAPI's answer for a route that does not exist.
            raise EngineError(
                f"{self.root_url} has no /v1/load_lora_adapter endpoint: start vLLM with --enable-lora "
                "and the environment variable VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
            )
        if status >= 400:
            raise EngineError(
                f"loading LoRA adapter {name!r} from {lora_path} on {self.root_url} failed: "
                + _server_message(status, body)
            )
        self._loaded_adapters.add(name)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ----------------------------------------------------------------- requests

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        p = request.params
        payload: dict[str, Any] = {
            "model": request.adapter or self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages],
            "n": p.n,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
        }
        if p.seed is not None:
            payload["seed"] = p.seed
        if p.json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": str(p.json_schema.get("title", "reply")), "schema": p.json_schema},
            }
        if p.stop:
            payload["stop"] = list(p.stop)
        if p.logprobs:
            payload["logprobs"] = True
        if self.return_token_ids:
            payload["return_token_ids"] = True
        return payload

    async def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        status, body = await self._post("/v1/chat/completions", self._payload(request))
        if status >= 400:
            raise EngineError(f"chat completion on {self.base_url} failed: {_server_message(status, body)}")
        try:
            return self._parse(json.loads(body), request.params.logprobs)
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"unexpected chat completion answer from {self.base_url}: {exc!r}") from exc

    @staticmethod
    def _parse(data: dict[str, Any], want_logprobs: bool) -> GenerationResult:
        completions = []
        for choice in sorted(data["choices"], key=lambda c: c.get("index", 0)):
            logprobs: tuple[float, ...] | None = None
            if want_logprobs and choice.get("logprobs"):
                logprobs = tuple(float(t["logprob"]) for t in choice["logprobs"].get("content") or [])
            completions.append(
                Completion(
                    text=choice["message"].get("content") or "",
                    token_ids=tuple(choice.get("token_ids") or ()),
                    finish_reason=choice.get("finish_reason") or "stop",
                    logprobs=logprobs,
                )
            )
        usage = data.get("usage") or {}
        return GenerationResult(
            completions=tuple(completions),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )

    async def _unload_adapter(self, name: str) -> None:
        status, body = await self._post("/v1/unload_lora_adapter", {"lora_name": name})
        # 404: already gone, which is what we wanted.
        if status >= 400 and status != 404:
            raise EngineError(
                f"unloading LoRA adapter {name!r} on {self.root_url} failed: {_server_message(status, body)}"
            )
        self._loaded_adapters.discard(name)

    # ----------------------------------------------------------------- transport

    def _session(self) -> tuple[Any, asyncio.Semaphore]:
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._loop = loop
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s,
                auth=self._basic_auth,
                headers={"Authorization": f"Bearer {self._api_key}"},
                limits=httpx.Limits(max_connections=self.max_concurrency),
            )
            self._slots = asyncio.Semaphore(self.max_concurrency)
        assert self._slots is not None
        return self._client, self._slots

    async def _post(self, path: str, payload: dict[str, Any]) -> tuple[int, str]:
        """POST with retries; returns the final (status, body) of a non-retriable answer."""
        import httpx

        client, slots = self._session()
        url = self.root_url + path
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            try:
                async with slots:
                    response = await client.post(url, json=payload)
                if response.status_code == 429 or response.status_code >= 500:
                    raise _RetriableError(_server_message(response.status_code, response.text))
                return response.status_code, response.text
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            except _RetriableError as exc:
                last = str(exc)
        raise EngineError(f"{url} failed after {attempts} attempts; last error: {last}")
