"""`python -m nnexp` runs the command line."""

from nnexp.cli import main

main()
