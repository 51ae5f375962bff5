"""Which engine an admitted call goes to: one small policy, replaceable without touching the rest.

The gateway asks its policy to pick among the healthy engines that serve the requested model. The
default sends a call where there is the most free room; a policy that keeps a job's calls on the
engine already holding its prompt prefix would slot in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from serving.budget import BudgetSnapshot, CallClass


@dataclass(frozen=True)
class Candidate:
    """An engine the policy may choose, as the budget sees it now."""

    name: str
    snapshot: BudgetSnapshot


class EnginePolicy(Protocol):
    """Chooses the engine for one call."""

    def choose(self, candidates: Sequence[Candidate], call_class: CallClass) -> str:
        """The name of the chosen candidate (there is always at least one)."""
        ...


class MostFreeRoom:
    """The engine with the most free sequences (less what already waits), then the most free KV."""

    def choose(self, candidates: Sequence[Candidate], call_class: CallClass) -> str:
        """The candidate with the most room; ties go to the first listed."""
        return max(candidates, key=lambda c: _room(c.snapshot)).name


def _room(snapshot: BudgetSnapshot) -> tuple[float, float]:
    """Free share of the sequence budget (waiting calls count against it), then of the KV cache."""
    free_sequences = snapshot.limit - snapshot.total_in_flight - snapshot.total_queued
    capacity = snapshot.kv_capacity_tokens
    free_kv = 1.0 if not capacity else 1.0 - snapshot.kv_tokens_admitted / capacity
    return free_sequences / snapshot.limit, free_kv
