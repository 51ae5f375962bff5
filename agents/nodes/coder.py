"""Coder: analysis and processing steps as Python, run in the bubblewrap sandbox.

The model writes a program from the step and the earlier findings; the sandbox runs it; stdout,
stderr and PNG figures become the step's result (the report embeds figures as data: URIs). A
failed program gets one fix attempt with its error. When code cannot run (no bubblewrap, or the
coder switched off) the step is reasoned over the sources instead, and the report says so.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from langgraph.runtime import Runtime as GraphRuntime

from agents.citations import remap_citations
from agents.errors import SandboxError
from agents.events import Status, StepStarted, ToolResult
from agents.llm import ModelCalls
from agents.nodes import emit
from agents.nodes.researcher import step_fields, step_result, write_notes
from agents.prompts import render_messages
from agents.runtime import CodeRunner, Runtime
from agents.sources import Source
from agents.state import CodeRun, Figure, ResearchState, StepResult, StepTask
from agents.structured import generate_text
from agents.text import truncate
from agents.tools.sandbox import SandboxResult
from serving.budget import CallClass

CODE_MAX_TOKENS = 512
OUTPUT_CHARS = 1500
ERROR_CHARS = 600
FINDING_CHARS = 400
_FENCED = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str:
    """The program in a model reply: its first fenced block, else the whole reply."""
    match = _FENCED.search(text)
    return (match.group(1) if match else text).strip()


def earlier_findings(task: StepTask) -> list[str]:
    """Notes of the steps before this one, without their citation numbers."""
    return [
        f"{r.title}: {truncate(remap_citations(r.notes, {}), FINDING_CHARS)}" for r in task.earlier
    ]


def cited_first(task: StepTask) -> list[Source]:
    """Registry sources, those the earlier steps cited first."""
    cited = {url for r in task.earlier for url in r.refs.urls}
    return sorted(task.sources, key=lambda s: (s.url not in cited, s.id))


def code_run(code: str, outcome: SandboxResult) -> CodeRun:
    """A sandbox outcome as JSON-friendly state."""
    return CodeRun(
        code=code,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        exit_code=outcome.exit_code,
        ok=outcome.ok,
        figures=[
            Figure(name=f.name, png_base64=base64.b64encode(f.png).decode("ascii"))
            for f in outcome.figures
        ],
    )


def describe_run(run: CodeRun) -> str:
    """The step's notes for a program run: what it printed, or how it failed."""
    if run.ok:
        printed = truncate(run.stdout.strip(), OUTPUT_CHARS) or "(nothing)"
        figures = f" It drew {len(run.figures)} figure(s)." if run.figures else ""
        return f"The program printed: {printed}{figures}"
    return f"The program failed: {truncate(run.stderr.strip()[-ERROR_CHARS:], ERROR_CHARS)}"


def run_result(index: int, run: CodeRun) -> ToolResult:
    """The timeline event of a program run: its summary, program, output and figures."""
    return ToolResult(
        index=index,
        tool="python",
        summary=describe_run(run),
        code=run.code or None,
        stdout=run.stdout or None,
        stderr=run.stderr or None,
        figures=run.figures,
    )


async def write_and_run(
    calls: ModelCalls,
    runtime: Runtime,
    run_code: CodeRunner,
    task: StepTask,
    findings: Sequence[str],
) -> CodeRun:
    """Have the model write the program and run it; one fix attempt if it fails."""
    error = ""
    run = CodeRun(
        code="", stdout="", stderr="The model wrote no program.", exit_code=None, ok=False
    )
    for _attempt in (1, 2):
        fitted = await runtime.context_budget.fit(
            lambda kept, error=error: render_messages(
                "coder",
                question=task.question,
                step=f"{task.step.title}. {task.step.description}",
                findings=kept,
                error=error,
            ),
            findings,
            CODE_MAX_TOKENS,
        )
        reply = await generate_text(
            calls, CallClass.RESEARCH, fitted.messages, max_tokens=CODE_MAX_TOKENS
        )
        code = extract_code(reply)
        if not code:
            continue
        try:
            run = code_run(code, await run_code(code))
        except SandboxError as exc:
            return CodeRun(code=code, stdout="", stderr=str(exc), exit_code=None, ok=False)
        if run.ok or run.exit_code is None:
            break
        error = truncate(run.stderr.strip()[-ERROR_CHARS:], ERROR_CHARS)
    return run


async def coder(task: StepTask, runtime: GraphRuntime[Runtime]) -> ResearchState:
    """Run an analysis or processing step: as code when possible, else as reasoning."""
    tools = runtime.context
    emit(runtime, StepStarted(**step_fields(task), step_type=task.step.step_type))
    calls = ModelCalls(tools)
    findings = earlier_findings(task)
    off_reason = tools.coder_off_reason if task.options.enable_coder else "it is switched off"
    if tools.run_code is None or not task.options.enable_coder:
        notice = f"Code execution was off ({off_reason}); analysis steps reasoned over the sources."
        emit(runtime, Status(message=notice))
        notes, shown, reason = await write_notes(
            calls, tools, "analyst", task, cited_first(task), findings
        )
        result = step_result(task, notes, shown, [reason] if reason else [])
        update: ResearchState = {"notices": [notice]}
    else:
        run = await write_and_run(calls, tools, tools.run_code, task, findings)
        emit(runtime, run_result(task.index, run))
        result = StepResult(
            **step_fields(task),
            step_type=task.step.step_type,
            notes=describe_run(run),
            code=run,
            error=None if run.ok else "the program failed",
        )
        update = {}
    return {**update, "step_results": [result], "usage": calls.usage}
