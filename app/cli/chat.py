"""`fawn chat`: one question straight to the served model (interactive class), for set-up checks."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

import typer
from rich.console import Console

from app.settings import load_settings

console = Console()


def chat(
    question: str = typer.Argument(..., help="What to ask the model."),
    max_tokens: int = typer.Option(256, min=1, help="Completion cap."),
) -> None:
    """Ask the served model one question and stream its answer.

    Example: fawn chat "What is the capital of France?"
    """
    # Imported here so that every other command starts without loading langchain.
    from app.services import open_services
    from serving.budget import CallClass
    from serving.client import chat_model

    settings = load_settings()
    with ExitStack() as stack:
        with console.status("Connecting to the engine ...") as status:
            services = stack.enter_context(
                open_services(
                    settings,
                    on_tick=lambda s: status.update(f"Starting the embedded engine ... {s:.0f} s"),
                )
            )
        model = chat_model(
            services.endpoint, settings.llm, services.budget, CallClass.INTERACTIVE,
            max_tokens=max_tokens,
        )  # fmt: skip
        asyncio.run(_stream(model, question))


async def _stream(model: object, question: str) -> None:
    from langchain_core.messages import HumanMessage

    async for chunk in model.astream([HumanMessage(question)]):  # type: ignore[attr-defined]
        console.print(chunk.content, end="", highlight=False, soft_wrap=True)
    console.print()
