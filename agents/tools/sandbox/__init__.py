"""The Python sandbox: model-written code runs under bubblewrap, never on the host.

    result = await run_python("print(6 * 7)", SandboxLimits(wall_seconds=5))
    result.ok, result.stdout, result.figures

`sandbox_unavailable_reason()` says whether it works here (None) or what to fix; without a
working bubblewrap, `run_python` raises SandboxError and nothing runs.
"""

from agents.tools.sandbox.availability import sandbox_unavailable_reason
from agents.tools.sandbox.command import DEFAULT_BWRAP
from agents.tools.sandbox.models import (
    DEFAULT_CPU_SECONDS,
    DEFAULT_DISK_MB,
    DEFAULT_MAX_FIGURE_BYTES,
    DEFAULT_MAX_FIGURES,
    DEFAULT_MAX_PROCESSES,
    DEFAULT_MEMORY_MB,
    DEFAULT_OUTPUT_BYTES,
    DEFAULT_WALL_SECONDS,
    Figure,
    KillReason,
    SandboxLimits,
    SandboxResult,
)
from agents.tools.sandbox.runner import run_python

__all__ = [
    "DEFAULT_BWRAP",
    "DEFAULT_CPU_SECONDS",
    "DEFAULT_DISK_MB",
    "DEFAULT_MAX_FIGURES",
    "DEFAULT_MAX_FIGURE_BYTES",
    "DEFAULT_MAX_PROCESSES",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_OUTPUT_BYTES",
    "DEFAULT_WALL_SECONDS",
    "Figure",
    "KillReason",
    "SandboxLimits",
    "SandboxResult",
    "run_python",
    "sandbox_unavailable_reason",
]
