"""Whether the sandbox works on this machine; when it does not, the coder is switched off."""

from __future__ import annotations

import os
import subprocess

from agents.errors import SandboxError
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
from agents.tools.sandbox.models import SandboxLimits
from agents.tools.sandbox.workspace import workspace

PROBE_TIMEOUT_S = 30.0
PROBE_CODE = "print('sandbox ok')"


def sandbox_unavailable_reason(bwrap: str = DEFAULT_BWRAP) -> str | None:
    """None when bubblewrap can run Python here; otherwise what is wrong and how to fix it."""
    try:
        _probe(resolve_bwrap(bwrap))
    except SandboxError as exc:
        return str(exc)
    return None


def _probe(executable: str) -> None:
    """Run a one-line program through the full sandbox; SandboxError unless it prints back."""
    interpreter = Interpreter.current()
    uid = sandbox_uid()
    with workspace(PROBE_CODE, interpreter.executable.parent, uid) as space:
        status_read, status_write = os.pipe()
        try:
            argv = bwrap_command(
                executable, interpreter, space, SandboxLimits(), uid=uid, status_fd=status_write
            )
            try:
                finished = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    errors="replace",
                    pass_fds=(status_write,),
                    start_new_session=True,
                    timeout=PROBE_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired as exc:
                raise setup_failure(f"a test run took over {PROBE_TIMEOUT_S:.0f} s") from exc
            finally:
                os.close(status_write)
            exit_code = read_exit_code(status_read)
        finally:
            os.close(status_read)
    if exit_code is None or boot_failed(exit_code, finished.stderr):
        raise setup_failure(finished.stderr)
    if exit_code != 0 or finished.stdout.strip() != "sandbox ok":
        raise setup_failure(f"a test run exited {exit_code}: {finished.stderr.strip()[-300:]}")
