"""`shardwatch export-flagged`: a remove-list of the rows a rule flags, as parquet.

The export is wired by the pipeline (`shardwatch.pipeline.export`: the download policy of
the configured sources); this module parses, shows progress and maps the result.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt, DatasetOpt, ProgressOpt
from shardwatch.cli.outcomes import Failed, Outcome, command
from shardwatch.cli.printing import stderr_console
from shardwatch.cli.store_access import db_error, no_results_yet, require_store_file, store_engine
from shardwatch.core.names import shown

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer()


def _export_help() -> str:
    from shardwatch.export.rule_names import BLOCKLIST_RULE_HELP, RULES, TERM_RULE_HELP

    rules = "\n\n".join(f"  {name}: {text}" for name, text in RULES.items())
    return (
        "Write a remove-list: one parquet row per row of the dataset that RULE flags.\n\n"
        "This export holds URLs: the url column is each listed row's URL, and id its id "
        "(with blocklist:N, the URLs of rows on a published remove-list). Keep the file as "
        "private as the list itself; scan, report, alerts and Data Docs give counts only.\n\n"
        "Columns: shard (URI), row (within the shard, from 0), id (the profile's id column "
        "as a string; null without one), url, url_raw (the exact bytes, only where not valid "
        "UTF-8), reasons (every rule flagging the row, not only RULE) and, with --with-text "
        "only, text and text_raw. Captions are untrusted: they are never written unless asked "
        "for, and neither captions nor URLs are ever printed.\n\n"
        "The shards are the report's (the latest done version of every shard); each is read "
        "with the profile and lexicon it was scanned with, after its sha256 is checked against "
        "the stored one, so each rule's row count equals the report's figure named after =. "
        "Local files are read in place; http(s) shards are downloaded (from the hosts of the "
        "configured sources) to a temporary folder in the download cache, then deleted.\n\n"
        f"Rules:\n\n{rules}\n\n  term:T: {TERM_RULE_HELP}\n\n"
        f"  blocklist:N: {BLOCKLIST_RULE_HELP}\n\n"
        "A blocklist:N export applies list N as configured now, to every shard: a shard "
        "checked at ingest against another version of the list (it was replaced since), or "
        "never checked against it, is still exported by the current version, and is named in "
        "a note with the counts in the summary line (its rows may then differ from the "
        "report's blocklists.N.rows; re-ingest it with --force to store the current "
        "version's counts). Such notes do not change the exit code.\n\n"
        "Exit 0 when every shard was read; 3 if a shard was skipped (missing, changed since "
        "ingest, unreadable, download refused): the other shards' rows are still written "
        "and every skipped shard is listed; 2 for an unknown rule, term or blocklist, an "
        "unusable list, an unknown dataset, or a rule no shard can evaluate (no file is "
        "written then)."
    )


class _ExportBar:
    """The export's progress on stderr: rows of the stored total, and the current shard."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task = bar.add_task("exporting", total=0)
        self.shards = 0

    def start(self, shards: int, rows: int) -> None:
        self.shards = shards
        self.bar.update(self.task, total=rows)

    def shard(self, index: int, uri: str) -> None:
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        self.bar.update(self.task, description=f"shard {index + 1}/{self.shards} {name}")

    def advance(self, rows: int) -> None:
        self.bar.advance(self.task, rows)


@command(app, "export-flagged", help=_export_help())
def export_flagged(
    rule: Annotated[
        str, typer.Option("--rule", help="The rule selecting the rows (see Rules above).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="The parquet file to write (replaced atomically).", dir_okay=False
        ),
    ],
    dataset: DatasetOpt = None,
    with_text: Annotated[
        bool,
        typer.Option("--with-text", help="Also write each row's caption (untrusted text)."),
    ] = False,
    progress: ProgressOpt = None,
    config: ConfigOpt = None,
) -> Outcome:

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from shardwatch.export.flagged import ExportError, ExportRequest
    from shardwatch.export.rule_names import UnknownRule, parse_rule
    from shardwatch.pipeline.export import export_flagged as run_export
    from shardwatch.store.database import current
    from shardwatch.store.errors import ReportError, StoreFailed

    try:
        parse_rule(rule)
    except UnknownRule as exc:
        raise Failed(Outcome.BAD_USAGE, str(exc)) from None
    settings = options.load(config, dataset=dataset)
    url = require_store_file(settings)
    engine = store_engine(settings)
    request = ExportRequest(settings.dataset, rule, out, with_text, settings.batch_size)
    show_progress = sys.stderr.isatty() if progress is None else progress
    try:
        if current(engine) is None:
            raise no_results_yet(url)
        with Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} rows"),
            TimeRemainingColumn(),
            console=stderr_console(),
            disable=not show_progress,
            transient=True,
        ) as bar:
            summary = run_export(engine, settings, request, progress=_ExportBar(bar))
    except (UnknownRule, ExportError, ReportError) as exc:
        raise Failed(Outcome.BAD_USAGE, str(exc)) from None
    except StoreFailed as exc:
        raise db_error(exc, settings) from None
    except OSError as exc:
        raise Failed(Outcome.RUN_FAILED, f"cannot write {out}: {exc}") from None
    for note in summary.unavailable:
        line = f"note: rule {summary.rule} unavailable in {note.uri}: {note.reason}"
        typer.echo(shown(line), err=True)
    if summary.blocklist is not None:
        for line in summary.blocklist.notes():
            typer.echo(shown(f"note: {line}"), err=True)
    for note in summary.skipped:
        typer.echo(shown(f"error: skipped {note.uri}: {note.reason}"), err=True)
    typer.echo(shown(summary.line()))
    return Outcome.INPUT_FAILED if summary.skipped else Outcome.OK
