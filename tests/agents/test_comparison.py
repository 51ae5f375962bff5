"""A time comparison between two options is decided by the dates their own pages give."""

from __future__ import annotations

from agents.comparison import decide
from tests.agents.conftest import numbered_sources

DIRECTORS = numbered_sources(
    ("Jan de Bont", "Jan de Bont (born 22 October 1943) is a Dutch cinematographer."),
    ("Raoul Walsh", "Raoul Walsh (March 11, 1887 – December 31, 1980) was an American director."),
)


def test_the_earlier_year_wins_when_the_question_asks_who_came_first() -> None:
    decision = decide("Who was born first, Jan de Bont or Raoul Walsh?", DIRECTORS)
    assert decision is not None
    assert (decision.winner.option, decision.winner.date) == ("Raoul Walsh", (1887, 3, 11))
    assert decision.evidence() == (
        "Raoul Walsh (March 11, 1887 – December 31, 1980) was an American director [2]. "
        "Jan de Bont (born 22 October 1943) is a Dutch cinematographer [1]."
    )


def test_the_later_year_wins_when_the_question_asks_who_is_younger() -> None:
    decision = decide("Who is younger, Jan de Bont or Raoul Walsh?", DIRECTORS)
    assert decision is not None and decision.winner.option == "Jan de Bont"


def test_dates_of_one_year_are_told_apart_by_month_and_day() -> None:
    fighters = numbered_sources(
        ("Jeremy Horn", "Jeremy Horn (born August 25, 1975) is an American fighter."),
        ("Renato Sobral", "Renato Sobral (born 7 September 1975) is a Brazilian fighter."),
    )
    decision = decide("Who is older, Jeremy Horn or Renato Sobral?", fighters)
    assert decision is not None and decision.winner.option == "Jeremy Horn"
    bare = numbered_sources(
        ("Jeremy Horn", "Born in 1975."), ("Renato Sobral", "Born 7 September 1975.")
    )
    assert decide("Who is older, Jeremy Horn or Renato Sobral?", bare) is None


def test_nothing_is_decided_without_both_pages_dated_or_a_direction() -> None:
    one_page = DIRECTORS[:1]
    assert decide("Who was born first, Jan de Bont or Raoul Walsh?", one_page) is None
    undated = numbered_sources(
        ("Jan de Bont", "A cinematographer."), ("Raoul Walsh", "A director.")
    )
    assert decide("Who was born first, Jan de Bont or Raoul Walsh?", undated) is None
    assert decide("Who directed more films, Jan de Bont or Raoul Walsh?", DIRECTORS) is None
    assert decide("Who was born first?", DIRECTORS) is None
    magazines = numbered_sources(
        ("Arthur's Magazine", "Arthur's Magazine (1844–1846) was a periodical."),
        ("First for Women", "First for Women is a magazine started in 1989."),
    )
    asked = "Which magazine was published in Philadelphia, Arthur's Magazine or First for Women?"
    assert decide(asked, magazines) is None, "'First' in a name asks nothing"
