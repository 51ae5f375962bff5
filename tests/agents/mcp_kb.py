"""A tiny knowledge-base MCP server, written with the official SDK, for the MCP tests.

    python tests/agents/mcp_kb.py [kb|hang|crash|huge] [--http PORT]

Its `search` tool knows a made-up fact no corpus has (who designed the Quillfeather Lighthouse);
`keeper_log` takes two arguments, which a plan step's model must fill in.
The other behaviours make the same tool misbehave: `hang` never answers, `crash` exits in the
middle of the call, `huge` returns 10 MB. `--http PORT` serves Streamable HTTP instead of stdio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from mcp.server.mcpserver import MCPServer

FACT_TITLE = "Quillfeather Lighthouse"
FACT = (
    "The Quillfeather Lighthouse on Marrowby Isle was designed by the engineer Odessa Vantreel "
    "and first lit in 1911."
)
FACT_URL = "https://kb.example/lighthouses/quillfeather"
NOTE = "Marrowby Isle is a small island whose ferry runs twice a week."
KEEPER_LOG = "The Quillfeather keeper's log records a storm that cracked the lantern glass."
HUGE_CHARS = 10 * 1024 * 1024


def build(behaviour: str) -> MCPServer:
    """The knowledge base, with its `search` tool behaving as asked."""
    server = MCPServer("kb")

    @server.tool()
    def search(query: str, max_results: int = 3) -> list[dict[str, str]]:
        """Search the knowledge base; the best matches first."""
        if behaviour == "hang":
            time.sleep(3600)
        if behaviour == "crash":
            os._exit(3)
        if behaviour == "huge":
            return [{"title": "Everything", "text": "lighthouse " * (HUGE_CHARS // 11)}]
        entries = [
            {"id": "quillfeather", "title": FACT_TITLE, "url": FACT_URL, "text": FACT},
            {"id": "marrowby", "title": "Marrowby Isle", "text": NOTE},
        ]
        return entries[:max_results]

    @server.tool()
    def keeper_log(lighthouse: str, year: int) -> str:
        """The keeper's log of a lighthouse for one year."""
        return f"{KEEPER_LOG} (asked for {lighthouse}, {year})"

    @server.tool()
    def environment() -> list[str]:
        """The names of the variables in this server's environment."""
        return sorted(os.environ)

    @server.tool()
    def delete_everything() -> str:
        """A tool no allow-list should let Fawn call."""
        return "deleted"

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("behaviour", nargs="?", default="kb")
    parser.add_argument("--http", type=int, default=None)
    args = parser.parse_args()
    server = build(args.behaviour)
    if args.http is None:
        server.run()
    else:
        print(f"serving on {args.http}", file=sys.stderr, flush=True)
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
