"""Errors raised by the agents' tools; both are FawnErrors (see serving/errors.py for the tree)."""

from __future__ import annotations

from serving.errors import FawnError


class SandboxError(FawnError):
    """Model-written code could not be run safely (no bubblewrap, bad limits, sandbox failure)."""


class SearchError(FawnError):
    """A search provider or the page reader failed, or refused a URL."""
