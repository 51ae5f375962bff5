"""A worker: takes runnable jobs from the store while its runner has room, and runs them.

`fawn worker` is one process doing only this; `fawn api` runs one beside the API unless it is
started with `--no-worker`. Any number of workers share one store (SQLite on one machine,
Postgres across machines): each job is claimed under a lease by exactly one of them, and a job
whose worker died is claimed by another once its lease expires (at once on the same machine).
"""

from __future__ import annotations

import asyncio
import logging

from app.jobs.errors import StoreUnavailable
from app.jobs.runner import LocalJobRunner

logger = logging.getLogger(__name__)


class Worker:
    """Claims queued, interrupted and reviewed jobs for its runner, oldest first."""

    def __init__(self, runner: LocalJobRunner) -> None:
        self.runner = runner

    @property
    def name(self) -> str:
        """The name its leases are held under (`host:pid:random`)."""
        return self.runner.leases.owner

    async def run(self) -> None:
        """Claim and run jobs until cancelled (stop the runner afterwards: `shutdown`)."""
        self.runner.resume_podcasts()
        while True:
            try:
                await self._claim()
            except StoreUnavailable as exc:
                logger.warning("worker %s cannot claim jobs now: %s", self.name, exc)
            await asyncio.sleep(self.runner.settings.poll_s)

    async def _claim(self) -> None:
        free = self.runner.free_slots
        if not free:
            return
        for job in await asyncio.to_thread(self.runner.leases.claim_next, free):
            if self.runner.is_running(job.id):
                # Its run here is just ending (it gave the lease up a moment ago): hand the
                # job back, to be claimed afresh.
                await asyncio.to_thread(self.runner.leases.release, job.id)
            else:
                self.runner.submit(job)
