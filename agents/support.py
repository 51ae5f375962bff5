"""Faithful citations: every sentence that cites `[n]` is checked against source n's passage.

Two methods, chosen by what the served model can do (its `entailment` ability in
serving/models.yaml):

- **Entailment by the model** (`ModelSupport`): the model reads the passage and the sentence and
  answers, as JSON, whether the passage states what the sentence says. A reply that does not
  parse falls back to the lexical check for that pair.
- **Lexical floor** (`lexical_support`), for models too small to judge entailment (SmolLM2-135M):
  the passage must hold at least MIN_SUPPORT of the sentence's content words, and the passage
  sentence that shares most of them must agree in polarity (a sentence that says "not" cited by
  one that does not, or the reverse, is a contradiction, not support).

`verify` applies a check to a text: a citation whose passage does not support its sentence is
removed; a sentence left with no citation, or that never had one, is dropped (sections) or
kept uncited (the answer). `audit` counts the cited sentences of a finished report and how many
pass the lexical check: the share the report's metadata and `fawn eval` give.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from agents.citations import cited_ids, remap_citations
from agents.llm import ModelCalls
from agents.markdown import unescape
from agents.prompts import render_messages
from agents.structured import generate_structured
from agents.text import overlap, sentences, truncate
from serving.budget import CallClass

log = logging.getLogger(__name__)
# Share of a sentence's content words its passage must hold.
MIN_SUPPORT = 0.5
ENTAILMENT_MAX_TOKENS = 16
ENTAILMENT_PASSAGE_CHARS = 2000
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|none|nobody|nothing)\b|n['’]t\b", re.I)
_FENCED = re.compile(r"^(```+|~~~+)[^\n]*\n.*?^\1\s*$", re.MULTILINE | re.DOTALL)


class SupportCheck(Protocol):
    """Whether `passage` supports `claim`."""

    async def __call__(self, claim: str, passage: str) -> bool:
        """True when the passage states what the claim says."""
        ...


def negated(text: str) -> bool:
    """Whether `text` says "not" (or "never", "n't", ...)."""
    return bool(_NEGATION.search(text))


def lexical_support(claim: str, passage: str) -> bool:
    """The lexical floor: enough of the claim's words in the passage, with the same polarity."""
    claim = remap_citations(claim, {})
    if overlap(claim, passage) < MIN_SUPPORT:
        return False
    closest = max(sentences(passage) or [passage], key=lambda sentence: overlap(claim, sentence))
    return negated(claim) == negated(closest)


class LexicalSupport:
    """`lexical_support` as a SupportCheck."""

    async def __call__(self, claim: str, passage: str) -> bool:
        """True when the passage passes the lexical floor for the claim."""
        return lexical_support(claim, passage)


class Entailment(BaseModel):
    """The model's verdict on one sentence and one passage."""

    model_config = ConfigDict(extra="forbid")

    supported: bool = Field(description="True only if the passage states what the sentence says.")


@dataclass
class ModelSupport:
    """Entailment judged by the model, one short JSON call per sentence and passage."""

    calls: ModelCalls

    async def __call__(self, claim: str, passage: str) -> bool:
        """The model's verdict; the lexical floor when its reply cannot be read."""
        bare = remap_citations(claim, {})
        judged = await generate_structured(
            self.calls,
            CallClass.REPORT,
            render_messages(
                "entailment", sentence=bare, passage=truncate(passage, ENTAILMENT_PASSAGE_CHARS)
            ),
            Entailment,
            max_tokens=ENTAILMENT_MAX_TOKENS,
            fallback=lambda _reason: Entailment(supported=lexical_support(bare, passage)),
        )
        return judged.value.supported


@dataclass(frozen=True)
class Verified:
    """A text after its citations were checked, and what the check did."""

    text: str
    checked: int
    removed: int


async def verify(
    text: str, passages: Mapping[int, str], check: SupportCheck, *, drop_unsupported: bool
) -> Verified:
    """`text` keeping only the citations whose passage supports their sentence.

    With `drop_unsupported` every sentence needs a supported citation (notes, sections: a claim
    with none goes); without it a sentence left with none is kept uncited (the answer).
    """
    kept: list[str] = []
    checked = removed = 0
    for sentence in sentences(text):
        ids = cited_ids(sentence)
        if not ids:
            if not drop_unsupported:
                kept.append(sentence)
            continue
        checked += 1
        bare = remap_citations(sentence, {})
        good = [n for n in ids if n in passages and await check(bare, passages[n])]
        if good:
            kept.append(remap_citations(sentence, {n: n for n in good}))
            continue
        removed += 1
        if not drop_unsupported:
            kept.append(bare)
    return Verified(" ".join(kept), checked, removed)


class CitationSupport(BaseModel):
    """How well a report's citations hold up: its cited sentences, and how many pass the
    lexical check against the passages they cite."""

    cited_sentences: int = 0
    supported: int = 0
    removed: int = Field(
        default=0, description="Sentences of the Answer whose citations the check took out."
    )
    method: str = Field(
        default="lexical", description="How citations were checked: lexical or model entailment."
    )

    @property
    def share(self) -> float:
        """Supported cited sentences as a share of all cited sentences (1.0 when none cite)."""
        return self.supported / self.cited_sentences if self.cited_sentences else 1.0


def audit(report: str, passages: Mapping[int, str]) -> tuple[int, int]:
    """(cited sentences, supported ones) in a report's body, by the lexical check."""
    body = _FENCED.sub("", unescape(report).split("\n## Sources")[0])
    cited = supported = 0
    for line in body.splitlines():
        for sentence in sentences(line.lstrip("-# ").strip()):
            ids = cited_ids(sentence)
            if not ids:
                continue
            cited += 1
            supported += any(n in passages and lexical_support(sentence, passages[n]) for n in ids)
    return cited, supported
