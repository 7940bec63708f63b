"""`python -m shardwatch` runs the CLI."""

from shardwatch.cli.root import main

main()
