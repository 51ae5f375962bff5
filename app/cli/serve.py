"""`fawn serve`: launch vLLM from a profile; `fawn serve prepare`: convert the embedded model."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer
from rich.console import Console

from app.settings import load_settings
from serving.embedded_model import prepare_embedded_model
from serving.engine import default_profile_name, start_engine, wait_until_healthy
from serving.profiles import load_profile

app = typer.Typer(help="Serve the model Fawn talks to.", no_args_is_help=False)
console = Console()


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    profile: str | None = typer.Option(
        None, help="Profile name or YAML path. Default: embedded-cpu without a GPU."
    ),
    host: str = typer.Option("127.0.0.1", help="Address the engine binds to."),
    port: int = typer.Option(8000, help="Port the engine listens on."),
) -> None:
    """Start vLLM on a profile, wait until it is healthy, and run until Ctrl-C.

    Example: fawn serve --profile qwen3-4b-24gb --port 8000
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    chosen = load_profile(profile or settings.engine.profile or default_profile_name())
    _check_plan(chosen)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    engine = start_engine(chosen, models_dir=settings.model_cache, host=host, port=port)
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with console.status(f"Starting {chosen.name} ...") as status:
            wait_until_healthy(
                engine,
                settings.engine.startup_timeout_s,
                on_tick=lambda s: _tick(status, chosen.name, s, stop),
            )
        console.print(f"[green]Serving[/] {chosen.served_model_name} at [bold]{engine.base_url}[/]")
        console.print("Press Ctrl-C to stop.")
        while not stop.wait(1.0):
            if engine.process.poll() is not None:
                console.print(f"[red]The engine exited.[/] Log: {engine.log_path}")
                raise typer.Exit(1)
    except _Interrupted:
        pass
    finally:
        engine.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("Engine stopped.")


@app.command()
def prepare() -> None:
    """Convert the embedded model (SmolLM2-135M-Instruct) once into the models dir."""
    settings = load_settings()
    path = prepare_embedded_model(settings.model_cache)
    console.print(f"Embedded model ready at {path}")


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the engine was starting."""


def _tick(status: object, name: str, elapsed: float, stop: threading.Event) -> None:
    if stop.is_set():
        raise _Interrupted
    status.update(f"Starting {name} ... {elapsed:.0f} s")  # type: ignore[attr-defined]


def _check_plan(profile: object) -> None:
    """Refuse to launch a profile the memory planner says does not fit."""
