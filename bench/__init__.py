"""notifierd's benchmarks: `python -m bench` (or `make bench`) prints one table.

See `bench/__main__.py` for the scenarios and README.md ("Performance") for the figures.
"""
