"""`python -m mapl_cli` runs the `mapl` command line."""

from mapl_cli.cli import main

main()
