"""Evaluation: measure the research pipeline against benchmarks with known answers."""
