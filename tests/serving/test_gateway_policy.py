"""The gateway's engine choice: the engine with the most free room gets the call."""

from __future__ import annotations

from serving.budget import BudgetSnapshot, CallClass
from serving.gateway import MostFreeRoom
from serving.gateway.policy import Candidate


def snapshot(
    limit: int, in_flight: int, queued: int = 0, kv: int = 0, capacity: int | None = None
) -> BudgetSnapshot:
    return BudgetSnapshot(
        limit=limit,
        in_flight={CallClass.RESEARCH: in_flight},
        queued={CallClass.RESEARCH: queued},
        kv_tokens_admitted=kv,
        kv_capacity_tokens=capacity,
        peak_in_flight=in_flight,
        peak_kv_tokens=kv,
        admitted_total=in_flight,
        under_pressure=False,
    )


def choose(*candidates: tuple[str, BudgetSnapshot]) -> str:
    return MostFreeRoom().choose([Candidate(n, s) for n, s in candidates], CallClass.RESEARCH)


def test_the_engine_with_more_free_sequences_wins() -> None:
    assert choose(("busy", snapshot(8, 6)), ("idle", snapshot(8, 1))) == "idle"


def test_free_room_is_a_share_of_each_engines_own_budget() -> None:
    # 4 of 16 free (25%) is less room than 3 of 4 free (75%).
    assert choose(("big", snapshot(16, 12)), ("small", snapshot(4, 1))) == "small"


def test_calls_already_waiting_count_against_an_engine() -> None:
    assert choose(("queued", snapshot(8, 4, queued=3)), ("plain", snapshot(8, 5))) == "plain"


def test_with_equal_sequences_the_emptier_kv_cache_wins() -> None:
    full = snapshot(8, 2, kv=4000, capacity=5000)
    empty = snapshot(8, 2, kv=500, capacity=5000)
    assert choose(("full", full), ("empty", empty)) == "empty"


def test_a_tie_goes_to_the_first_engine_listed() -> None:
    assert choose(("first", snapshot(8, 0)), ("second", snapshot(8, 0))) == "first"
