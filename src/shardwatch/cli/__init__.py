"""The command line: a Typer module per command group, combined in `root` (its `app` and
`main`); shared options in `options`, printing in `printing`, exit codes from `outcomes`."""
