"""Workers sharing one job store (`fawn worker`), on the real embedded engine, side by side.

a. Throughput: the same N research jobs through 1 worker on 1 engine, 2 workers on 1 engine,
   1 worker running as many jobs at once as those 2 (the cost of the split itself), and 2
   workers on 2 engines behind one `fawn gateway`. Workers run `--concurrency C` (2C for the
   control); jobs per hour = N / the wall from the first job stored to the last one final.
b. Parked reviews: the wall of 4 auto-accepted jobs in one worker alone, and with 8 jobs awaiting
   plan review in the same store (parked jobs hold no worker slot: b should show no slow-down).

Each run gets a fresh data dir (SQLite store, the HotpotQA paragraphs as its corpus), real
`fawn worker` processes started (and connected) before its jobs are stored, and jobs on
different questions (max_step_num 1, coder off). Modes alternate order between repeats.

    .venv/bin/python bench/workers.py                      # a and b
    .venv/bin/python bench/workers.py --only a --jobs 8 --concurrency 2 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from agents.evaluation.hotpotqa import build_corpus, load_questions
from app.jobs.models import JobOptions, JobStatus
from app.jobs.store import SqliteJobStore
from bench.gateway import embedded_engines, load_average, running_gateway, stop_process
from bench.scheduler import HOTPOTQA, machine_description
from serving.endpoint import Endpoint

FAWN = Path(sys.executable).parent / "fawn"
AUTO = JobOptions(auto_accept_plan=True, max_step_num=1, enable_coder=False)
REVIEWED = AUTO.model_copy(update={"auto_accept_plan": False})
WORKER_READY_TIMEOUT_S = 300.0
RUN_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Run:
    """One measured batch of jobs."""

    mode: str
    jobs: int
    wall_s: float
    failed: int
    load: float

    @property
    def jobs_per_hour(self) -> float:
        return self.jobs * 3600 / self.wall_s


@contextmanager
def workers(count: int, concurrency: int, data_dir: Path, base_url: str) -> Iterator[None]:
    """`count` real `fawn worker` processes on `data_dir`, connected, stopped after."""
    env = {**os.environ, "FAWN_DATA_DIR": str(data_dir), "FAWN_LLM_BASE_URL": base_url}
    logs = [data_dir / f"worker-{n}.log" for n in range(count)]
    processes = []
    for log in logs:
        with log.open("wb") as out:
            command = [str(FAWN), "worker", "--concurrency", str(concurrency)]
            processes.append(
                subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            )
    try:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        for process, log in zip(processes, logs, strict=True):
            while "runs up to" not in log.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"A worker did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield
    finally:
        for process in processes:
            stop_process(process, grace_s=30)


def fresh_data_dir() -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix="fawn-bench-workers-"))
    build_corpus(HOTPOTQA, data_dir)
    return data_dir


def wait_final(store: SqliteJobStore, ids: Sequence[str], *statuses: JobStatus) -> int:
    """Wait until every job is final (or in one of `statuses`); the number that failed."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        jobs = [store.get(job_id) for job_id in ids]
        if all(job and (job.status.is_final or job.status in statuses) for job in jobs):
            return sum(1 for job in jobs if job and job.status is JobStatus.FAILED)
        if time.monotonic() > deadline:
            raise SystemExit("The jobs did not finish in time.")
        time.sleep(0.5)


def throughput_run(
    mode: str, base_url: str, worker_count: int, concurrency: int, args: argparse.Namespace
) -> Run:
    data_dir = fresh_data_dir()
    questions = [q.question for q in load_questions(HOTPOTQA)][: args.jobs]
    with workers(worker_count, concurrency, data_dir, base_url):
        store = SqliteJobStore(data_dir / "jobs.sqlite3")
        started = time.monotonic()
        ids = [store.create(q, AUTO.model_dump(mode="json")).id for q in questions]
        failed = wait_final(store, ids)
        wall = time.monotonic() - started
        store.close()
    run = Run(mode, len(ids), wall, failed, load_average())
    print(f"  {mode}: {wall:.0f} s, {run.jobs_per_hour:.0f} jobs/h", file=sys.stderr, flush=True)
    return run


def parked_run(mode: str, base_url: str, parked: int, args: argparse.Namespace) -> Run:
    data_dir = fresh_data_dir()
    questions = [q.question for q in load_questions(HOTPOTQA)]
    with workers(1, 4, data_dir, base_url):
        store = SqliteJobStore(data_dir / "jobs.sqlite3")
        waiting = [
            store.create(q, REVIEWED.model_dump(mode="json")).id for q in questions[4 : 4 + parked]
        ]
        wait_final(store, waiting, JobStatus.AWAITING_PLAN_REVIEW)
        started = time.monotonic()
        ids = [store.create(q, AUTO.model_dump(mode="json")).id for q in questions[:4]]
        failed = wait_final(store, ids)
        wall = time.monotonic() - started
        store.close()
    run = Run(mode, len(ids), wall, failed, load_average())
    print(f"  {mode}: {wall:.0f} s", file=sys.stderr, flush=True)
    return run


def table(title: str, runs: Sequence[Run], baseline: str) -> str:
    modes = list(dict.fromkeys(run.mode for run in runs))
    walls = {mode: [r.wall_s for r in runs if r.mode == mode] for mode in modes}
    base = median(walls[baseline])
    lines = [
        f"#### {title}",
        "",
        "| Mode | Runs | Jobs | Wall p50 (s) | Walls (s) | Jobs/hour (p50) | vs baseline | Failed |"
        " Load avg |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for mode in modes:
        mine = [r for r in runs if r.mode == mode]
        wall = median(walls[mode])
        lines.append(
            f"| {mode} | {len(mine)} | {mine[0].jobs} | {wall:.0f} | "
            f"{', '.join(f'{w:.0f}' for w in walls[mode])} | {mine[0].jobs * 3600 / wall:.0f} | "
            f"{base / wall:.2f}x | {sum(r.failed for r in mine)} | "
            f"{', '.join(f'{r.load:.1f}' for r in mine)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b", help="Parts to run: a, b or a,b.")
    parser.add_argument("--jobs", type=int, default=8, help="Jobs per throughput run (a).")
    parser.add_argument("--concurrency", type=int, default=2, help="Jobs per worker (a).")
    parser.add_argument("--repeats", type=int, default=1, help="Runs per mode.")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(
        f"# bench/workers.py {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {machine_description()}",
        flush=True,
    )
    with ExitStack() as stack:
        engines: list[Endpoint] = stack.enter_context(embedded_engines(2 if "a" in parts else 1))
        one = engines[0].base_url
        if "a" in parts:
            both = stack.enter_context(running_gateway(engines)).base_url
            c = args.concurrency
            modes = [
                (f"1 worker x {c}, 1 engine", one, 1, c),
                (f"2 workers x {c}, 1 engine", one, 2, c),
                # As many jobs in flight as the two workers, in one: what the split itself costs.
                (f"1 worker x {2 * c}, 1 engine", one, 1, 2 * c),
                (f"2 workers x {c}, 2 engines (gateway)", both, 2, c),
            ]
            runs = []
            for repeat in range(args.repeats):
                for mode, url, count, concurrency in modes if repeat % 2 == 0 else modes[::-1]:
                    runs.append(throughput_run(mode, url, count, concurrency, args))
            title = f"a. {args.jobs} jobs (workers x jobs at once each)"
            print(table(title, runs, f"1 worker x {c}, 1 engine"), flush=True)
        if "b" in parts:
            modes_b = [("4 jobs alone", 0), ("4 jobs with 8 awaiting review", 8)]
            runs = []
            for repeat in range(args.repeats):
                for mode, parked in modes_b if repeat % 2 == 0 else modes_b[::-1]:
                    runs.append(parked_run(mode, one, parked, args))
            print(table("b. Parked reviews", runs, "4 jobs alone"), flush=True)


if __name__ == "__main__":
    main()
