"""HTML form fields ⇄ the API's request models, so plain form posts work without JavaScript."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from app.api.schemas import PlanReview, PlanStep, ResearchRequest
from app.jobs.models import JobOptions

# Checkboxes send nothing when unticked, so their absence means False.
ASK_CHECKBOXES = ("auto_accept_plan", "enable_coder", "podcast")
ASK_FIELDS = ("report_style", "report_mode", "locale", "provider", "max_step_num")
_STEP_FIELD = re.compile(r"^steps-(\d{1,2})-(title|description|step_type|need_search|remove)$")


class FormError(ValueError):
    """A form field is wrong; the message names the field and says why, like the API's 422."""


class AskForm(BaseModel):
    """What the ask form shows: the question and every option, as the user left them."""

    question: str = ""
    options: dict[str, Any]

    @classmethod
    def blank(cls) -> AskForm:
        """The form with the default options."""
        return cls(options=JobOptions().model_dump(mode="json"))


def ask_form(fields: Mapping[str, Any]) -> AskForm:
    """The posted ask form, kept as typed (to show it again if the job is refused)."""
    options = JobOptions().model_dump(mode="json")
    options.update({name: fields[name] for name in ASK_FIELDS if name in fields})
    options.update({name: name in fields for name in ASK_CHECKBOXES})
    return AskForm(question=str(fields.get("question", "")), options=options)


def research_request(form: AskForm) -> ResearchRequest:
    """The API request for a posted ask form; raises FormError naming the bad field."""
    try:
        return ResearchRequest(question=form.question.strip(), options=form.options)
    except ValidationError as exc:
        raise FormError(_describe(exc)) from exc


def plan_review(fields: Mapping[str, Any]) -> PlanReview:
    """The plan review a posted review form asks for; raises FormError naming the bad field.

    Steps arrive as `steps-<n>-<field>`; a step whose title is blank, or whose remove box is
    ticked, is left out, which is how the form deletes a step (and ignores its spare blank row).
    """
    rows: dict[int, dict[str, str]] = {}
    for name, value in fields.items():
        match = _STEP_FIELD.match(name)
        if match:
            rows.setdefault(int(match.group(1)), {})[match.group(2)] = str(value)
    action = str(fields.get("action", ""))
    try:
        if action != "edit":
            return PlanReview(action="accept")
        steps = [
            PlanStep(
                title=row.get("title", "").strip(),
                description=row.get("description", "").strip(),
                step_type=row.get("step_type", "research"),
                need_search="need_search" in row,
            )
            for _, row in sorted(rows.items())
            if row.get("title", "").strip() and "remove" not in row
        ]
        if not steps:
            raise FormError("steps: keep at least one step with a title to run an edited plan.")
        return PlanReview(action="edit", steps=steps)
    except ValidationError as exc:
        raise FormError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'form'}: {error['msg']}"
        for error in exc.errors()
    )
