"""Benchmarks: scripts printing figures and ratios measured in the same run (results in BENCHMARKS.md)."""
