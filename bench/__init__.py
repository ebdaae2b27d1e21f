"""notifierd's benchmarks: `python -m bench` (or `make bench`) prints one table.

How to run them: bench/README.md; the figures: docs/performance.md.
"""
