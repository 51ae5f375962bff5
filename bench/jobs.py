"""Parts c and d of bench/scheduler.py: whole research jobs on the real engine.

c. One job whose plan is pinned (through plan review) to 3 independent research steps, run with
   the steps in parallel and one after another, alternating, several times.
d. 8 jobs on different questions at once, each plan pinned to 3 independent research steps
   built from its own question (up to 24 research calls at once against a budget of 8), through
   one gate and, side by side, with no gate; interactive calls probe time to first token
   meanwhile.

Every job runs the real research graph on a local corpus built from the HotpotQA file, with the
coder off. Each measured run starts with an empty prefix cache, so no run reuses the KV blocks of
the one before it.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from agents.config import ResearchOptions
from agents.evaluation.hotpotqa import build_corpus, load_questions
from agents.research import PlanReviewer, run_research
from agents.runtime import Runtime, connect_runtime
from agents.state import Plan, PlanReview, Step, StepType
from bench.sampling import engine_sampled, percentile
from serving.budget import Budget, budget_for_engine
from serving.endpoint import Endpoint
from serving.observability import gate_metrics
from serving.settings import LLMSettings

JOB_SAMPLE_INTERVAL_S = 0.5
# Interactive probes during a batch of jobs: the pause before each, drawn at random, so probes
# fall on every phase of the jobs (plans, research steps, answers) in both modes alike.
PROBE_PAUSE_S = (1.0, 4.0)
# Long enough that a call queued behind a full engine (no gate) is not cut off: the comparison is
# of waiting, not of timeouts. The production default is 180 s.
JOB_CALL_TIMEOUT_S = 900.0
# A budget no job ever waits on: every call goes straight to the engine.
NO_GATE_LIMIT = 10_000
# Part c's question (the first of hotpotqa-dev-20.json) and the plan pinned for it: three
# research steps that depend on nothing, so the parallel mode can send them at once.
PINNED_QUESTION = 0
PINNED_STEPS = (
    Step(
        title="Scott Derrickson's nationality",
        description="Find the country the film director Scott Derrickson is from.",
        step_type=StepType.RESEARCH,
        need_search=True,
    ),
    Step(
        title="Ed Wood's nationality",
        description="Find the country the filmmaker Ed Wood is from.",
        step_type=StepType.RESEARCH,
        need_search=True,
    ),
    Step(
        title="Films by Scott Derrickson and Ed Wood",
        description="Find which films Scott Derrickson and Ed Wood directed.",
        step_type=StepType.RESEARCH,
        need_search=True,
    ),
)
# As `fawn eval hotpotqa` runs questions: the local corpus, no code.
JOB_OPTIONS = ResearchOptions(provider="local", enable_coder=False)


@dataclass(frozen=True)
class JobOutcome:
    """One research job: how long it took and how many LLM calls it made, or why it failed."""

    wall_s: float
    llm_calls: int = 0
    error: str | None = None


@dataclass(frozen=True)
class JobsRun:
    """Research jobs run at once, and what the engine did meanwhile."""

    mode: str
    wall_s: float
    outcomes: tuple[JobOutcome, ...]
    engine_running_mean: float
    engine_running_max: int
    engine_waiting_max: int
    preemptions: int
    gate_peak_in_flight: int | None
    gate_held: int | None = None
    gate_wait_s: float | None = None
    ttft_s: tuple[float, ...] = ()

    @property
    def finished(self) -> list[JobOutcome]:
        """The jobs that produced a report."""
        return [outcome for outcome in self.outcomes if outcome.error is None]

    @property
    def jobs_per_hour(self) -> float:
        """Finished jobs per hour of wall time."""
        return len(self.finished) * 3600 / self.wall_s


JobRunner = Callable[[int], Awaitable[int]]
# Time to first token of interactive call number `index`, through `budget` or straight (None).
TtftProbe = Callable[[Budget | None, int], Awaitable[float]]


async def measure_jobs(
    endpoint: Endpoint,
    mode: str,
    run_job: JobRunner,
    jobs: int,
    gate: Budget | None,
    probe: TtftProbe | None = None,
) -> JobsRun:
    """Run `jobs` jobs at once (`run_job(index)` runs one to its report, returns its LLM calls).

    `gate` is the budget the jobs' calls pass, for its peak; None when they bypass it. `probe`,
    if given, makes interactive calls through `gate` (straight when None) until the jobs end.
    """
    await reset_prefix_cache(endpoint)

    async def timed(index: int) -> JobOutcome:
        started = time.perf_counter()
        try:
            calls = await run_job(index)
        # A failed job is a result of the run (it counts against throughput), not a crash.
        except Exception as exc:
            return JobOutcome(time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
        return JobOutcome(time.perf_counter() - started, calls)

    async with engine_sampled(endpoint.root_url, JOB_SAMPLE_INTERVAL_S) as samples:
        started = time.perf_counter()
        batch = asyncio.gather(*(timed(index) for index in range(jobs)))
        ttfts = await probe_until_done(batch, probe, gate) if probe else []
        outcomes = await batch
        wall = time.perf_counter() - started
    running = samples.running or [0]
    held, wait_s = gate_waits(gate) if gate else (None, None)
    return JobsRun(
        mode=mode,
        wall_s=wall,
        outcomes=tuple(outcomes),
        engine_running_mean=sum(running) / len(running),
        engine_running_max=max(running),
        engine_waiting_max=max(samples.waiting, default=0),
        preemptions=samples.preemptions,
        gate_peak_in_flight=gate.snapshot().peak_in_flight if gate else None,
        gate_held=held,
        gate_wait_s=wait_s,
        ttft_s=tuple(ttfts),
    )


async def probe_until_done(
    batch: asyncio.Future[list[JobOutcome]], probe: TtftProbe, gate: Budget | None
) -> list[float]:
    """Interactive TTFTs, one probe at a time after a random pause, until `batch` is done."""
    rng = random.Random(7)
    ttfts: list[float] = []
    while True:
        pause = asyncio.ensure_future(asyncio.sleep(rng.uniform(*PROBE_PAUSE_S)))
        await asyncio.wait({batch, pause}, return_when=asyncio.FIRST_COMPLETED)
        if batch.done():
            pause.cancel()
            return ttfts
        ttfts.append(await probe(gate, len(ttfts)))


def gate_waits(gate: Budget) -> tuple[int, float]:
    """Calls the gate held back (waited over 10 ms for a slot), and their total wait in seconds."""
    held, total = 0.0, 0.0
    for family in gate.metrics.queue_wait.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                held += sample.value
            elif sample.name.endswith("_bucket") and sample.labels["le"] == "0.01":
                held -= sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return int(held), total


async def reset_prefix_cache(endpoint: Endpoint) -> None:
    """Empty the engine's prefix cache (needs VLLM_SERVER_DEV_MODE=1 in the engine's env)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(endpoint.root_url + "/reset_prefix_cache")
        response.raise_for_status()


@contextmanager
def corpus_dir(hotpotqa: Path) -> Iterator[Path]:
    """A temporary data dir whose local corpus holds the HotpotQA file's paragraphs."""
    with tempfile.TemporaryDirectory(prefix="fawn-bench-") as folder:
        build_corpus(hotpotqa, Path(folder))
        yield Path(folder)


def job_llm_settings() -> LLMSettings:
    """The production LLM settings, with a per-call timeout long enough for a queued call."""
    return LLMSettings(timeout_s=JOB_CALL_TIMEOUT_S)


def production_gate(endpoint: Endpoint) -> Budget:
    """The production gate for this engine: default budget 8, KV capacity from its /metrics."""
    return budget_for_engine(
        endpoint.root_url, job_llm_settings(), metrics=gate_metrics(CollectorRegistry())
    )


def no_gate() -> Budget:
    """A budget that never holds a call back, so every call goes straight to the engine."""
    return Budget(NO_GATE_LIMIT, metrics=gate_metrics(CollectorRegistry()))


def runtime_for(endpoint: Endpoint, budget: Budget, data_dir: Path) -> Runtime:
    """The research runtime as the app builds it, on `budget`."""
    return connect_runtime(endpoint, job_llm_settings(), budget, data_dir=data_dir)


def plan_pinned_to(steps: Sequence[Step]) -> PlanReviewer:
    """Plan review that replaces whatever the planner wrote with `steps`."""

    async def review(_plan: Plan) -> PlanReview:
        return PlanReview(action="edit", steps=list(steps))

    return review


def question_steps(question: str) -> tuple[Step, ...]:
    """Three research steps built from `question` alone, none depending on another.

    Each words a different facet, so each step's first search (the question plus a few of the
    step's own terms) differs, as the steps of part c's hand-written plan do.
    """
    facets = (
        ("Who and what the question names", "Identify the people, places and works named in"),
        ("Facts about them", "Find the dates, places and roles of what is named in"),
        ("Evidence for the answer", "Find passages that directly answer"),
    )
    return tuple(
        Step(
            title=title,
            description=f"{task}: {question}",
            step_type=StepType.RESEARCH,
            need_search=True,
        )
        for title, task in facets
    )


def pinned_job(
    questions: Sequence[str], runtime: Runtime, parallel: bool, steps: Sequence[Step] | None = None
) -> JobRunner:
    """A runner of job `index`: `questions[index]`, its plan pinned to `steps` (default: 3 steps
    built from the question), its steps (not) in parallel."""
    options = JOB_OPTIONS.model_copy(update={"parallel_steps": parallel})

    async def run_job(index: int) -> int:
        question = questions[index]
        review = plan_pinned_to(steps if steps is not None else question_steps(question))
        result = await run_research(question, options, runtime, review_plan=review)
        return result.llm_calls

    return run_job


async def part_c(endpoint: Endpoint, hotpotqa: Path, repeats: int) -> list[JobsRun]:
    """One pinned 3-step job, parallel and sequential, alternating which goes first.

    One unmeasured run first, so the engine's one-off costs (such as compiling each JSON
    schema's grammar) fall on no measured run.
    """
    question = load_questions(hotpotqa)[PINNED_QUESTION].question
    budget = production_gate(endpoint)
    runs: list[JobsRun] = []
    with corpus_dir(hotpotqa) as data_dir:
        runtime = runtime_for(endpoint, budget, data_dir)
        await pinned_job([question], runtime, True, PINNED_STEPS)(0)
        for repeat in range(repeats):
            for parallel in (True, False) if repeat % 2 == 0 else (False, True):
                mode = "parallel steps" if parallel else "sequential steps"
                run_job = pinned_job([question], runtime, parallel, PINNED_STEPS)
                runs.append(await measure_jobs(endpoint, mode, run_job, 1, budget))
                print(f"  c: {mode}, run {repeat + 1}: {runs[-1].wall_s:.1f} s", flush=True)
    return runs


async def part_d(
    endpoint: Endpoint,
    hotpotqa: Path,
    jobs: int,
    ungated: bool,
    probe: TtftProbe | None,
    ungated_first: bool = False,
) -> list[JobsRun]:
    """`jobs` different questions at once, each plan pinned to 3 research steps built from its
    question: through one gate, then with none; `probe` measures interactive TTFT meanwhile.

    One unmeasured job first (the next question of the file), as in part c. `ungated_first`
    swaps the order, to tell the gate's effect from that of running first.
    """
    questions = [q.question for q in load_questions(hotpotqa, jobs + 1)]
    warm_up, questions = questions[-1:], questions[:-1]
    gate = production_gate(endpoint)
    # Each mode: its name, the budget its calls pass, and the gate whose peak it reports.
    modes: list[tuple[str, Budget, Budget | None]] = [
        (f"through the gate (budget {gate.limit})", gate, gate)
    ]
    if ungated:
        modes.append(("straight to the engine (no gate)", no_gate(), None))
    if ungated_first:
        modes.reverse()
    runs: list[JobsRun] = []
    with corpus_dir(hotpotqa) as data_dir:
        warm_runtime = runtime_for(endpoint, production_gate(endpoint), data_dir)
        await pinned_job(warm_up, warm_runtime, True)(0)
        for mode, budget, shown in modes:
            run_job = pinned_job(questions, runtime_for(endpoint, budget, data_dir), True)
            runs.append(await measure_jobs(endpoint, mode, run_job, len(questions), shown, probe))
            print(f"  d: {mode}: {runs[-1].wall_s:.1f} s", flush=True)
    return runs


def table_c(runs: Sequence[JobsRun]) -> str:
    """Part c as Markdown: per mode the median of its runs, then the sequential/parallel ratio."""
    lines = [
        "c. One research job, plan pinned to 3 independent research steps",
        "",
        "| Mode | Runs | Wall p50 (s) | Wall, each run (s) | LLM calls (p50) | "
        "Engine slots in use (mean) | (max) | Failed |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    medians: dict[str, float] = {}
    for mode in ("parallel steps", "sequential steps"):
        mine = [run for run in runs if run.mode == mode]
        walls = [run.wall_s for run in mine]
        calls = [o.llm_calls for run in mine for o in run.finished]
        medians[mode] = statistics.median(walls)
        lines.append(
            f"| {mode} | {len(mine)} | {medians[mode]:.1f} | "
            f"{', '.join(f'{w:.0f}' for w in walls)} | "
            f"{statistics.median(calls) if calls else 0:g} | "
            f"{statistics.mean(r.engine_running_mean for r in mine):.1f} | "
            f"{max(r.engine_running_max for r in mine)} | "
            f"{sum(len(r.outcomes) - len(r.finished) for r in mine)} |"
        )
    ratio = medians["sequential steps"] / medians["parallel steps"]
    pairs = pair_ratios(runs)
    lines += [
        "",
        f"Ratio sequential/parallel: of the median walls {ratio:.2f}x; in each back-to-back pair "
        f"{', '.join(f'{r:.2f}x' for r in pairs)}, median **{statistics.median(pairs):.2f}x**.",
    ]
    return "\n".join(lines + _errors(runs))


def pair_ratios(runs: Sequence[JobsRun]) -> list[float]:
    """Sequential wall / parallel wall of each back-to-back pair of runs.

    Robust to a machine whose load drifts during the benchmark: each pair ran at nearly the same
    time, while the medians of each mode can fall at different times.
    """
    ratios = []
    for first, second in zip(runs[::2], runs[1::2], strict=False):
        parallel, sequential = sorted((first, second), key=lambda run: run.mode)
        ratios.append(sequential.wall_s / parallel.wall_s)
    return ratios


def table_d(runs: Sequence[JobsRun]) -> str:
    """Part d as Markdown: the jobs, then the interactive probes made while they ran."""
    jobs = len(runs[0].outcomes) if runs else 0
    lines = [
        f"d. {jobs} research jobs at once (different questions, each plan pinned to 3 "
        "independent research steps)",
        "",
        "| Mode | Finished | Wall (s) | Jobs/hour | Job wall p50 (s) | p95 (s) | LLM calls | "
        "Engine running (mean) | (max) | Engine waiting (max) | Preemptions | Gate peak | "
        "Calls held by the gate | Their wait (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for run in runs:
        walls = [o.wall_s for o in run.outcomes]
        peak = "-" if run.gate_peak_in_flight is None else str(run.gate_peak_in_flight)
        held = "-" if run.gate_held is None else str(run.gate_held)
        wait = "-" if run.gate_wait_s is None else f"{run.gate_wait_s:.0f}"
        lines.append(
            f"| {run.mode} | {len(run.finished)}/{len(run.outcomes)} | {run.wall_s:.0f} | "
            f"{run.jobs_per_hour:.1f} | {percentile(walls, 50):.0f} | "
            f"{percentile(walls, 95):.0f} | {sum(o.llm_calls for o in run.outcomes)} | "
            f"{run.engine_running_mean:.1f} | {run.engine_running_max} | "
            f"{run.engine_waiting_max} | {run.preemptions} | {peak} | {held} | {wait} |"
        )
    return "\n".join(lines + _probes(runs) + _errors(runs))


def _probes(runs: Sequence[JobsRun]) -> list[str]:
    probed = [run for run in runs if run.ttft_s]
    if not probed:
        return []
    lines = [
        "",
        "Interactive calls (4 tokens, streamed) made one at a time while the jobs ran:",
        "",
        "| Mode | Probes | TTFT p50 (s) | TTFT p95 (s) | TTFT max (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for run in probed:
        lines.append(
            f"| {run.mode} | {len(run.ttft_s)} | {percentile(run.ttft_s, 50):.2f} | "
            f"{percentile(run.ttft_s, 95):.2f} | {max(run.ttft_s):.2f} |"
        )
    return lines


def _errors(runs: Sequence[JobsRun]) -> list[str]:
    errors = [f"- {run.mode}: {o.error}" for run in runs for o in run.outcomes if o.error]
    return ["", "Failed jobs:", *errors] if errors else []
