"""The REST API: research jobs, their live events and reports, the corpus, health."""
