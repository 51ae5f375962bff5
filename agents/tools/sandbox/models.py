"""The sandbox's value objects: the limits a run gets and the result it gives back."""

from __future__ import annotations

import base64
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CPU_SECONDS = 10
DEFAULT_WALL_SECONDS = 20.0
DEFAULT_MEMORY_MB = 512
DEFAULT_OUTPUT_BYTES = 64_000
DEFAULT_MAX_FIGURES = 4
DEFAULT_MAX_FIGURE_BYTES = 2_000_000
DEFAULT_MAX_PROCESSES = 64
DEFAULT_DISK_MB = 256


class SandboxLimits(BaseModel):
    """What one run of model-written code may use before it is stopped."""

    model_config = ConfigDict(frozen=True)

    cpu_seconds: int = Field(
        DEFAULT_CPU_SECONDS, ge=1, le=3600, description="CPU time per process."
    )
    wall_seconds: float = Field(
        DEFAULT_WALL_SECONDS, gt=0, le=3600, description="Wall-clock time for the whole run."
    )
    memory_mb: int = Field(
        DEFAULT_MEMORY_MB, ge=32, le=65_536, description="Address space per process (RLIMIT_AS)."
    )
    output_bytes: int = Field(
        DEFAULT_OUTPUT_BYTES, ge=256, le=16_000_000, description="Kept of stdout, and of stderr."
    )
    max_figures: int = Field(DEFAULT_MAX_FIGURES, ge=0, le=64, description="PNG files returned.")
    max_figure_bytes: int = Field(
        DEFAULT_MAX_FIGURE_BYTES, ge=1, le=64_000_000, description="Largest PNG file returned."
    )
    max_processes: int = Field(
        DEFAULT_MAX_PROCESSES, ge=1, le=4096, description="Processes and threads (RLIMIT_NPROC)."
    )
    disk_mb: int = Field(
        DEFAULT_DISK_MB, ge=1, le=65_536, description="Everything written to the work dir."
    )


class KillReason(StrEnum):
    """Which limit stopped a run (compares equal to its plain-string value)."""

    CPU_TIME = "cpu time"
    WALL_TIME = "wall time"
    MEMORY = "memory"
    OUTPUT = "output"
    DISK = "disk"
    SIGNAL = "signal"


class Figure(BaseModel):
    """A PNG file the code saved in its work dir, e.g. with `plt.savefig("chart.png")`."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    name: str = Field(description="Path relative to the work dir.")
    png: bytes

    @property
    def base64(self) -> str:
        """The PNG bytes, base64-encoded."""
        return base64.b64encode(self.png).decode("ascii")

    @property
    def data_uri(self) -> str:
        """A `data:image/png;base64,...` URI, ready for an <img> tag or a Markdown image."""
        return f"data:image/png;base64,{self.base64}"


class SandboxResult(BaseModel):
    """What came back from one sandboxed run."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    stdout: str
    stderr: str
    exit_code: int | None = Field(description="None when the process was killed.")
    timed_out: bool = Field(description="Stopped by the CPU-time or wall-time limit.")
    killed_reason: KillReason | None = Field(description="The limit that stopped the run.")
    signal_name: str | None = Field(default=None, description="Signal that ended the process.")
    truncated: bool = Field(description="stdout or stderr was cut to the output limit.")
    figures: list[Figure] = Field(default_factory=list)
    skipped_figures: list[str] = Field(
        default_factory=list, description="PNG files not returned, each with the reason."
    )
    duration_s: float

    @property
    def ok(self) -> bool:
        """True when the code ran to the end and exited 0."""
        return self.exit_code == 0 and self.killed_reason is None

    @property
    def status(self) -> str:
        """One line saying how the run ended, for people and for the model."""
        if self.killed_reason is None:
            return f"exited with code {self.exit_code}"
        if self.killed_reason is KillReason.SIGNAL:
            return f"killed by {self.signal_name or 'a signal'}"
        if self.exit_code is not None:
            return f"exited with code {self.exit_code}: {self.killed_reason} limit reached"
        return f"killed: {self.killed_reason} limit reached"
