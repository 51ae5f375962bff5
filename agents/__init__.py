"""Agents: the LangGraph research graph, its roles and its tools."""
