"""`fawn sandbox exec`: run Python in the sandbox the coder uses, to check the set-up by hand."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from agents.tools.sandbox import (
    DEFAULT_BWRAP,
    DEFAULT_CPU_SECONDS,
    DEFAULT_MEMORY_MB,
    DEFAULT_WALL_SECONDS,
    SandboxLimits,
    SandboxResult,
    run_python,
)
from app.cli.errors import fail

# Exit codes for runs the sandbox stopped, as `timeout` and shells report them.
EXIT_TIMED_OUT = 124
EXIT_KILLED = 128 + signal.SIGKILL

app = typer.Typer(help="The Python sandbox that runs model-written code.", no_args_is_help=True)
_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@app.command("exec")
def exec_code(
    code: Annotated[
        str | None, typer.Argument(help="Python code to run; `-` reads it from stdin.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the code from this file.")
    ] = None,
    figures_dir: Annotated[
        Path | None,
        typer.Option("--figures-dir", help="Save the PNG figures the code writes into this dir."),
    ] = None,
    cpu_seconds: Annotated[int, typer.Option(help="CPU-time limit per process.")] = (
        DEFAULT_CPU_SECONDS
    ),
    wall_seconds: Annotated[float, typer.Option(help="Wall-time limit for the run.")] = (
        DEFAULT_WALL_SECONDS
    ),
    memory_mb: Annotated[int, typer.Option(help="Memory (address space) per process.")] = (
        DEFAULT_MEMORY_MB
    ),
    bwrap: Annotated[str, typer.Option(help="The bubblewrap binary to run it under.")] = (
        DEFAULT_BWRAP
    ),
) -> None:
    """Run Python in the sandbox; print its output, list its figures, and exit with its code.

    Example: fawn sandbox exec 'import sys; print(sys.version)'
    """
    source = _read_code(code, file)
    try:
        limits = SandboxLimits(
            cpu_seconds=cpu_seconds, wall_seconds=wall_seconds, memory_mb=memory_mb
        )
    except ValidationError as exc:
        problems = "; ".join(f"{error['loc'][0]}: {error['msg']}" for error in exc.errors())
        raise fail(f"Invalid sandbox limits ({problems}).") from exc
    result = asyncio.run(run_python(source, limits, bwrap=bwrap))
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    sys.stderr.flush()
    _report(result, figures_dir)
    raise typer.Exit(_exit_status(result))


def _read_code(code: str | None, file: Path | None) -> str:
    if (code is None) == (file is None):
        raise fail("Give the code as an argument (`-` reads stdin) or with --file PATH, not both.")
    if code == "-":
        return sys.stdin.read()
    if code is not None:
        return code
    assert file is not None
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"Cannot read {file}: {exc}. Pass a readable UTF-8 Python file.") from exc


def _report(result: SandboxResult, figures_dir: Path | None) -> None:
    """List the figures (saving them when asked) and say how the run ended, all on stderr."""
    for figure in result.figures:
        where = ""
        if figures_dir is not None:
            target = figures_dir / figure.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(figure.png)
            where = f" saved to {target}"
        _stderr.print(f"Figure {figure.name} ({len(figure.png):,} bytes){where}")
    for note in result.skipped_figures:
        _stderr.print(f"Figure skipped: {note}")
    if result.truncated:
        _stderr.print("Output truncated to the sandbox's output limit.")
    colour = "green" if result.ok else "red"
    _stderr.print(f"[{colour}]Sandbox:[/] {result.status} after {result.duration_s:.2f} s")


def _exit_status(result: SandboxResult) -> int:
    """The code's own exit code; 124 when a time limit stopped it, 128 + signal when killed."""
    if result.exit_code is not None:
        return result.exit_code
    if result.timed_out:
        return EXIT_TIMED_OUT
    if result.signal_name in signal.Signals.__members__:
        return 128 + signal.Signals[result.signal_name]
    return EXIT_KILLED
