"""`fawn research`."""

from __future__ import annotations


def research() -> None:
    """Research a question."""
