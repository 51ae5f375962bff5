"""Run Python under bubblewrap with asyncio: stream and cap the output, enforce wall time and disk.

The wall-time kill takes the whole process tree: bwrap is the leader of its own process group,
and killing it takes down the sandbox's PID namespace (bwrap runs with --die-with-parent), so no
child, grandchild or daemon the code started survives.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from agents.tools.sandbox.command import (
    DEFAULT_BWRAP,
    Interpreter,
    boot_failed,
    bwrap_command,
    read_exit_code,
    resolve_bwrap,
    sandbox_uid,
    setup_failure,
)
from agents.tools.sandbox.figures import collect_figures
from agents.tools.sandbox.models import KillReason, SandboxLimits, SandboxResult
from agents.tools.sandbox.workspace import create_workspace, remove_workspace

READ_CHUNK = 65_536
# Output past the cap is drained and dropped; only code that keeps printing far beyond it is killed,
# so a program that prints a little too much still finishes with its own exit code.
RUNAWAY_OUTPUT_FACTOR = 10
DISK_CHECK_INTERVAL_S = 0.25
MAX_WORK_ENTRIES = 10_000
DRAIN_TIMEOUT_S = 5.0
BWRAP_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
DEFAULT_LIMITS = SandboxLimits()
MEMORY_ERROR = re.compile(r"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory")


async def run_python(
    code: str, limits: SandboxLimits = DEFAULT_LIMITS, *, bwrap: str = DEFAULT_BWRAP
) -> SandboxResult:
    """Run model-written `code` in the bubblewrap sandbox; SandboxError if that is impossible.

    The code never runs outside the sandbox: a missing bwrap, or one that cannot build its
    namespaces, raises before anything is executed.
    """
    executable = resolve_bwrap(bwrap)
    interpreter = Interpreter.current()
    uid = sandbox_uid()
    space = await asyncio.to_thread(create_workspace, code, interpreter.executable.parent, uid)
    try:
        status_read, status_write = os.pipe()
        try:
            argv = bwrap_command(
                executable, interpreter, space, limits, uid=uid, status_fd=status_write
            )
            outcome = await _supervise(argv, limits, space.work, status_write)
            exit_code = read_exit_code(status_read)
        finally:
            os.close(status_read)
        stderr = outcome.stderr.text()
        if (exit_code is None and outcome.killed is None) or boot_failed(exit_code, stderr):
            raise setup_failure(stderr)
        figures, skipped = await asyncio.to_thread(collect_figures, space.work, limits)
    finally:
        await asyncio.to_thread(remove_workspace, space)
    exit_code, killed, signal_name = _ending(exit_code, outcome.killed, stderr)
    return SandboxResult(
        stdout=outcome.stdout.text(),
        stderr=stderr,
        exit_code=exit_code,
        timed_out=killed in (KillReason.CPU_TIME, KillReason.WALL_TIME),
        killed_reason=killed,
        signal_name=signal_name,
        truncated=outcome.stdout.truncated or outcome.stderr.truncated,
        figures=figures,
        skipped_figures=skipped,
        duration_s=outcome.duration_s,
    )


class _Capture:
    """Keeps the head and the tail of a stream, `limit` bytes in all, and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.head_size = limit - limit // 2
        self.tail_size = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        taken = min(len(chunk), self.head_size - len(self.head))
        self.head += chunk[:taken]
        self.tail += chunk[taken:]
        del self.tail[: max(0, len(self.tail) - self.tail_size)]

    @property
    def truncated(self) -> bool:
        return self.total > self.head_size + self.tail_size

    def text(self) -> str:
        if not self.truncated:
            return (self.head + self.tail).decode(errors="replace")
        head = self.head.decode(errors="replace")
        tail = self.tail.decode(errors="replace")
        cut = self.total - len(self.head) - len(self.tail)
        return f"{head}\n[... {cut:,} bytes cut by the sandbox's output limit ...]\n{tail}"


@dataclass
class _Outcome:
    stdout: _Capture
    stderr: _Capture
    killed: KillReason | None
    duration_s: float


class _Watch:
    """One bwrap process under watch; `stop` kills its whole tree and keeps the first reason."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.killed: KillReason | None = None

    def stop(self, reason: KillReason | None) -> None:
        if self.process.returncode is not None:
            return
        if self.killed is None:
            self.killed = reason
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


async def _supervise(
    argv: list[str], limits: SandboxLimits, work: Path, status_fd: int
) -> _Outcome:
    """Run bwrap to its end or to a limit; closes `status_fd`, which only bwrap may keep."""
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            pass_fds=(status_fd,),
            env=BWRAP_ENV,
        )
    finally:
        os.close(status_fd)
    assert process.stdout is not None and process.stderr is not None
    watch = _Watch(process)
    stdout, stderr = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
    runaway = limits.output_bytes * RUNAWAY_OUTPUT_FACTOR
    pumps = [
        asyncio.create_task(_pump(process.stdout, stdout, runaway, watch.stop)),
        asyncio.create_task(_pump(process.stderr, stderr, runaway, watch.stop)),
    ]
    disk = asyncio.create_task(_watch_disk(work, limits.disk_mb * 2**20, watch.stop))
    try:
        try:
            await asyncio.wait_for(process.wait(), limits.wall_seconds)
        except TimeoutError:
            watch.stop(KillReason.WALL_TIME)
        await process.wait()
        await asyncio.wait(pumps, timeout=DRAIN_TIMEOUT_S)
    finally:
        watch.stop(None)
        disk.cancel()
        for pump in pumps:
            pump.cancel()
        await process.wait()
    return _Outcome(stdout, stderr, watch.killed, time.monotonic() - started)


async def _pump(
    stream: asyncio.StreamReader,
    capture: _Capture,
    runaway: int,
    stop: Callable[[KillReason], None],
) -> None:
    while chunk := await stream.read(READ_CHUNK):
        capture.add(chunk)
        if capture.total > runaway:
            stop(KillReason.OUTPUT)


async def _watch_disk(work: Path, limit: int, stop: Callable[[KillReason], None]) -> None:
    while True:
        await asyncio.sleep(DISK_CHECK_INTERVAL_S)
        if await asyncio.to_thread(_over_disk_limit, work, limit):
            stop(KillReason.DISK)
            return


def _over_disk_limit(work: Path, limit: int) -> bool:
    """True when the work dir holds more than `limit` bytes or too many files to count."""
    used = entries = 0
    for parent, dirs, files in os.walk(work):
        for name in dirs + files:
            entries += 1
            with suppress(OSError):
                used += os.lstat(os.path.join(parent, name)).st_blocks * 512
        if used > limit or entries > MAX_WORK_ENTRIES:
            return True
    return False


def _ending(
    exit_code: int | None, killed: KillReason | None, stderr: str
) -> tuple[int | None, KillReason | None, str | None]:
    """(exit code, limit hit, signal name) from bwrap's exit code and the code's stderr."""
    if killed is not None or exit_code is None:
        return None, killed, None
    # bwrap reports death by signal N as exit code 128 + N, as shells do.
    if exit_code > 128:
        with suppress(ValueError):
            died_of = signal.Signals(exit_code - 128)
            if died_of is signal.SIGXCPU:
                return None, KillReason.CPU_TIME, died_of.name
            if died_of is signal.SIGXFSZ:
                return None, KillReason.DISK, died_of.name
            return None, KillReason.SIGNAL, died_of.name
    if exit_code != 0 and MEMORY_ERROR.search(stderr):
        return exit_code, KillReason.MEMORY, None
    return exit_code, None, None
