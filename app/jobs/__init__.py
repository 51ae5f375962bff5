"""Durable research jobs: the store, the runner, and the events they emit."""
