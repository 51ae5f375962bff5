"""Tools the research agents use: search providers (the corpus, the web, MCP servers), the page
reader, the Python sandbox."""
