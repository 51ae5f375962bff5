"""Prompts are Jinja2 templates in `templates/prompts/`, one file per role.

Each template defines a `system` block and a `user` block; `render_messages` turns them into a
chat prompt. Undefined variables are errors, so a renamed field cannot silently empty a prompt.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from serving.tokens import Message

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "templates" / "prompts"
ROLES = ("system", "user")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render_messages(name: str, **variables: Any) -> list[Message]:
    """The chat messages of template `<name>.j2` rendered with `variables`."""
    template = _environment().get_template(f"{name}.j2")
    context = template.new_context(variables)
    messages: list[Message] = []
    for role in ROLES:
        block = template.blocks.get(role)
        if block is not None:
            content = "".join(block(context)).strip()
            if content:
                messages.append({"role": role, "content": content})
    return messages
