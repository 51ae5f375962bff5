"""Fawn's error tree. Every error a user can meet is a `FawnError` whose message says how to fix it.

    FawnError
    ├── ConfigError              bad settings, unknown profile or model
    │   └── SpeechError          (agents) the text-to-speech backend is misconfigured
    ├── PlanDoesNotFit           the memory planner refuses a launch (carries the plan)
    ├── EngineError              the served model is unreachable, slow, or answered junk
    │   ├── EngineUnreachable    no answer at all (down, restarting, timing out): transient
    │   └── EngineStartError     the embedded engine did not come up
    ├── BudgetTimeout            an LLM call waited too long for a slot in the budget
    ├── Overloaded               memory pressure: new jobs are refused for now (HTTP 503)
    ├── ContextOverflow          (agents) a prompt's fixed part alone exceeds the context
    ├── SandboxError             (agents) model-written code could not be run safely
    ├── SearchError              (agents) a search provider or page reader failed
    └── PdfError                 (app) no PDF renderer, or it failed

Each lives next to the code that raises it (PlanDoesNotFit in serving/planner.py, Overloaded in
serving/pressure.py, ContextOverflow in agents/context.py, ...); serving never imports agents.

Third-party errors (openai, httpx, subprocess) are translated into these at the boundary where
they are raised, so callers above only ever catch `FawnError`.
"""

from __future__ import annotations


class FawnError(Exception):
    """Base class for every error Fawn reports to a user."""


class ConfigError(FawnError):
    """Settings, a profile or a model name are wrong; the message names the fix."""


class EngineError(FawnError):
    """The LLM engine is unreachable, too slow, or returned something unusable."""


class EngineUnreachable(EngineError):
    """The engine did not answer (refused, timed out, or failed with a 5xx after retries).

    Unlike a refused request, this may pass: a running job waits for the engine to come back.
    """


class EngineStartError(EngineError):
    """The embedded vLLM engine failed to start or to become healthy in time."""


class BudgetTimeout(FawnError):
    """An LLM call waited longer than its timeout for a slot in the budget."""
