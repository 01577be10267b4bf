"""Benchmarks that print tables: `python -m densenet_viz.bench PART`."""
