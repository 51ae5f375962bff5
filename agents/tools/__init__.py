"""Tools the research agents use: search providers, the page reader, the Python sandbox."""
