"""Benchmarks, comparisons and the PyTorch twin: programs that measure minillm, run with python -m."""
