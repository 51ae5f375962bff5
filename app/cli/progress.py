"""The terminal side of connecting to the engine: a spinner saying what connecting is doing."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console


def engine_status(console: Console) -> Callable[[str | None], None]:
    """A status sink for `run_connected` and `run_jobs`: a spinner while connecting."""
    spinner = console.status("")

    def show(text: str | None) -> None:
        if text is None:
            spinner.stop()
        else:
            spinner.update(text)
            spinner.start()  # a no-op once it spins

    return show
