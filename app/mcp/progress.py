"""A job's event log entries as one-line progress messages for MCP clients."""

from __future__ import annotations

from app.jobs.models import JobEvent


def describe_event(event: JobEvent) -> str | None:
    """The event in words, or None for those too fine-grained to send (report chunks)."""
    data = event.data
    match event.type:
        case "status":
            if "status" in data:
                cause = f": {data['error']}" if data.get("error") else ""
                return f"Job {data['status']}{cause}"
            return str(data.get("message", ""))
        case "plan":
            steps = (data.get("plan") or {}).get("steps") or []
            return f"Plan made: {len(steps)} step(s)"
        case "step_started":
            return f"Step {data.get('index', 0) + 1}: {data.get('title', '')}"
        case "source_added":
            source = data.get("source") or {}
            return f"Source [{source.get('id')}] {source.get('title', '')}"
        case "tool_result":
            return str(data.get("summary", ""))
        case "tool_call":
            outcome = data.get("error") or data.get("summary")
            return f"MCP {data.get('server')}/{data.get('tool')}: {outcome}"
        case "step_done":
            return f"Step {data.get('index', 0) + 1} done"
        case "error":
            return f"Problem: {data.get('message', '')}"
        case "done":
            return "Report written"
    return None
