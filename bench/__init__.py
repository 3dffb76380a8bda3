"""Benchmarks: throughput, memory and lag of every stage, against Azurite and the simulators.

`python -m bench [--only NAME[,NAME]] [--quick]` runs them, prints a table and writes
bench-results/results.json. One module per measurement: parse, split, memory, graph_import,
lag. Results and method: docs/BENCHMARKS.md.
"""
