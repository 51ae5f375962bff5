"""Tool output in the live timeline: a sandbox run's program, output and figures, as events and
on the job page."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from playwright.sync_api import BrowserContext, expect

from agents.events import TOOL_OUTPUT_CHARS, ToolResult
from agents.nodes.coder import code_run, run_result
from agents.state import CodeRun, Figure
from agents.tools.sandbox import SandboxLimits, run_python, sandbox_unavailable_reason
from agents.tools.sandbox.figures import PNG_MAGIC
from app.jobs.models import JobStatus
from tests.app.web.conftest import WebServer, open_tab

# Writes a real 2x2 PNG without matplotlib, so the test needs nothing but the sandbox.
PROGRAM = """
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
rows = b"".join(b"\\x00" + b"\\xff\\x00\\x00" * 2 for _ in range(2))
png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
open("red.png", "wb").write(png)
print("total", 6 * 7)
print("careful", file=sys.stderr)
"""


async def test_coder_tool_result_carries_the_program_its_output_and_figures() -> None:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.fail(f"the sandbox must work here: {reason}")
    run = code_run(PROGRAM, await run_python(PROGRAM, SandboxLimits(wall_seconds=20)))
    event = run_result(2, run)
    assert event.tool == "python" and event.index == 2
    assert event.code == PROGRAM
    assert event.stdout == "total 42\n"
    assert event.stderr == "careful\n"
    assert [(f.name, f.png_base64) for f in event.figures] == [("red.png", red_square_png())]
    assert "printed: total 42" in event.summary


def test_long_tool_output_is_capped_and_marked() -> None:
    event = ToolResult(index=0, tool="python", summary="ran", stdout="x" * 10_000)
    assert event.stdout is not None and len(event.stdout) == TOOL_OUTPUT_CHARS
    assert event.stdout.endswith("… (truncated)")
    old = ToolResult.model_validate({"index": 0, "tool": "search", "summary": "Found 3."})
    assert (old.code, old.stdout, old.stderr, old.figures) == (None, None, None, [])


def red_square_png() -> str:
    """A real 2x2 red PNG, base64: what the program above draws."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    png = PNG_MAGIC + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
    return base64.b64encode(png + chunk(b"IEND", b"")).decode("ascii")


@pytest.mark.engine
def test_job_timeline_shows_code_output_and_figures(
    web_server: WebServer, context: BrowserContext
) -> None:
    run = CodeRun(
        code=PROGRAM,
        stdout="total 42\n",
        stderr="careful\n",
        exit_code=0,
        ok=True,
        figures=[Figure(name="red.png", png_base64=red_square_png())],
    )
    store = web_server.store
    job = store.create("How much is six times seven?", {})
    step = {"iteration": 1, "index": 0, "title": "Multiply", "step_type": "processing"}
    for kind, data in [
        ("step_started", step),
        ("tool_result", run_result(0, run).model_dump(mode="json", exclude={"kind"})),
        ("tool_result", {"index": 0, "tool": "search", "summary": "Found 2 passages."}),
        ("step_done", {**step, "notes": "It is 42.", "error": None}),
        ("status", {"status": "done"}),
        ("done", {"llm_calls": 1, "wall_s": 2.0}),
    ]:
        store.append_event(job.id, kind, data)
    store.update(job.id, status=JobStatus.DONE, report="# Six times seven\n\n42.\n")

    tab = open_tab(context)
    page = tab.page
    page.goto(f"{web_server.url}/jobs/{job.id}")
    page.wait_for_function("() => document.querySelector('#job').dataset.eventsSeen === '6'")
    python, search = page.locator("#timeline .ev-tool").all()
    expect(python.locator("pre.code > code")).to_have_text(PROGRAM)
    expect(python.locator("pre.stdout")).to_have_text("total 42\n")
    expect(python.locator("pre.stderr")).to_have_text("careful\n")
    figure = python.locator("img.figure")
    expect(figure).to_have_attribute("alt", "red.png")
    assert figure.evaluate("img => img.complete && img.naturalWidth") == 2
    assert figure.get_attribute("src").startswith("data:image/png;base64,")
    expect(search).to_have_text("Search Found 2 passages.")
    assert search.locator("pre").count() == 0
    assert tab.console_errors == []
    tab.screenshot("12-timeline-tool-output")
