"""`fawn doctor`: real checks on this machine, through the real command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.diagnostics import (
    Check,
    Status,
    check_engine,
    check_sandbox,
    check_speech,
    has_failures,
    run_checks,
)
from app.settings import load_settings
from serving.endpoint import Endpoint
from tests.conftest import MODELS_DIR, free_port
from tests.serving.conftest import running_gateway

FAWN = Path(sys.executable).with_name("fawn")


def _doctor(base_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAWN), "doctor"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "FAWN_LLM_BASE_URL": base_url, "COLUMNS": "250"},
    )


def _row(output: str, name: str) -> str:
    """The table line of the check called `name`."""
    rows = [line for line in output.splitlines() if line.startswith(f"│ {name} ")]
    assert rows, f"no {name!r} row in:\n{output}"
    return rows[0]


def test_doctor_with_a_dead_engine_fails_the_engine_row_with_its_fix() -> None:
    result = _doctor(f"http://127.0.0.1:{free_port()}/v1")

    assert result.returncode == 1, result.stdout + result.stderr
    engine_row = _row(result.stdout, "engine")
    assert "fail" in engine_row and "Connection refused" in engine_row
    assert "fawn serve" in engine_row
    assert "Traceback" not in result.stdout + result.stderr
    assert "failed" in result.stdout


@pytest.mark.engine
def test_doctor_against_the_live_engine_shows_model_and_context_length(engine: Endpoint) -> None:
    result = _doctor(engine.base_url)

    # bubblewrap and espeak-ng come with `make setup`, and offline web search is only a warning.
    assert result.returncode == 0, result.stdout + result.stderr
    engine_row = _row(result.stdout, "engine")
    assert "ok" in engine_row
    assert engine.model in engine_row and f"max_model_len {engine.max_model_len}" in engine_row
    kv_row = _row(result.stdout, "kv cache")
    assert "ok" in kv_row and "blocks of 128" in kv_row
    pressure_row = _row(result.stdout, "pressure")
    assert "ok" in pressure_row and "no memory pressure" in pressure_row
    assert "engine's /metrics" in pressure_row
    gate_row = _row(result.stdout, "gate")
    assert "warn" in gate_row and "per process" in gate_row and "fawn gateway" in gate_row
    assert "Fawn is ready" in result.stdout


@pytest.mark.engine
def test_doctor_through_a_gateway_says_the_gateways_budget_is_in_force(engine: Endpoint) -> None:
    with running_gateway(engine.root_url, budget=3) as gateway:
        result = _doctor(f"{gateway}/v1")

    assert result.returncode == 0, result.stdout + result.stderr
    gate_row = _row(result.stdout, "gate")
    assert "ok" in gate_row and "Fawn's gateway" in gate_row and "budget 3" in gate_row
    # KV cache and pressure are read from the engine behind the gateway.
    assert "blocks of 128" in _row(result.stdout, "kv cache")
    assert "no memory pressure" in _row(result.stdout, "pressure")


def test_unconfigured_engine_reports_the_embedded_model_ready() -> None:
    settings = load_settings(engine={"profile": "embedded-cpu"}, models_dir=MODELS_DIR)

    check = check_engine(settings)

    assert check.status is Status.OK
    assert "embedded-cpu on demand" in check.detail
    assert str(MODELS_DIR) in check.detail


def test_unconfigured_engine_warns_when_the_model_is_not_converted_yet(tmp_path: Path) -> None:
    settings = load_settings(engine={"profile": "embedded-cpu"}, models_dir=tmp_path / "models")

    check = check_engine(settings)

    assert check.status is Status.WARN
    assert "fawn serve prepare" in check.fix


def test_unknown_profile_fails_with_the_known_profiles_listed() -> None:
    settings = load_settings(engine={"profile": "no-such-profile"})

    check = check_engine(settings)

    assert check.status is Status.FAIL
    assert "embedded-cpu" in check.fix


def test_sandbox_check_runs_bubblewrap_for_real() -> None:
    assert check_sandbox(load_settings()) == Check(
        "sandbox", Status.OK, "bubblewrap runs a process with no network"
    )


def test_missing_tools_fail_with_the_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    settings = load_settings()

    sandbox, speech = check_sandbox(settings), check_speech(settings)

    assert sandbox.status is Status.FAIL and "apt-get install bubblewrap" in sandbox.fix
    assert speech.status is Status.FAIL and "apt-get install espeak-ng" in speech.fix


def test_speech_check_writes_a_real_wav() -> None:
    assert check_speech(load_settings()).status is Status.OK


def test_a_crashing_check_becomes_a_failed_row_and_the_rest_still_run() -> None:
    def check_broken_thing(settings: object) -> Check:
        raise RuntimeError("boom")

    def check_fine_thing(settings: object) -> Check:
        return Check("fine thing", Status.WARN, "only a warning")

    report = run_checks(load_settings(), [check_broken_thing, check_fine_thing])

    assert [(c.name, c.status) for c in report] == [
        ("broken thing", Status.FAIL),
        ("fine thing", Status.WARN),
    ]
    assert "RuntimeError: boom" in report[0].detail
    assert has_failures(report)
    assert not has_failures(report[1:])
