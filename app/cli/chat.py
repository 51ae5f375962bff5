"""`fawn chat`: one question straight to the served model (interactive class), for set-up checks."""

from __future__ import annotations

import typer
from rich.console import Console

from app.cli.progress import engine_status
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
    from app.services import Services, run_connected
    from serving.budget import CallClass
    from serving.client import chat_model

    settings = load_settings()

    async def ask(services: Services) -> None:
        model = chat_model(
            services.endpoint, settings.llm, services.budget, CallClass.INTERACTIVE,
            max_tokens=max_tokens,
        )  # fmt: skip
        await _stream(model, question)

    run_connected(settings, ask, on_status=engine_status(console))


async def _stream(model: object, question: str) -> None:
    from langchain_core.messages import HumanMessage

    async for chunk in model.astream([HumanMessage(question)]):  # type: ignore[attr-defined]
        console.print(chunk.content, end="", highlight=False, soft_wrap=True)
    console.print()
