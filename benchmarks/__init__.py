"""Benchmarks, one module each: `.venv/bin/python -m benchmarks.<name>` from the repository root."""
