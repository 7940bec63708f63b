"""`shardwatch docs`: rebuild the Data Docs site, and serve it on localhost if asked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt
from shardwatch.cli.outcomes import command
from shardwatch.cli.validation import validator

app = typer.Typer()


@command(app)
def docs(
    config: ConfigOpt = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Serve the site on localhost until Ctrl-C.")
    ] = False,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port for --serve.")] = 8765,
) -> None:
    """Rebuild the Data Docs site from the stored validation results and print its path.

    Results beyond validation.keep_results (newest kept) are pruned first. With --serve the
    site is served on 127.0.0.1 only.
    """
    settings = options.load(config)
    gx = validator(settings)
    pruned = gx.prune()
    index = gx.build_docs(clean=True)
    if pruned:
        typer.echo(f"pruned {pruned} old validation result(s)")
    typer.echo(f"Data Docs: {index}")
    if serve:
        _serve(gx.paths.docs, port)


def _serve(folder: Path, port: int) -> None:
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        bound = server.server_address[1]
        typer.echo(f"serving http://127.0.0.1:{bound}/index.html (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            typer.echo("stopped")
