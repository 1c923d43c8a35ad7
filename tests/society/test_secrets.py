"""Literal secrets are used, never written down or printed (coevo.society.secrets).

Distinctive secrets are planted through every source — an API key in the config file, another
given with `--set`, a password in an openai engine's base_url, a bare token as a URL's userinfo
(`http://TOKEN@host`), a password in the memory URL — and the real command line runs on them in
subprocesses: `coevo check` with errors and without, `coevo run` against a closed port (it fails),
`coevo run --resume` without the key, and with it against a server that quotes the credentials it
received back in its error, `coevo show`, `coevo runs` and `coevo export` on a finished run (run in
this process on the replay engine, since `coevo run` refuses the test double). Then every file of
the run folders and the export (the SQLite database and its WAL included), every row of a
PostgreSQL memory, and everything printed is searched for each secret: none may appear.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from coevo.engines.base import EngineError, GenerationRequest, SamplingParams
from coevo.engines.openai_engine import OpenAIEngine
from coevo.memory.store import Store
from coevo.society.checker import make_replay_engines
from coevo.society.config import parse_structure
from coevo.society.config_errors import ConfigError
from coevo.society.loading import parse_config
from coevo.society.secrets import MASK, engine_options, mask, mask_override, mask_url, redact, remember
from coevo.society.session import CONFIG_SNAPSHOT, MARKER, RunDirError, load_snapshot, run_id_for, run_society
from tests.society.replay_society import CONFIG, ROOT, replay_config

FILE_KEY = "sk-planted-file-4f1c9e2d7b"
SET_KEY = "sk-planted-set-8a3e6b0c5d"
URL_PASSWORD = "pw-planted-url-2b7d9f4e1a"
URL_TOKEN = "TokPlantedUserinfo6c0a8e3f9b"  # mixed case, many digits: not a plain user name
MEMORY_PASSWORD = "pw-planted-memory-5e9b1d7c3f"
SECRETS = (FILE_KEY, SET_KEY, URL_PASSWORD, URL_TOKEN, MEMORY_PASSWORD)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openai_society(base_url: str) -> str:
    """The replay test society with its model on an openai engine holding a literal key."""
    options = f"{{api_key: {FILE_KEY}, base_url: '{base_url}', max_retries: 0}}"
    engine = f"{{kind: openai, model: m, options: {options}}}"
    return CONFIG.replace("  local: {kind: replay, model: replay}", f"  local: {engine}")


class _QuotingServer(BaseHTTPRequestHandler):
    """An OpenAI-style server that refuses every request, quoting the credentials it got (a Bearer
    key, or basic auth's `user:password`) in its error message, as some servers do."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        received = base64.b64decode(value).decode() if scheme == "Basic" else value
        self.server.received.append(received)  # type: ignore[attr-defined]
        body = json.dumps({"error": {"message": f"invalid credentials: {received}"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # its request log is not the test's output


@pytest.fixture
def quoting_server() -> Iterator[tuple[int, list[str]]]:
    """The server's port, and the credentials it received, request by request."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _QuotingServer)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


class Console:
    """Runs the real command line in a subprocess and keeps everything it printed."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.printed: list[str] = []

    def __call__(self, *argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "coevo.cli", *argv],
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=300,
        )
        self.printed.append(done.stdout + done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done


def _files_holding(folder: Path, secret: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def assert_nowhere(folders: list[Path], printed: list[str], rows: str = "") -> None:
    for secret in SECRETS:
        for folder in folders:
            assert _files_holding(folder, secret) == [], f"{secret} written in {folder}"
        for output in printed:
            assert secret not in output, f"{secret} printed:\n{output}"
        assert secret not in rows, f"{secret} stored in the database"


def _all_rows(url: str) -> str:
    """Every row of every coevo table in the database at `url`, as text."""
    from sqlalchemy import create_engine, select

    from coevo.memory.tables import TABLES

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return "\n".join(repr(row) for table in TABLES for row in conn.execute(select(table)))
    finally:
        engine.dispose()


# --- the command line, end to end ---------------------------------------------------------------------


def test_literal_secrets_reach_no_file_database_or_output(
    tmp_path: Path, quoting_server: tuple[int, list[str]]
) -> None:
    port, received = quoting_server
    closed = _free_port()  # nothing listens there once the probe socket is closed
    society = tmp_path / "society.yaml"
    society.write_text(_openai_society(f"http://coevo:{URL_PASSWORD}@127.0.0.1:{closed}/v1"))
    coevo = Console(tmp_path)

    # `coevo check`: a malformed --set, a memory URL that does not parse, then a valid config.
    bad_set = coevo("check", str(society), "--set", f"engines.local.options.api_key:{SET_KEY}")
    assert bad_set.returncode == 2 and "engines.local.options.api_key: expected KEY=VALUE" in bad_set.stderr
    bad_url = f"memory.url=postgresql://coevo:{MEMORY_PASSWORD}@127.0.0.1:no-port/coevo"
    bad_memory = coevo("check", str(society), "--set", bad_url)
    assert bad_memory.returncode == 2 and f"coevo:{MASK}@127.0.0.1:no-port" in bad_memory.stderr
    shown = coevo("show", bad_url.removeprefix("memory.url="))
    assert shown.returncode == 2 and "not a database URL" in shown.stderr
    ok = coevo("check", str(society), "--set", f"engines.local.options.api_key={SET_KEY}")
    assert ok.returncode == 0 and f"'api_key': '{MASK}'" in ok.stdout and f"coevo:{MASK}@" in ok.stdout

    # `coevo run` against a closed port fails; the folder it leaves holds no secret.
    failed = coevo("run", str(society), "--run-dir", "failed", "--no-tui")
    assert failed.returncode == 2 and f"127.0.0.1:{closed}" in failed.stderr, failed.stderr
    # Resuming asks for the literal key again rather than run without it ...
    again = coevo("run", "--resume", "failed", "--no-tui")
    assert again.returncode == 2 and "literal secret" in again.stderr
    refused = coevo("run", "--resume", "failed", "--set", f"agents.solver.params.token={SET_KEY}")
    assert refused.returncode == 2 and f'cannot apply agents.solver.params.token="{MASK}"' in refused.stderr
    # ... and uses what it is given, against a server that quotes it back: a key, then a URL's token.
    with_key = [
        f"engines.local.options.api_key={SET_KEY}",
        f"engines.local.options.base_url=http://127.0.0.1:{port}/v1",
    ]
    with_token = [with_key[0], f"engines.local.options.base_url=http://{URL_TOKEN}@127.0.0.1:{port}/v1"]
    for overrides in (with_key, with_token):
        resumed = coevo("run", "--resume", "failed", "--no-tui", *(f"--set={o}" for o in overrides))
        assert resumed.returncode == 2 and f"invalid credentials: {MASK}" in resumed.stderr, resumed.stderr
    # The secrets were used: sent as a Bearer key, and as basic auth (by each request of a round).
    assert set(received) == {SET_KEY, f"{URL_TOKEN}:"}
    store = Store.for_run_dir(tmp_path / "failed")
    recorded = store.get_state(run_id_for(tmp_path / "failed"), "resume_overrides")
    store.close()
    assert [entry["overrides"] for entry in recorded] == [
        [mask_override(o) for o in ov] for ov in (with_key, with_token)
    ]
    assert (
        f'api_key="{MASK}"' in recorded[0]["overrides"][0] and f"//{MASK}@127" in recorded[1]["overrides"][1]
    )

    # A finished run (the replay engine in place of the openai one), resumed once with a key given again.
    done = tmp_path / "done"
    config = parse_config(society.read_text(), str(society), ["schedule.rounds=1"])
    asyncio.run(run_society(config, done, resume=False, engines=make_replay_engines(config)))
    overrides = ["schedule.rounds=2", *with_token]
    config = load_snapshot(done, overrides)
    asyncio.run(
        run_society(config, done, resume=True, engines=make_replay_engines(config), overrides=overrides)
    )
    assert coevo("show", "done").returncode == 0
    assert coevo("show", "done", "--json", "--limit", "50").returncode == 0
    listed = coevo("runs", "--root", str(tmp_path))
    assert listed.returncode == 0 and "finished" in listed.stdout
    exported = coevo("export", "--run", "done", "--kind", "curriculum", "--out", "export")
    assert exported.returncode == 0, exported.stderr

    assert_nowhere([tmp_path / "failed", done, tmp_path / "export"], coevo.printed)


def test_a_memory_url_password_reaches_no_file_database_or_output(
    tmp_path: Path, postgres_database: str
) -> None:
    url = postgres_database.replace("//postgres@", f"//postgres:{MEMORY_PASSWORD}@")
    assert MEMORY_PASSWORD in url  # the test server trusts any password: the run works with this one
    run_dir = tmp_path / "run"
    config = replay_config(["schedule.rounds=1", f"memory.url={url}"])
    asyncio.run(run_society(config, run_dir, resume=False, engines=make_replay_engines(config)))
    coevo = Console(tmp_path)

    # What reads the run through its folder needs the password again, and says so.
    forgotten = coevo("run", "--resume", "run", "--no-tui", "--set", "schedule.rounds=2")
    assert (
        forgotten.returncode == 2
        and "memory.url" in forgotten.stderr
        and "literal secret" in forgotten.stderr
    )
    assert coevo("show", "run").returncode == 2
    assert coevo("export", "--run", "run", "--kind", "curriculum", "--out", "export").returncode == 2
    # Given again on resume, it opens the memory (the replay engine then cannot start in a subprocess).
    resumed = coevo(
        "run", "--resume", "run", "--no-tui", "--set", "schedule.rounds=2", "--set", f"memory.url={url}"
    )
    assert resumed.returncode == 2 and "replay engine" in resumed.stderr, resumed.stderr
    # The database URL itself opens it too; a message naming it masks the password.
    assert coevo("show", url).returncode == 0
    missing = coevo("show", url, "--run-id", "nope")
    assert missing.returncode == 2 and f"postgres:{MASK}@" in missing.stderr

    store = Store(url)
    recorded = store.get_state(run_id_for(run_dir), "resume_overrides")
    store.close()
    assert recorded[0]["overrides"][1] == f'memory.url="{mask_url(url)}"'
    # A run folder whose run is not in that memory: the error names the memory, masked.
    other = tmp_path / "other"
    other.mkdir()
    (other / MARKER).write_text(json.dumps({"run_id": "other-1"}))
    shutil.copy(run_dir / CONFIG_SNAPSHOT, other / CONFIG_SNAPSHOT)
    config = load_snapshot(other, [f"memory.url={url}"])
    with pytest.raises(RunDirError, match="holds no run other-1") as info:
        asyncio.run(run_society(config, other, resume=True, engines=make_replay_engines(config)))
    assert f"postgres:{MASK}@" in str(info.value)
    coevo.printed.append(str(info.value))
    assert_nowhere([run_dir], coevo.printed, _all_rows(url))


async def test_the_openai_engine_sends_url_credentials_and_names_none(
    quoting_server: tuple[int, list[str]],
) -> None:
    port, received = quoting_server
    request = GenerationRequest(messages=[{"role": "user", "content": "hi"}], params=SamplingParams())
    engine = OpenAIEngine("m", f"http://coevo:{URL_PASSWORD}@127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(EngineError):
        await engine.generate([request])
    await engine.close()
    assert received == [f"coevo:{URL_PASSWORD}"]  # sent as basic auth, as httpx sends a URL's userinfo
    closed = _free_port()
    for userinfo in (f"coevo:{URL_PASSWORD}", URL_TOKEN):
        engine = OpenAIEngine("m", f"http://{userinfo}@127.0.0.1:{closed}/v1", max_retries=0)
        with pytest.raises(EngineError, match=rf"http://127\.0\.0\.1:{closed}/v1/chat/completions failed"):
            await engine.generate([request])
        await engine.close()


def test_a_training_error_quoting_a_secret_is_stored_masked(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coevo.trainers import registry

    def boom(*args: object) -> object:
        raise RuntimeError(f"the hub refused the key {FILE_KEY}")

    kind = registry.TRAINERS["socratic_solver_dpo"]
    monkeypatch.setitem(registry.TRAINERS, "socratic_solver_dpo", dataclasses.replace(kind, train=boom))
    trained = [
        f"engines.local.model={tiny_model}",
        "agents.solver.trainable=true",
        "schedule.rounds=1",
        "schedule.success_band=[0.0, 0.75]",
        "trainers=[{kind: socratic_solver_dpo, agent: solver, every: 1, args: {max_steps: 2}}]",
        "on_training_error=continue",
    ]
    config = parse_config(_openai_society("http://127.0.0.1:1/v1"), "society.yaml", trained)
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines=make_replay_engines(config)))
    store = Store.for_run_dir(run_dir)
    [failed] = store.training_runs(run_id_for(run_dir), "solver")
    store.close()
    assert f"RuntimeError: the hub refused the key {MASK}" in (failed.error or "")
    assert_nowhere([run_dir], [])


def test_a_validator_quoting_a_secret_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    import coevo.tasks.skills

    def quoting(levels: object) -> None:
        raise ValueError(f"refused, as is the key {FILE_KEY}")

    monkeypatch.setattr(coevo.tasks.skills, "check_levels", quoting)
    text = _openai_society("http://127.0.0.1:1/v1").replace(
        "{bootstrap: 8}", "{bootstrap: 8}, levels: {digits: [1, 2]}"
    )
    with pytest.raises(ConfigError) as info:
        parse_structure(text, "society.yaml")
    assert f"refused, as is the key {MASK}" in str(info.value)


# --- what counts as a secret ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:pw@host:8000/v1", f"http://user:{MASK}@host:8000/v1"),
        ("postgresql://app:p@ss@db/x", f"postgresql://app:{MASK}@db/x"),  # an unescaped @ in a password
        ("http://ghp_x7Hq2mZ81kPq0vB3nD55@github.com", f"http://{MASK}@github.com"),  # a bare token
        ("http://0123456789abcdef@host", f"http://{MASK}@host"),
        ("postgresql://postgres@127.0.0.1:5432/db", "postgresql://postgres@127.0.0.1:5432/db"),  # a user name
        ("http://user:${PASSWORD}@host", "http://user:${PASSWORD}@host"),  # from the environment
        ("http://${TOKEN}@host", "http://${TOKEN}@host"),
        (
            "failed: http://u:pw@h/v1 (see http://h/a@b, mail me@example.com)",
            f"failed: http://u:{MASK}@h/v1 (see http://h/a@b, mail me@example.com)",
        ),
    ],
)
def test_url_credentials_are_masked(text: str, shown: str) -> None:
    assert mask_url(text) == shown


def test_credential_keys_are_masked_with_all_they_hold() -> None:
    data = {
        "api_key": "sk-1",
        "token": "${TOKEN}",
        "password": 12345,  # YAML's number is still a password
        "headers": {"Authorization": "Bearer sk-2"},
        "credentials": {"user": "me", "pass": ["a", "b"]},
        "base_url": "http://u:pw@h/v1",
        "max_tokens": 64,
    }
    assert mask(data) == {
        "api_key": MASK,
        "token": "${TOKEN}",
        "password": MASK,
        "headers": {"Authorization": MASK},
        "credentials": {"user": MASK, "pass": [MASK, MASK]},
        "base_url": f"http://u:{MASK}@h/v1",
        "max_tokens": 64,
    }
    assert mask_override("engines.e.options.api_key=sk-1") == f'engines.e.options.api_key="{MASK}"'
    assert (
        mask_override("engines.e.options={token: sk-1, n: 2}")
        == f'engines.e.options={{"token": "{MASK}", "n": 2}}'
    )
    assert mask_override("schedule.rounds=3") == "schedule.rounds=3"


def test_messages_are_redacted_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server quoting a key back, in whatever form: literal keys and the environment's are masked.
    monkeypatch.setenv("PLANTED_KEY", SET_KEY)
    remember({"engines": {"e": {"options": {"api_key": FILE_KEY, "api_key_env": "PLANTED_KEY"}}}})
    remember({"api_key": "EMPTY"})  # too short to search for: words holding it stay readable
    message = f"HTTP 401: keys {FILE_KEY} and {SET_KEY} refused at http://u:{URL_PASSWORD}@h (EMPTY)"
    assert redact(message) == f"HTTP 401: keys {MASK} and {MASK} refused at http://u:{MASK}@h (EMPTY)"


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTED_KEY", FILE_KEY)
    options = {"api_key_env": "PLANTED_KEY", "base_url": "http://${HOSTNAME_X}:8000/v1"}
    monkeypatch.setenv("HOSTNAME_X", "gpu7")
    assert engine_options(options, "engines.e.options") == {
        "api_key": FILE_KEY,
        "base_url": "http://gpu7:8000/v1",
    }
    assert mask({"api_key": "${PLANTED_KEY}", "token": FILE_KEY}) == {
        "api_key": "${PLANTED_KEY}",
        "token": MASK,
    }
    monkeypatch.delenv("HOSTNAME_X")
    with pytest.raises(ValueError, match="HOSTNAME_X is not set"):
        engine_options(options, "engines.e.options")
