"""`fawn research` and `fawn chat`."""

from __future__ import annotations


def research() -> None:
    """Research a question."""


def chat() -> None:
    """Ask the model one question."""
