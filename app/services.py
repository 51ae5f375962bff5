"""The composition root: from settings to a running engine, its budget, and a research runtime.

Every entry point that needs the model (CLI research and batch, the eval, the API) opens one
`Services` and shares it, so all of a process's LLM calls pass one budget. When the engine is
behind a Fawn gateway (the shared embedded engine always is), the gateway's budget is the one that
counts, for every process at once, and the process's own budget only passes calls through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from agents.runtime import Runtime, connect_runtime
from app.jobs.podcast import PodcastMaker, PodcastTasks
from app.jobs.runner import LocalJobRunner
from app.jobs.store import JobStore, checkpointer_factory
from app.settings import Settings
from serving.budget import DEFAULT_WAIT_TIMEOUT_S, Budget, budget_for_engine
from serving.endpoint import Endpoint
from serving.engine import connected_engine
from serving.pressure import EngineMetricsSource, GpuSource, PressureMonitor

# More calls than any process makes at once: the gateway's budget is the one that binds.
PASS_THROUGH_LIMIT = 100_000
T = TypeVar("T")
# Hears what connecting is doing ("Connecting to the engine ..."), then None once connected.
StatusSink = Callable[[str | None], None]


@dataclass(frozen=True)
class Services:
    """A connected engine with the one budget and pressure monitor in front of it."""

    endpoint: Endpoint
    budget: Budget
    pressure: PressureMonitor
    runtime: Runtime


@contextmanager
def open_services(
    settings: Settings, on_tick: Callable[[float], None] | None = None
) -> Iterator[Services]:
    """Connect to (or start) the engine and build the budget, the monitor and the runtime."""
    with connected_engine(
        settings.llm,
        settings.engine,
        models_dir=settings.model_cache,
        data_dir=settings.data_dir,
        gateway=settings.gateway,
        pressure=settings.pressure,
        on_tick=on_tick,
    ) as connection:
        endpoint = connection.endpoint
        # vLLM's own /metrics: behind a gateway, the engines' (the gateway's /metrics are its own).
        engine_sources = [EngineMetricsSource(url) for url in connection.metrics_urls]
        pressure = PressureMonitor([GpuSource(), *engine_sources], settings.pressure)
        llm = settings.llm
        if connection.gateway:
            budget = pass_through_budget()
            # A call now waits for its slot inside the HTTP request (in the gateway's queue), so
            # the per-call timeout must cover that wait as the in-process gate's did.
            llm = llm.model_copy(update={"timeout_s": llm.timeout_s + DEFAULT_WAIT_TIMEOUT_S})
        else:
            budget = budget_for_engine(
                endpoint.root_url,
                settings.llm,
                pressure=pressure,
                engine_max_num_seqs=endpoint.max_num_seqs,
            )
        runtime = connect_runtime(
            endpoint, llm, budget, data_dir=settings.data_dir, mcp=settings.mcp
        )
        pressure.start()
        try:
            yield Services(endpoint, budget, pressure, runtime)
        finally:
            pressure.stop()
            runtime.close()


def run_connected(
    settings: Settings,
    work: Callable[[Services], Coroutine[Any, Any, T]],
    *,
    on_status: StatusSink | None = None,
) -> T:
    """Connect to (or start) the engine, run `work` on its services in an event loop, close.

    The one connect-and-run of the CLI commands: `on_status` hears what connecting is doing
    (a terminal shows it as a spinner), and None once it is done or has failed.
    """
    say = on_status or (lambda _text: None)
    with ExitStack() as stack:
        say("Connecting to the engine ...")
        try:
            services = stack.enter_context(
                open_services(
                    settings, on_tick=lambda s: say(f"Starting the embedded engine ... {s:.0f} s")
                )
            )
        finally:
            say(None)
        return asyncio.run(work(services))


def pass_through_budget() -> Budget:
    """A budget that admits every call at once, for an engine behind a Fawn gateway.

    The gateway gates every process's calls (by class, KV tokens and memory pressure); a second
    gate here would split its one budget into per-process shares. This one only counts calls
    (for the process's own metrics), with no KV admission and no pressure deferral.
    """
    return Budget(PASS_THROUGH_LIMIT)


def podcast_maker(
    settings: Settings, services: Services, store: JobStore, tasks: PodcastTasks | None = None
) -> PodcastMaker:
    """What makes the podcasts of finished reports, in the budget's TTS class."""
    return PodcastMaker(store, services.runtime, settings.tts, budget=services.budget, tasks=tasks)


def job_runner(
    settings: Settings,
    services: Services,
    store: JobStore,
    *,
    concurrency: int | None = None,
    podcast_tasks: PodcastTasks | None = None,
) -> LocalJobRunner:
    """The job runner: checkpoints beside the job store, the podcast each job asks for made after,
    and pressure changes told to the running jobs.

    `concurrency` overrides `jobs.concurrency` (a CLI command runs its own jobs one at a time);
    `podcast_tasks` (the API's) lets podcasts the runner makes count as running there too.
    """
    jobs = settings.jobs
    if concurrency is not None:
        jobs = jobs.model_copy(update={"concurrency": concurrency})
    runner = LocalJobRunner(
        store,
        services.runtime,
        checkpointer_factory(settings),
        settings=jobs,
        podcasts=podcast_maker(settings, services, store, podcast_tasks),
    )
    services.pressure.subscribe(runner.pressure_changed)
    return runner
