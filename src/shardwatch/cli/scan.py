"""`shardwatch scan`: exact audit metrics of shard files, printed (nothing is stored)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt, LexiconOpt, ProfileOpt, ProgressOpt
from shardwatch.cli.outcomes import Outcome, command
from shardwatch.cli.printing import stderr_console, stdout_console
from shardwatch.core.names import json_shown, shown

# The engine (pyarrow, polars, numpy) and Rich load only when a scan runs, not for --help.
if TYPE_CHECKING:
    from shardwatch.core.metrics import ShardMetrics
    from shardwatch.settings.config import Settings

app = typer.Typer()


def _count_rows(paths: list[Path], settings: Settings) -> int | None:
    """The shards' total rows for the progress bar; None if a CSV/TSV shard's is unknown."""
    from shardwatch.scan.reader import ShardReader, ShardReadError

    total = 0
    for path in paths:
        try:
            with ShardReader(path, settings.dataset_profile()) as reader:
                if reader.num_rows is None:
                    return None  # a CSV/TSV shard: its rows are known only once it is read
                total += reader.num_rows
        except ShardReadError:
            continue  # reported when the shard is scanned
    return total


@command(app)
def scan(
    shards: Annotated[
        list[Path],
        typer.Argument(
            help="Shard files (parquet, or .csv/.tsv/.csv.gz/.tsv.gz), or directories of "
            "*.parquet files, to scan."
        ),
    ],
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    lexicon: LexiconOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")
    ] = False,
    progress: ProgressOpt = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Threads (default: 2).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Rows per batch.")
    ] = None,
) -> Outcome:
    """Compute exact audit metrics for SHARDS and their total (Table 1 of Birhane et al.).

    Metrics a shard's columns cannot support are listed as unavailable, not errors.
    An unreadable shard is reported on stderr and the rest are still scanned (exit 3).
    Every row is matched against the configured remove-lists ([blocklists.<name>]): counts
    only, never a matched URL, id or domain. A list that cannot be used is a configuration
    error naming it (exit 2) and nothing is scanned.
    """
    import pyarrow as pa
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from shardwatch.core.metrics import ShardMetrics
    from shardwatch.pipeline.blocklists import compiled_blocklists
    from shardwatch.present.render import print_summary
    from shardwatch.scan.engine import CompiledLexicon, scan_shard
    from shardwatch.scan.reader import ShardReadError

    settings = options.load(
        config, profile=profile, lexicon=lexicon, workers=workers, batch_size=batch_size
    )
    prof = settings.dataset_profile()
    compiled = CompiledLexicon(settings.active_lexicon())
    shards = options.expand(shards)
    options.check_profile_fit(shards, settings)
    lists = compiled_blocklists(settings)  # a bad list: exit 2 and nothing is scanned
    show_progress = sys.stderr.isatty() if progress is None else progress

    results: list[tuple[str, ShardMetrics]] = []
    errors: list[dict[str, str]] = []
    with Progress(
        TextColumn("{task.description}", markup=False),  # it names files
        BarColumn(),
        TextColumn("{task.completed:,}{task.fields[of]} rows"),
        TimeRemainingColumn(),
        console=stderr_console(),
        disable=not show_progress,
        transient=True,
    ) as bar:
        known = _count_rows(shards, settings) if show_progress else 0
        task = bar.add_task("scanning", total=known, of="" if known is None else f"/{known:,}")
        for path in shards:
            uri = str(path)
            bar.update(task, description=f"scanning {path.name}")
            try:
                metrics = scan_shard(
                    path,
                    prof,
                    compiled,
                    batch_size=settings.batch_size,
                    workers=settings.workers,
                    progress=lambda n: bar.advance(task, n),
                    domain_top_k=settings.domain_top_k,
                    blocklists=lists,
                )
            except ShardReadError as exc:
                errors.append({"uri": uri, "error": exc.reason})
                typer.echo(shown(f"error: {exc}"), err=True)
                continue
            except (pa.ArrowException, ValueError, UnicodeDecodeError) as exc:
                reason = f"unreadable data ({type(exc).__name__}: {exc})"
                errors.append({"uri": uri, "error": reason})
                typer.echo(shown(f"error: {uri}: {reason}"), err=True)
                continue
            results.append((uri, metrics))

    total = ShardMetrics.merge_all(m for _, m in results)
    if as_json:
        doc: dict[str, Any] = {
            "profile": prof.name,
            "lexicon": compiled.lexicon.name,
            "shards": [{"uri": uri, **m.to_dict()} for uri, m in results],
            "total": total.to_dict(),
        }
        if errors:
            doc["errors"] = errors
        sys.stdout.write(json_shown(json.dumps(doc, ensure_ascii=False)) + "\n")
    elif results:
        print_summary(stdout_console(), results, total, prof.nsfw_labels, compiled.lexicon.name)
    return Outcome.INPUT_FAILED if errors else Outcome.OK
