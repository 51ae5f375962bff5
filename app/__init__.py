"""App: the CLI, the REST API, the web UI and durable jobs."""
