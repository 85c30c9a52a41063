"""`python -m bigend`: the same entry point as the `bigend` console script."""

from bigend.cli import main

main()
