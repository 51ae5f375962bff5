"""Leases: a job runs in the one process that holds its unexpired lease in the job store.

A process claims a job under its worker name, renews the leases it holds on every heartbeat,
and releases each when the job's run ends. A process that dies stops renewing: once its lease
expires, any other process claims the job and resumes it from its checkpoint. On one machine a
dead process's leases are free at once: a worker name carries its host and pid, and a name of
this host whose process is gone (or whose pid is this very process's under another name, as
in a restarted container) holds nothing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from app.jobs.models import Job, JobStatus
from app.jobs.settings import JobSettings
from app.jobs.store import JobStore

# The worker names handed out in this process: a name with this pid that is not among them is
# from an earlier process that had the same pid.
_NAMES_HERE: set[str] = set()


def worker_name() -> str:
    """A name no other process uses: `host:pid:random`."""
    name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    _NAMES_HERE.add(name)
    return name


def stale_here(holders: Iterable[str], me: str) -> list[str]:
    """The worker names among `holders` of processes of this host that no longer run."""
    host = socket.gethostname()
    stale = []
    for name in holders:
        their_host, _, rest = name.partition(":")
        pid_text = rest.partition(":")[0]
        if name == me or name in _NAMES_HERE or their_host != host or not pid_text.isdigit():
            continue
        if int(pid_text) == os.getpid() or not _alive(int(pid_text)):
            stale.append(name)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass(frozen=True)
class Renewal:
    """What a heartbeat learnt: the held jobs' statuses, and the jobs this process lost."""

    held: dict[str, JobStatus]
    lost: list[str]


class Leases:
    """The leases this process holds in the store, under one worker name.

    Calls are synchronous store calls (async callers run them in a thread).
    """

    def __init__(self, store: JobStore, settings: JobSettings, *, owner: str | None = None):
        self.store = store
        self.settings = settings
        self.owner = owner or worker_name()
        self.held: set[str] = set()

    def claim(self, job_id: str) -> Job | None:
        """Lease the job for this process; None if another live process holds it."""
        job = self.store.claim(job_id, self.owner, self.settings.lease_s, stale=self._stale())
        if job is not None:
            self.held.add(job_id)
        return job

    def claim_next(self, limit: int) -> list[Job]:
        """Lease up to `limit` runnable jobs that nobody (alive) holds, oldest first."""
        jobs = self.store.claim_next(self.owner, self.settings.lease_s, limit, stale=self._stale())
        self.held.update(job.id for job in jobs)
        return jobs

    def renew(self) -> Renewal:
        """Extend every lease held; a job no longer held (deleted, or taken over) is lost."""
        ids = sorted(self.held)
        held = self.store.renew(self.owner, ids, self.settings.lease_s)
        lost = [job_id for job_id in ids if job_id not in held]
        self.held.difference_update(lost)
        return Renewal(held, lost)

    def release(self, job_id: str) -> None:
        """Give the job up, so that any process may claim it now."""
        self.held.discard(job_id)
        self.store.release(job_id, self.owner)

    def _stale(self) -> list[str]:
        return stale_here(self.store.lease_holders(), self.owner)
