"""Fawn as an MCP server (`fawn mcp serve`): research, corpus search and reports, for agents."""
