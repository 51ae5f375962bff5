"""`fawn chat`."""

from __future__ import annotations


def chat() -> None:
    """Ask the model one question."""
