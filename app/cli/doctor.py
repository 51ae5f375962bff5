"""`fawn doctor`: check the set-up and say how to fix what is wrong."""

from __future__ import annotations


def doctor() -> None:
    """Check the engine, GPU, sandbox, speech and web search, with the fix for each failure."""
