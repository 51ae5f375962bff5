"""`create_app(settings)`: the FastAPI application, its shared objects in lifespan state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app import web
from app.api import corpus, health, podcast, research
from app.api.auth import check_bind_is_safe, require_api_key
from app.api.errors import install_error_handlers
from app.jobs.podcast import PodcastTasks
from app.jobs.service import job_service
from app.jobs.store import open_job_store
from app.services import open_services
from app.settings import Settings


def create_app(settings: Settings, *, worker: bool = True) -> FastAPI:
    """Build the API; refuses a non-loopback bind without an API key.

    On start-up it connects to the engine (starting the embedded one if no base URL is set) and
    opens the job store. With `worker`, a worker in the same process runs jobs: the queued ones,
    those a stopped process left unfinished, podcasts never made (not those awaiting plan
    review, which wait for their verdict). Without it the API only stores, changes and shows
    jobs, and `fawn worker` processes run them.
    """
    check_bind_is_safe(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        services_context = open_services(settings)
        services = await asyncio.to_thread(services_context.__enter__)
        store = open_job_store(settings)
        jobs = job_service(
            settings, services, store, runner=worker, worker=worker, podcast_tasks=PodcastTasks()
        )
        app.state.services, app.state.store, app.state.jobs = services, store, jobs
        working = asyncio.create_task(jobs.worker.run()) if jobs.worker else None
        try:
            yield
        finally:
            if working is not None:
                working.cancel()
                await asyncio.gather(working, return_exceptions=True)
            await jobs.shutdown()
            store.close()
            await asyncio.to_thread(services_context.__exit__, None, None, None)

    app = FastAPI(
        title="Fawn",
        summary="Self-hosted deep research: submit questions, follow them live, read reports.",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(require_api_key)],
        # /docs is served by app.web from local Swagger files: FastAPI's own loads them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(research.router)
    app.include_router(podcast.router)
    app.include_router(corpus.router)
    app.include_router(health.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")
    return app
