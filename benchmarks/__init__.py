"""Benchmark harness for xpnet (``python benchmarks/run.py``); see docs/performance.md."""
