"""Societies: YAML config, the role graph, typed events, the round scheduler and the determinism checker."""
