"""What the commands print: a monitor pass, an ingest outcome, the report's views (Table 1,
drift, domains) and the JSON forms of ingest and relay results. Nothing here decides an exit
code."""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import asdict
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from shardwatch.core.names import json_shown, shown

# Rich, the presenters, the settings and the store stack load only in the commands that
# print with them: `shardwatch --help` and `scan --help` import none of them.
if TYPE_CHECKING:
    from rich.console import Console

    from shardwatch.alerting.relay import RelayResult
    from shardwatch.pipeline.ingest import IngestResult
    from shardwatch.settings.config import Settings
    from shardwatch.store.report_model import DatasetReport


@functools.cache
def stderr_console() -> Console:
    """Rich's console on stderr (progress bars, notes), made on first use: one per process."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


# A pipe or a file gets tables at their natural width: no column is squeezed, folded or cut
# by a long shard URI (tables do not expand, so nothing is padded to this width).
PIPE_WIDTH = 4096


def stdout_console() -> Console:
    """A console on stdout: the terminal's width, or unwrapped tables for a pipe."""
    from rich.console import Console

    return Console(
        highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH
    )


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    csv = "csv"
    paper = "paper"


def print_pass(summary: Any, settings: Settings) -> None:
    """A monitor pass: one line per shard, the source errors, the totals and the paths."""
    for o in summary.outcomes:
        detail = f" ({o.reason})" if o.reason else ""
        checks = f"; {o.checks_failed} check(s) failed" if o.checks_failed else ""
        if o.validation_error:
            checks = f"; {o.validation_error}"
        drift = f"; schema drift: {o.schema_drift}" if o.schema_drift else ""
        typer.echo(shown(f"{o.outcome:11} {o.uri}{detail}{drift}{checks}"))
    for error in summary.source_errors:
        typer.echo(f"error: {shown(error)}", err=True)
    typer.echo(shown(summary.line()))
    typer.echo(shown(summary.alerts))
    if summary.data_docs:
        typer.echo(f"Data Docs: {summary.data_docs}")
    from shardwatch.present.artifacts import report_path

    report = report_path(settings, summary.run_id)
    if report.is_file():
        typer.echo(f"Report: {report.resolve()}")


def print_outcome(result: IngestResult) -> None:
    """One ingested shard: its outcome, drift, and the checks that did not pass."""
    detail = f" ({result.reason})" if result.reason else ""
    version = f" v{result.version}" if result.version else ""
    bad = result.outcome in ("failed", "quarantined")
    typer.echo(shown(f"{result.outcome:8} {result.uri}{version}{detail}"), err=bad)
    if result.schema_drift:
        typer.echo(shown(f"         schema drift: {result.schema_drift.describe()}"))
    v = result.validation
    if v is not None:
        typer.echo(f"         validation ({v.suite}): {v.summary()}")
        for check in () if v.not_run else v.checks:
            if check.status != "passed" and not check.by_drift:
                typer.echo(shown(f"           {check.status.upper():7} {check.describe()}"))
        if v.drift_errored:
            typer.echo(f"           ERRORED {v.drift_errored} check(s) by the schema drift")
        for page in v.pages:
            typer.echo(f"         page: {page}")


def result_json(result: IngestResult) -> dict[str, Any]:
    out = asdict(result)
    drift = result.schema_drift
    out["schema_drift"] = drift.to_dict() if drift else None
    v = result.validation
    out["validation"] = None
    if v is not None:
        out["validation"] = {
            "suite": v.suite,
            "success": v.success,
            "not_run": v.not_run,
            "passed": v.count("passed"),
            "failed": v.count("failed"),
            "errored": v.count("errored"),
            "docs_page": v.docs_page,
            "pages": list(v.pages),
            "checks": [asdict(c) for c in v.checks],
        }
    return out


def relay_json(result: RelayResult) -> dict[str, Any]:
    return {
        "sent": result.sent,
        "failed": result.failed,
        "dead": result.dead,
        "deferred": result.deferred,
        "reminded": result.reminded,
        "channels": [asdict(c) for c in result.channels],
    }


def print_drift(dataset: str, rows: list[tuple[str, Any]], as_json: bool) -> None:
    from shardwatch.core.stats import MIN_DRIFT_ROWS

    if as_json:
        payload = [{"uri": uri, **asdict(d)} for uri, d in rows]
        sys.stdout.write(json.dumps({"dataset": dataset, "drift": payload}) + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    def test(t: Any, name: str, d: Any) -> str:
        if t is None:
            return "too few rows" if name in d.too_few_rows else "-"
        return f"{t.rate1:.2%} vs {t.rate2:.2%}, z {t.z:+.2f}"

    title = Text(shown(f"drift: each shard vs the rest of dataset {dataset}"))  # no markup
    table = Table(title=title, title_justify="left")
    for name in ("shard", "similarity PSI", "NSFW tag rate", "keyword-NSFW rate"):
        table.add_column(name, justify="left" if name == "shard" else "right")
    for uri, d in rows:
        psi = "-" if d.similarity_psi is None else f"{d.similarity_psi:.3f}"
        if "similarity" in d.too_few_rows:
            psi = "too few rows"
        table.add_row(Text(shown(uri)), psi, test(d.tag, "tag", d), test(d.keyword, "keyword", d))
    stdout_console().print(table)
    typer.echo(
        "PSI < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major; |z| > 3: a rate that "
        f"differs beyond chance; a test needs {MIN_DRIFT_ROWS} rows in the shard and in the "
        "rest ('too few rows' below)"
    )


def print_domains(found: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json_shown(json.dumps(found.to_dict(), ensure_ascii=False)) + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    order = {"keyword": "keyword-NSFW rows", "tag": "tag-NSFW rows", "rows": "rows"}[found.by]
    if not found.shards:
        typer.echo(shown(f"dataset {found.dataset}: no current shard has a URL column: no domains"))
        return
    title = (
        f"domains of dataset {found.dataset} by {order}: {found.shards:,} shards, "
        f"{found.rows:,} rows, {found.keyword_nsfw:,} keyword-NSFW"
        + (f", {found.tag_nsfw:,} tagged NSFW" if found.has_tag else "")
    )
    table = Table(title=Text(shown(title)), title_justify="left")  # no markup: names
    columns = ["domain", "rows", "keyword-NSFW", "rate", "share of keyword-NSFW"]
    columns += ["tagged NSFW"] if found.has_tag else []
    columns += ["error up to", "shards"]
    for name in columns:
        table.add_column(name, justify="left" if name == "domain" else "right")

    def errors(row: Any) -> str:
        shown = [("rows", row.rows_error), ("keyword", row.keyword_error)]
        shown += [("tag", row.tag_error)] if found.has_tag else []
        parts = [f"{name} +{n:,}" for name, n in shown if n]
        return ", ".join(parts) if parts else "exact"

    for row in found.top:
        bounds = row.keyword_rate()
        if bounds is None:
            rate = "-"
        elif not (row.rows_error or row.keyword_error):
            rate = f"{bounds[0]:.1%}"
        else:  # lower bounds with errors: the true rate lies in this interval
            rate = f"{bounds[0]:.1%}-{bounds[1]:.1%}"
        share = "-"
        if found.keyword_nsfw:  # the dataset's total is exact; the domain's may not be
            low = row.keyword_nsfw / found.keyword_nsfw
            high = min(1.0, (row.keyword_nsfw + row.keyword_error) / found.keyword_nsfw)
            share = f"{low:.1%}" if not row.keyword_error else f"{low:.1%}-{high:.1%}"
        cells: list[Text | str] = [
            Text(shown(row.domain)),
            f"{row.rows:,}",
            f"{row.keyword_nsfw:,}",
        ]
        cells += [rate, share]
        cells += [f"{row.tag_nsfw:,}"] if found.has_tag else []
        cells += [errors(row), f"{row.shards:,}"]
        table.add_row(*cells)
    stdout_console().print(table)
    typer.echo(
        f"Each shard stores exact counts for its top {found.k} domains by rows, keyword-NSFW "
        "and tag-NSFW rows; summed over shards a count is a lower bound, and the true count "
        "is at most count + 'error up to' ('exact': every count on the row is exact). Where "
        "a count is not exact, the rate is the interval the true rate lies in. A domain not "
        "listed holds at most "
        f"{found.floor_keyword:,} keyword-NSFW rows (docs/metrics.md#domains)."
    )


def print_report(result: DatasetReport, fmt: ReportFormat) -> None:
    """A dataset's report: Table 1 and totals in FMT, with the shards not done (text)."""
    total, labels = result.total, result.labels
    if fmt is ReportFormat.json:
        sys.stdout.write(json_shown(json.dumps(result.to_dict(), ensure_ascii=False)) + "\n")
        return
    from shardwatch.present.paper import paper_table
    from shardwatch.present.render import report_markdown, summary, table1_csv

    lexicon = ", ".join(result.lexicons)
    if fmt is ReportFormat.csv:
        sys.stdout.write(table1_csv(total, labels, lexicon))
        return
    intro = [
        f"{total.shards:,} shards (latest done versions), {total.rows:,} rows; "
        f"{result.failed} failed, {result.quarantined} quarantined, {result.pending} pending"
        + (f"; {result.drifted} with schema drift" if result.drifted else "")
    ]
    if fmt is ReportFormat.markdown:
        sys.stdout.write(report_markdown(total, labels, result.dataset, intro, lexicon))
        return
    console = stdout_console()
    if fmt is ReportFormat.paper:
        console.print(shown(f"dataset {result.dataset}: {intro[0]}"), markup=False)
        title = f"Table 1, the paper's method beside lexicon {lexicon}: dataset {result.dataset}"
        console.print(paper_table(total, labels, title, lexicon))
        return
    console.print(shown(f"dataset {result.dataset}: {intro[0]}"), markup=False)
    for entry in result.shards:
        if entry.status != "done":
            reason = f" ({entry.reason})" if entry.reason else ""
            failures = len(entry.history)
            tries = f" [{failures} failures: report --json]" if failures > 1 else ""
            line = f"{entry.status}: {entry.uri} v{entry.version}{reason}{tries}"
            console.print(shown(line), markup=False)
        elif entry.schema_drift is not None:
            console.print(
                shown(f"schema drift: {entry.uri} v{entry.version}: {entry.schema_drift}"),
                markup=False,
            )
    for line in list_version_lines(result):
        console.print(shown(line), markup=False)
    console.print(summary(total, labels, f"total of dataset {result.dataset}", lexicon))


SHOWN_BEHIND = 5  # shard names a text report lists per older list version (JSON: all)


def list_version_lines(result: DatasetReport) -> list[str]:
    """Per blocklist: the shards checked against an older version of it than the newest
    stored, and how many were not checked against it at all. Versions by SHA-256 prefix;
    no entry is ever shown."""
    lines = []
    for name, checks in result.blocklists.items():
        for version, uris in checks.older.items():
            listed = ", ".join(uris[:SHOWN_BEHIND])
            more = f" and {len(uris) - SHOWN_BEHIND:,} more (report --json)"
            lines.append(
                f"blocklist {name}: {len(uris):,} shard(s) checked against version "
                f"{version[:12]} (newest {checks.newest[:12]}): {listed}"
                + (more if len(uris) > SHOWN_BEHIND else "")
            )
        if checks.unchecked:
            lines.append(
                f"blocklist {name}: {checks.unchecked:,} shard(s) not checked against it "
                "(stored before it was configured: re-ingest them to check)"
            )
    return lines
