"""Plain HTML form fields become the API's requests: what a no-JavaScript browser posts."""

from __future__ import annotations

import pytest

from app.web.forms import FormError, ask_form, plan_review, research_request


def test_unticked_checkboxes_turn_options_off_and_numbers_parse() -> None:
    form = ask_form({"question": "  Who wrote Dune?  ", "max_step_num": "2", "podcast": "on"})
    request = research_request(form)
    assert request.question == "Who wrote Dune?"
    assert request.options.max_step_num == 2
    assert request.options.podcast is True
    assert request.options.enable_coder is False
    assert request.options.auto_accept_plan is False


def test_the_report_kind_chosen_in_the_form_reaches_the_job_options() -> None:
    request = research_request(ask_form({"question": "Who?", "report_mode": "full"}))
    assert request.options.report_mode == "full"
    with pytest.raises(FormError, match=r"^options\.report_mode: "):
        research_request(ask_form({"question": "Who?", "report_mode": "poem"}))


def test_ask_form_keeps_what_was_typed_when_it_is_refused() -> None:
    form = ask_form({"question": "Who?", "locale": "not a locale", "report_style": "news"})
    with pytest.raises(FormError, match=r"options\.locale"):
        research_request(form)
    assert form.question == "Who?"
    assert form.options["locale"] == "not a locale"
    assert form.options["report_style"] == "news"


def test_empty_question_is_refused_naming_the_field() -> None:
    with pytest.raises(FormError, match=r"^question: "):
        research_request(ask_form({"question": "   "}))


def test_accept_ignores_edited_steps() -> None:
    review = plan_review({"action": "accept", "steps-0-title": "Changed"})
    assert review.action == "accept"
    assert review.steps is None


def test_edit_keeps_titled_steps_in_order_and_drops_removed_and_blank_rows() -> None:
    review = plan_review(
        {
            "action": "edit",
            "steps-1-title": "Second",
            "steps-1-step_type": "analysis",
            "steps-0-title": "First",
            "steps-0-description": "Find the author.",
            "steps-0-need_search": "on",
            "steps-2-title": "Removed",
            "steps-2-remove": "on",
            "steps-3-title": "  ",
        }
    )
    assert review.action == "edit"
    assert [(s.title, s.step_type, s.need_search) for s in review.steps or []] == [
        ("First", "research", True),
        ("Second", "analysis", False),
    ]
    assert review.steps is not None and review.steps[0].description == "Find the author."


def test_edit_without_any_step_is_refused() -> None:
    with pytest.raises(FormError, match="at least one step"):
        plan_review({"action": "edit", "steps-0-title": "Gone", "steps-0-remove": "on"})


def test_edit_with_an_unknown_step_kind_is_refused_naming_the_field() -> None:
    with pytest.raises(FormError, match="step_type"):
        plan_review({"action": "edit", "steps-0-title": "X", "steps-0-step_type": "magic"})
