"""Portfolio runs: one goal carried across several projects (DESIGN 3.6).

A parent run in the portfolio database coordinates one child run per project; each child also lives,
under the same id, in its own project's database. The modules here keep the two in step (relay),
enforce order between projects (deps, gates) and hard limits across them (slots, budget).

This package is imported lazily by the CLI: importing it costs nothing until a portfolio command runs.
"""
