"""Thin applications over the public API: the command line, the evaluations, the demo."""
