"""docker/compose.yaml validates with the real Compose CLI and wires the engine to the app."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from serving.profiles import PROFILES_DIR

DOCKER_DIR = Path(__file__).resolve().parent.parent / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
SCALED_FILE = DOCKER_DIR / "compose.scaled.yaml"
DEFAULT_PROFILE = "qwen3-4b-24gb"


def _compose_command() -> list[str]:
    """`docker compose` (v2 plugin) when present, else Debian's `docker-compose` (v1)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip(
        "No Compose CLI: neither the `docker compose` plugin nor `docker-compose` "
        "(apt-get install docker-compose) is installed."
    )


def _config(compose_file: Path = COMPOSE_FILE, **env: str) -> subprocess.CompletedProcess[str]:
    # Only the variables given here: the caller's shell must not change what is validated.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FAWN_", "VLLM_", "HF_"))}
    return subprocess.run(
        [*_compose_command(), "-f", str(compose_file), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


def _services(compose_file: Path = COMPOSE_FILE, **env: str) -> dict:
    result = _config(compose_file, **env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


KEYS = {"FAWN_API_KEY": "test-key", "FAWN_GATEWAY_API_KEY": "gateway-key"}


def test_compose_file_validates_and_wires_the_app_through_the_gateway_to_the_engine() -> None:
    services = _services(**KEYS)

    vllm, gateway, app = services["vllm"], services["gateway"], services["app"]
    assert app["environment"]["FAWN_LLM_BASE_URL"] == "http://gateway:8100/v1"
    assert app["environment"]["FAWN_LLM_API_KEY"] == "gateway-key"
    assert app["environment"]["FAWN_API_KEY"] == "test-key"
    assert app["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert gateway["command"][:4] == ["fawn", "gateway", "--upstream", "http://vllm:8000"]
    assert gateway["environment"]["FAWN_GATEWAY_API_KEY"] == "gateway-key"
    assert gateway["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert "/health" in " ".join(vllm["healthcheck"]["test"])
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert vllm["command"][:2] == ["--config", f"/profiles/{DEFAULT_PROFILE}.yaml"]


def test_fawn_profile_selects_the_profile_the_engine_serves() -> None:
    services = _services(**KEYS, FAWN_PROFILE="embedded-cpu")

    assert services["vllm"]["command"][:2] == ["--config", "/profiles/embedded-cpu.yaml"]


def test_compose_refuses_to_start_the_app_without_an_api_key() -> None:
    result = _config(FAWN_GATEWAY_API_KEY="gateway-key")

    assert result.returncode != 0
    assert "set FAWN_API_KEY" in result.stderr


def test_compose_refuses_to_start_the_gateway_without_its_key() -> None:
    result = _config(FAWN_API_KEY="test-key")

    assert result.returncode != 0
    assert "set FAWN_GATEWAY_API_KEY" in result.stderr


def test_the_default_profile_is_one_fawn_ships() -> None:
    assert (PROFILES_DIR / f"{DEFAULT_PROFILE}.yaml").is_file(), sorted(PROFILES_DIR.iterdir())
    assert f"FAWN_PROFILE:-{DEFAULT_PROFILE}" in COMPOSE_FILE.read_text()


def test_the_profiles_mount_is_the_profiles_directory() -> None:
    services = _services(**KEYS)

    mounts = [
        v if isinstance(v, str) else f"{v['source']}:{v['target']}"
        for v in services["vllm"]["volumes"]
    ]
    profile_mounts = [m for m in mounts if re.search(r":/profiles(:|$)", m)]
    assert len(profile_mounts) == 1
    assert Path(profile_mounts[0].split(":")[0]).resolve() == PROFILES_DIR.resolve()


def test_dockerfile_installs_sandbox_and_speech_and_runs_the_api_off_loopback() -> None:
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()

    assert "FROM python:3.11-slim" in dockerfile
    assert "bubblewrap" in dockerfile and "espeak-ng" in dockerfile
    assert '"fawn", "api", "--host", "0.0.0.0"' in dockerfile
    assert "[cpu]" not in dockerfile


SCALED_KEYS = {**KEYS, "FAWN_DB_PASSWORD": "db-secret"}


def test_the_scaled_compose_file_runs_an_api_and_workers_on_postgres_behind_the_gateway() -> None:
    services = _services(SCALED_FILE, **SCALED_KEYS, FAWN_WORKERS="3")

    api, worker, gateway = services["api"], services["worker"], services["gateway"]
    database = "postgresql://fawn:db-secret@postgres:5432/fawn"
    assert api["command"] == ["fawn", "api", "--host", "0.0.0.0", "--no-worker"]
    assert worker["command"] == ["fawn", "worker"]
    assert int(worker["deploy"]["replicas"]) == 3
    for app in (api, worker):
        assert app["environment"]["FAWN_DATABASE_URL"] == database
        assert app["environment"]["FAWN_LLM_BASE_URL"] == "http://gateway:8100/v1"
        assert app["environment"]["FAWN_LLM_API_KEY"] == "gateway-key"
        assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["environment"]["FAWN_API_KEY"] == "test-key"
    assert "FAWN_API_KEY" not in worker["environment"], "workers serve nothing"
    upstreams = [
        gateway["command"][i + 1] for i, a in enumerate(gateway["command"]) if a == "--upstream"
    ]
    assert upstreams == ["http://vllm-0:8000", "http://vllm-1:8000"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "db-secret"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_the_scaled_compose_file_refuses_to_start_without_a_database_password() -> None:
    result = _config(SCALED_FILE, **KEYS)

    assert result.returncode != 0
    assert "set FAWN_DB_PASSWORD" in result.stderr
