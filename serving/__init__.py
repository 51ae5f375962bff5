"""Serving: vLLM profiles, the memory planner, launcher, metrics and the LLM budget gate."""
