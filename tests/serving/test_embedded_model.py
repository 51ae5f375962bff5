"""The embedded model cache: one conversion at a time across processes, and a damaged cache is
noticed and converted again. Real conversions of the packaged GGUF (~25 s each), no mocks."""

from __future__ import annotations

import fcntl
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from serving.embedded_model import (
    EMBEDDED_MODEL_NAME,
    embedded_model_dir,
    model_dir_problem,
    prepare_embedded_model,
)
from serving.errors import EngineStartError
from tests.conftest import MODELS_DIR, REPO_ROOT

LOCK_FILE = f".{EMBEDDED_MODEL_NAME}.lock"
# What each competing process runs: the library call `fawn serve prepare` and engine starts make,
# with the module's INFO events on stderr so the test can see who converted and who waited.
PREPARE_SCRIPT = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
from serving.embedded_model import prepare_embedded_model
print(prepare_embedded_model(Path(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def ready_model() -> Path:
    """The real converted model from the shared cache (make setup converted it)."""
    return prepare_embedded_model(MODELS_DIR)


@pytest.fixture
def cached_copy(ready_model: Path, tmp_path: Path) -> Path:
    """A private, intact copy of the converted model in a fresh models dir, free to damage."""
    copy = embedded_model_dir(tmp_path / "models")
    shutil.copytree(ready_model, copy)
    return copy


def _remove_weights(model: Path) -> None:
    (model / "model.safetensors").unlink()


def _truncate_weights(model: Path) -> None:
    weights = model / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)


def _garble_header(model: Path) -> None:
    with (model / "model.safetensors").open("r+b") as handle:
        handle.seek(8)
        handle.write(b"not json")


def _break_config(model: Path) -> None:
    (model / "config.json").write_text('{"model_type": "llama"')


def _remove_tokenizer(model: Path) -> None:
    (model / "tokenizer.json").unlink()
    (model / "tokenizer_config.json").unlink()


def _remove_marker(model: Path) -> None:
    (model / "fawn-converted").unlink()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_remove_weights, "model.safetensors is missing"),
        (_truncate_weights, "truncated or damaged"),
        (_garble_header, "model.safetensors is unreadable"),
        (_break_config, "config.json is unreadable"),
        (_remove_tokenizer, "no tokenizer"),
        (_remove_marker, "fawn-converted is missing"),
    ],
)
def test_model_check_names_what_is_damaged(
    cached_copy: Path, damage: Callable[[Path], None], reason: str
) -> None:
    assert model_dir_problem(cached_copy) is None
    damage(cached_copy)
    problem = model_dir_problem(cached_copy)
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_remove_weights, "model.safetensors is missing"),
        (_truncate_weights, "truncated or damaged"),
    ],
)
def test_prepare_converts_a_damaged_cache_again(
    cached_copy: Path,
    damage: Callable[[Path], None],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    damage(cached_copy)
    assert (cached_copy / "fawn-converted").is_file()
    caplog.set_level(logging.INFO, logger="serving.embedded_model")

    assert prepare_embedded_model(cached_copy.parent) == cached_copy

    assert model_dir_problem(cached_copy) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("event=embedded_model_damaged" in w and reason in w for w in warnings), warnings
    assert caplog.text.count("event=embedded_model_converted") == 1
    # The damaged copy and the staging dir are gone: only the model and the lock file remain.
    assert sorted(p.name for p in cached_copy.parent.iterdir()) == [LOCK_FILE, EMBEDDED_MODEL_NAME]


def test_prepare_trusts_an_intact_cache_without_converting_or_locking(
    cached_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="serving.embedded_model")
    assert prepare_embedded_model(cached_copy.parent) == cached_copy
    assert caplog.records == []
    assert not (cached_copy.parent / LOCK_FILE).exists()


def test_prepare_gives_up_with_a_fix_when_the_lock_stays_held(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    with (models_dir / LOCK_FILE).open("a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(EngineStartError, match="fuser -v"):
            prepare_embedded_model(models_dir, lock_timeout=0.5)
    assert not embedded_model_dir(models_dir).exists()


def test_concurrent_prepares_convert_once_and_the_other_waits(tmp_path: Path) -> None:
    models_dir = tmp_path / "fresh" / "models"  # prepare creates it, parents included
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PREPARE_SCRIPT, str(models_dir)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    target = embedded_model_dir(models_dir)
    assert [stdout.strip() for stdout, _ in outputs] == [str(target)] * 2
    logs = [stderr for _, stderr in outputs]
    converters = [i for i, log in enumerate(logs) if "event=embedded_model_converted" in log]
    assert len(converters) == 1, logs
    assert logs[converters[0]].count("event=embedded_model_converting") == 1
    waiter = logs[1 - converters[0]]
    # The other process blocked on the lock, then found the finished model instead of converting.
    assert "event=embedded_model_lock_wait" in waiter
    assert "event=embedded_model_converting" not in waiter
    waited = re.search(r"event=embedded_model_ready .*waited_s=([\d.]+)", waiter)
    assert waited is not None and float(waited.group(1)) > 1.0, waiter
    assert model_dir_problem(target) is None
    assert sorted(p.name for p in models_dir.iterdir()) == [LOCK_FILE, EMBEDDED_MODEL_NAME]
