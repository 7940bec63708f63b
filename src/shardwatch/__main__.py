"""`python -m shardwatch` runs the CLI."""

from shardwatch.cli import main

main()
