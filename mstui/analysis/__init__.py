"""Stored rounds into numbers: load pools, fit scopes, choose fits, evaluate, report and plot.

The layer between the store (SQLite) and the core (pure math): `pools` loads labelled rounds and
fits scopes, `report` runs the offline evaluation, `text` and `plot` render it.
"""
