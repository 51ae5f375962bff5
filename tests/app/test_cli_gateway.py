"""`fawn gateway` refuses a set-up it cannot serve, with the fix in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FAWN = Path(sys.executable).with_name("fawn")


def run_gateway(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAWN), "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250", **env},
    )


def test_a_gateway_without_an_upstream_says_how_to_name_one() -> None:
    result = run_gateway()
    assert result.returncode == 2
    assert "--upstream" in result.stderr and "Traceback" not in result.stderr


def test_a_gateway_off_loopback_without_a_key_refuses_to_start() -> None:
    result = run_gateway("--host", "0.0.0.0", "--upstream", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "FAWN_GATEWAY_API_KEY" in result.stderr


def test_an_unknown_default_class_is_refused_with_the_classes_listed() -> None:
    result = run_gateway("--upstream", "http://127.0.0.1:9", FAWN_GATEWAY_DEFAULT_CLASS="urgent")
    assert result.returncode == 2
    assert "interactive, plan, research, report, tts" in " ".join(result.stderr.split())
