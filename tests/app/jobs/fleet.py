"""Real `fawn api` and `fawn worker` processes sharing one data dir (and maybe one database).

Each process writes its output to a log file under `<data dir>/logs/`, which a failing test's
message names. Jobs are read straight from the store the processes share.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from app.jobs.models import Job, JobEvent
from app.jobs.store import JobStore, open_job_store
from app.settings import load_settings
from tests.conftest import free_port

FAWN = Path(sys.executable).with_name("fawn")
START_TIMEOUT_S = 120.0


class Fleet:
    """The processes of one deployment, started and stopped by a test."""

    def __init__(
        self,
        data_dir: Path,
        engine_url: str,
        *,
        database_url: str | None = None,
        store_url: str | None = None,
        **jobs: float,
    ) -> None:
        """`database_url` is the processes' FAWN_DATABASE_URL; the test's own store opens
        `store_url` if given (the database itself, when the processes reach it by a relay)."""
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "FAWN_DATA_DIR": str(data_dir),
            "FAWN_LLM_BASE_URL": engine_url,
            **{f"FAWN_JOBS_{key.upper()}": str(value) for key, value in jobs.items()},
        }
        if database_url:
            self.env["FAWN_DATABASE_URL"] = database_url
        self.store: JobStore = open_job_store(
            load_settings(data_dir=data_dir, database_url=store_url or database_url)
        )
        self.processes: list[subprocess.Popen[bytes]] = []
        self._count = 0

    def api(self, *, worker: bool = False) -> str:
        """Start `fawn api` (without its worker unless asked); its base URL once it answers."""
        port = free_port()
        flag = "--worker" if worker else "--no-worker"
        process = self._start("api", "--port", str(port), flag)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert process.poll() is None, f"fawn api exited: see {self.logs}"
            try:
                if httpx.get(f"{url}/api/health", timeout=5).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.25)
        raise AssertionError(f"fawn api did not answer: see {self.logs}")

    def worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        """Start `fawn worker`."""
        return self._start("worker", "--concurrency", str(concurrency))

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        self._count += 1
        log = (self.logs / f"{self._count:02d}-{args[0]}.log").open("wb")
        process = subprocess.Popen(
            [str(FAWN), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        """Signal one process and wait for it to exit."""
        process.send_signal(sig)
        process.wait(timeout=60)

    def stop_all(self, sig: int = signal.SIGTERM) -> None:
        """Signal every process still running and wait for each."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(sig)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    def close(self) -> None:
        """Stop everything (SIGKILL: a test that failed half-way) and close the store."""
        self.stop_all(signal.SIGKILL)
        self.store.close()

    def job(self, job_id: str) -> Job:
        """The job as the store has it now."""
        job = self.store.get(job_id)
        assert job is not None, f"job {job_id} is gone"
        return job

    def events(self, job_id: str, type: str | None = None) -> list[JobEvent]:
        """The job's events (of one type)."""
        return [e for e in self.store.events(job_id) if type is None or e.type == type]

    def wait_until(self, job_ids: list[str], done: Any, timeout_s: float = 900) -> list[Job]:
        """The jobs once `done(job)` holds for each; fails (naming the logs) after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            jobs = [self.job(job_id) for job_id in job_ids]
            if all(done(job) for job in jobs):
                return jobs
            if time.monotonic() > deadline:
                states = {job.id: (job.status, job.error) for job in jobs}
                raise AssertionError(f"timed out: {states}; see {self.logs}")
            time.sleep(0.5)
