"""CLI: thin typer commands over the library; exit codes are in `exit_codes.py`."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pyarrow as pa
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from shardwatch import __version__
from shardwatch.cli.exit_codes import ExitCode, exit_code_table
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.names import json_shown, shown
from shardwatch.core.profiles import DatasetProfile
from shardwatch.demo.run import DEFAULT_DEMO_DIR, demo_shards
from shardwatch.present.paper import paper_table
from shardwatch.present.render import (
    print_summary,
    report_markdown,
    summary,
    table1_csv,
)
from shardwatch.scan.engine import CompiledLexicon, scan_shard
from shardwatch.scan.profile_hint import profile_problem
from shardwatch.scan.reader import ShardReader, ShardReadError
from shardwatch.settings.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:  # the store stack (SQLAlchemy, Alembic) loads only in commands that use it
    from sqlalchemy import Engine

    from shardwatch.alerting.relay import RelayResult
    from shardwatch.pipeline.ingest import IngestResult
    from shardwatch.store.outbox import Outbox
    from shardwatch.store.report import DatasetReport
    from shardwatch.validate.gx_adapter import GxValidator

# Plain help (rich_markup_mode=None): Rich markup would eat `[sources]` and `[download]`.
app = typer.Typer(
    help="shardwatch: exact, streaming data-quality audits of image-text dataset shards.\n\n"
    f"\b\nExit codes (every command):\n{exit_code_table()}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(
    help="Inspect the effective configuration.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(config_app, name="config")
db_app = typer.Typer(
    help="Manage the results database (migrations).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(db_app, name="db")
alerts_app = typer.Typer(
    help="Alert channels and messages.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(alerts_app, name="alerts")
suites_app = typer.Typer(
    help="Great Expectations suites (packaged defaults, or validation.suites_dir).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(suites_app, name="suites")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A shardwatch.toml file (default: $SHARDWATCH_CONFIG, else ./shardwatch.toml).",
        dir_okay=False,
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="Dataset profile (default: laion400m).")
]
LexiconOpt = Annotated[
    str | None,
    typer.Option(
        "--lexicon",
        help="Lexicon (default: the profile's, precise2026; birhane2021 is the paper's rule).",
    ),
]

_stderr = Console(stderr=True, highlight=False)
# Library warnings (e.g. an undelivered alert) reach the user through the commands' own
# output; without this, Python's last-resort handler would print them a second time.
logging.getLogger("shardwatch").addHandler(logging.NullHandler())


def _fail(code: ExitCode, message: str) -> typer.Exit:
    from shardwatch.core.redact import redact_text

    typer.echo(f"error: {shown(redact_text(message))}", err=True)
    return typer.Exit(int(code))


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shardwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """shardwatch command line."""


def _count_rows(paths: list[Path], settings: Settings) -> int | None:
    """The shards' total rows for the progress bar; None if a CSV/TSV shard's is unknown."""
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


def _check_profile_fit(paths: list[Path], settings: Settings) -> None:
    """Exit 2 when a CSV/TSV shard does not fit the default profile (profile_hint.py)."""
    problem = profile_problem(paths, settings)
    if problem is not None:
        raise _fail(ExitCode.USAGE, problem)


def _expand(paths: list[Path]) -> list[Path]:
    """Directories stand for the `*.parquet` files directly inside them, in name order; a
    file (parquet, or CSV/TSV: .csv, .tsv, .csv.gz, .tsv.gz) stands for itself."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.parquet"))
            out.extend(found if found else [path])  # an empty directory is reported as input
        else:
            out.append(path)
    return out


@app.command()
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
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show progress on stderr (default: when stderr is a terminal).",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Threads (default: 2).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Rows per batch.")
    ] = None,
) -> None:
    """Compute exact audit metrics for SHARDS and their total (Table 1 of Birhane et al.).

    Metrics a shard's columns cannot support are listed as unavailable, not errors.
    An unreadable shard is reported on stderr and the rest are still scanned (exit 3).
    """
    settings = _settings(
        config, profile=profile, lexicon=lexicon, workers=workers, batch_size=batch_size
    )
    prof = settings.dataset_profile()
    compiled = CompiledLexicon(settings.active_lexicon())
    shards = _expand(shards)
    _check_profile_fit(shards, settings)
    show_progress = sys.stderr.isatty() if progress is None else progress

    results: list[tuple[str, ShardMetrics]] = []
    errors: list[dict[str, str]] = []
    with Progress(
        TextColumn("{task.description}", markup=False),  # it names files
        BarColumn(),
        TextColumn("{task.completed:,}{task.fields[of]} rows"),
        TimeRemainingColumn(),
        console=_stderr,
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
        width = None if sys.stdout.isatty() else 160  # pipes get a wide, unwrapped table
        console = Console(highlight=False, soft_wrap=True, width=width)
        print_summary(console, results, total, prof.nsfw_labels, compiled.lexicon.name)
    if errors:
        raise typer.Exit(int(ExitCode.INPUT))


def _monitor_flow() -> Any:
    from shardwatch.pipeline.monitor import load_flow

    try:
        return load_flow()
    except FileNotFoundError as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None


def _prefect_quiet(logs: bool = False) -> None:
    """No telemetry; Prefect's own console logging only for warnings unless `logs`."""
    import os

    if not logs:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@app.command("run")
def run_monitor(config: ConfigOpt = None) -> None:
    """Run one monitor pass (the Prefect flow): discover new or changed shards in the
    configured [sources], fetch and check them, scan, validate and store each, relay alerts,
    and write a report with Table 1 and charts under <state_dir>/reports/.

    Exit 0 when every shard was stored; 3 if a shard failed or was quarantined (the others
    were still processed), a source could not be listed, or validation could not run (no
    suite, GX crashed); 2 without sources.
    """
    settings = _settings(config)
    if not settings.sources:
        raise _fail(ExitCode.USAGE, "no [sources] configured: add one to shardwatch.toml")
    _check_store_url(settings)
    _prefect_quiet()
    flow = _monitor_flow()
    state = flow(str(config) if config else None, return_state=True)
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, BaseException):
        raise _fail(ExitCode.INPUT, f"the monitor flow failed: {summary}")
    _print_pass(summary, settings)
    if summary.failed or summary.source_errors or summary.validation_errors:
        raise typer.Exit(int(ExitCode.INPUT))


def _print_pass(summary: Any, settings: Settings) -> None:
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


@app.command()
def serve(
    config: ConfigOpt = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Override monitor.schedule (a cron string).")
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option("--interval", min=1, help="Run every SECONDS instead of on a cron schedule."),
    ] = None,
) -> None:
    """Serve the monitor flow on its schedule (monitor.schedule, or --cron / --interval)
    until interrupted.

    Needs a running Prefect API: `prefect server start`, then
    PREFECT_API_URL=http://127.0.0.1:4200/api (or a Prefect profile / Prefect Cloud). Without
    one, serve exits 2 at once. Runs appear in the Prefect UI with their Table 1 artifact; a
    run ends Failed when a shard failed, a source was not listed or validation could not run,
    and a run that fails or crashes sends a `monitor-run` notice to the alert channels.
    """
    settings = _settings(config)
    if not settings.sources:
        raise _fail(ExitCode.USAGE, "no [sources] configured: add one to shardwatch.toml")
    if cron is not None and interval is not None:
        raise _fail(ExitCode.USAGE, "give --cron or --interval, not both")
    schedule = cron or settings.monitor.schedule
    try:
        from prefect.client.schemas.schedules import construct_schedule

        construct_schedule(cron=schedule)
    except (ValueError, TypeError) as exc:
        raise _fail(ExitCode.USAGE, f"invalid cron schedule {schedule!r}: {exc}") from None
    from shardwatch.pipeline.prefect_api import ApiUnavailable, require_api

    _prefect_quiet(logs=True)
    try:
        require_api()
    except ApiUnavailable as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None
    flow = _monitor_flow()
    every = f"every {interval:g} s" if interval is not None else repr(schedule)
    typer.echo(f"serving shardwatch-monitor {every} (Ctrl-C stops)")
    flow.serve(
        name="shardwatch-monitor",
        cron=None if interval is not None else schedule,
        interval=interval,
        limit=1,  # passes never overlap; shards fan out inside a pass
        parameters={"config": str(config.resolve()) if config else None},
    )


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Where the demo shards are written (and reused).")
    ] = DEFAULT_DEMO_DIR,
    shards: Annotated[int, typer.Option("--shards", min=1, help="Full demo shards.")] = 3,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Rows per full shard.")] = 200_000,
) -> None:
    """The main job, end to end on this machine: generate a LAION-400M-like dataset, serve it
    over loopback HTTP, and run the monitor flow on it (Prefect, embedded SQLite store).

    The dataset: full shards, a URL+TEXT-only shard (unavailable metrics, errored checks) and
    a corrupt shard (quarantined; the run goes on), with a manifest. Every shard is fetched,
    checked, scanned, validated with the GX suite and stored; alert rules breach and go to
    the console and to <state_dir>/alerts.jsonl; Data Docs and a report with charts are
    built. Prints Table 1 and the paths to open. A second run finds nothing new.
    Failing checks and the corrupt shard are the point: they do not make it exit non-zero;
    validation that could not run does (exit 3).
    """
    from shardwatch.demo.run import corrupt_shard, demo_config, serve_folder, write_manifest

    _stderr.print(f"writing demo shards under {out} (reused when present)", markup=False)
    paths = demo_shards(out, shards=shards, rows=rows)
    paths.append(corrupt_shard(out, paths[0]))
    write_manifest(out, paths)
    _prefect_quiet()
    flow = _monitor_flow()
    state = _settings(None).state_dir.resolve()  # $SHARDWATCH_STATE_DIR, else ./.shardwatch
    alerts_file = state / "alerts.jsonl"
    with serve_folder(out) as base:
        config = demo_config(state / "demo.toml", base + "manifest.json", state)
        settings = _settings(config)
        _stderr.print(f"serving {out} at {base}; running the monitor flow", markup=False)
        state = flow(str(config), return_state=True)
        summary = state.result(raise_on_failure=False)
    if isinstance(summary, BaseException):
        raise _fail(ExitCode.INPUT, f"the monitor flow failed: {summary}")
    typer.echo("")
    _print_pass(summary, settings)
    from shardwatch.store.report import dataset_report

    typer.echo("")
    _print_report(dataset_report(_store_engine(settings), settings.dataset), ReportFormat.text)
    typer.echo(f"\nalerts (JSON lines): {alerts_file.resolve()}")
    typer.echo(f"config used: {config.resolve()}")
    if summary.validation_errors:  # the demo's failing checks are the point; this is not
        raise typer.Exit(int(ExitCode.INPUT))


def _store_engine(settings: Settings) -> Engine:
    from shardwatch.store.database import StoreError, make_engine

    try:
        return make_engine(settings.database_url.get_secret_value())
    except StoreError as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None


def _check_store_url(settings: Settings) -> None:
    """Exit 2 with one line for a malformed database URL, before any work starts."""
    from shardwatch.store.database import StoreError, parse_url

    try:
        parse_url(settings.database_url.get_secret_value())
    except StoreError as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None


def _db_error(exc: Exception, settings: Settings) -> typer.Exit:
    from shardwatch.store.database import masked

    url = masked(settings.database_url.get_secret_value())
    return _fail(ExitCode.INPUT, f"database {url}: {type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Apply all migrations to the configured database ($SHARDWATCH_DATABASE_URL)."""
    from sqlalchemy.exc import SQLAlchemyError

    from shardwatch.store.database import current, masked, upgrade

    settings = _settings(config)
    engine = _store_engine(settings)
    try:
        upgrade(engine)
        typer.echo(f"{masked(engine.url)} is at revision {current(engine)}")
    except SQLAlchemyError as exc:
        raise _db_error(exc, settings) from None


@db_app.command("current")
def db_current(config: ConfigOpt = None) -> None:
    """Print the configured database's migration revision (and the code's head)."""
    from sqlalchemy.exc import SQLAlchemyError

    from shardwatch.store.database import current, heads, masked

    settings = _settings(config)
    engine = _store_engine(settings)
    try:
        rev = current(engine)
    except SQLAlchemyError as exc:
        raise _db_error(exc, settings) from None
    head = ", ".join(heads())
    typer.echo(f"{masked(engine.url)}: revision {rev or '(none)'}; code head {head}")


@app.command()
def ingest(
    shards: Annotated[
        list[Path], typer.Argument(help="Parquet shard files, or directories of them.")
    ],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Dataset name (default: 'default').")
    ] = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    lexicon: LexiconOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Reprocess shards whose content is already done.")
    ] = False,
    validate: Annotated[
        bool | None,
        typer.Option(
            "--validate/--no-validate",
            help="Validate each shard with its GX suite (default: validation.enabled).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON.")] = False,
    alerts: Annotated[
        bool | None,
        typer.Option(
            "--alerts/--no-alerts",
            help="Judge the alert rules and relay the notices (default: alerts.enabled).",
        ),
    ] = None,
) -> None:
    """Scan SHARDS, validate them and store the results, each new or changed shard once.

    Identical content already stored is skipped; changed content under the same path becomes
    a new version. Several ingest processes may run at once on PostgreSQL (SQLite: one).
    Each shard's feature table is validated against the GX suite (<suite>.json in
    validation.suites_dir, else the packaged default) in the same pass; the checks are stored
    with the shard's metrics in one transaction and its Data Docs page is built under
    <state_dir>/docs (the path is printed).
    Alert rules are judged in that same transaction; at the end one message per channel
    carries the run's new breaches and recoveries (see `shardwatch alerts list`).
    A shard whose footer breaks the `[download]` caps (a decompression bomb, a hostile
    schema, not parquet) is quarantined with the reason before any of it is decoded.
    A shard whose columns drifted from the profile (renamed, missing, retyped or unexpected)
    is stored with the metrics its usable columns allow and a `schema drift:` line; the
    checks the drift kept from running are errored, not failed.
    Exit 1 if a check failed or errored (drift included), 3 if a shard could not be read or
    was quarantined, or its validation could not run (GX crashed); 2 if the suite is
    missing or invalid (your validation.suites_dir first, then the packaged defaults).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from shardwatch.acquire.footer import footer_limits
    from shardwatch.pipeline.ingest import ingest_shards
    from shardwatch.store.database import upgrade
    from shardwatch.store.repository import ResultStore

    settings = _settings(config, profile=profile, lexicon=lexicon, dataset=dataset)
    _check_profile_fit(_expand(shards), settings)
    validator = _validator(settings) if _validation_on(settings, validate) else None
    alerts_on = settings.alerts.enabled if alerts is None else alerts
    docs_index = str(validator.paths.index) if validator is not None else None
    plan = settings.alerts.plan(docs_index) if alerts_on else None
    engine = _store_engine(settings)
    try:
        upgrade(engine)
        store = ResultStore(engine)
        run_id = store.start_run()
        try:  # the run row is closed whatever ends the pass
            results = ingest_shards(
                _expand(shards),
                store=store,
                dataset=settings.dataset,
                profile=settings.dataset_profile(),
                lexicon=CompiledLexicon(settings.active_lexicon()),
                lease_seconds=settings.lease_seconds,
                force=force,
                run_id=run_id,
                batch_size=settings.batch_size,
                workers=settings.workers,
                on_result=None if as_json else _print_outcome,
                validator=validator,
                alerts=plan,
                domain_top_k=settings.domain_top_k,
                footer=footer_limits(settings.download),
                max_attempts=settings.max_attempts,
            )
            counts = Counter(r.outcome for r in results)
            store.finish_run(
                run_id,
                seen=len(results),
                done=counts["done"],
                skipped=counts["skipped"],
                failed=counts["failed"] + counts["quarantined"],
            )
        except BaseException as exc:
            with contextlib.suppress(Exception):  # else the next run closes the row
                store.fail_run(run_id, f"the pass ended by {type(exc).__name__}")
            raise
    except SQLAlchemyError as exc:
        raise _db_error(exc, settings) from None
    docs = _finish_docs(validator) if validator is not None else None
    relayed = _relay(settings, engine, as_json) if plan is not None else None
    not_run = any(r.validation is not None and r.validation.not_run for r in results)
    checks_bad = any(r.validation is not None and not r.validation.success for r in results)
    if as_json:
        payload = {
            "run": run_id,
            "results": [_result_json(r) for r in results],
            "data_docs": str(docs) if docs else None,
            "alerts": _relay_json(relayed) if relayed is not None else None,
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        typer.echo(f"run {run_id}: {summary or 'nothing to do'}")
        if docs is not None:
            typer.echo(f"Data Docs: {docs}")
    if counts["failed"] or counts["quarantined"] or not_run:
        raise typer.Exit(int(ExitCode.INPUT))
    if checks_bad:
        raise typer.Exit(int(ExitCode.DATA_FAILED))


def _validation_on(settings: Settings, flag: bool | None) -> bool:
    return settings.validation.enabled if flag is None else flag


def _validator(settings: Settings) -> GxValidator:
    """The GX adapter for the configured suite; a bad suite is a usage error (exit 2)."""
    _stderr.print("loading Great Expectations ...", markup=False)
    from shardwatch.validate.gx_adapter import (
        GxPaths,
        GxValidator,
        SuiteError,
        find_suite,
        load_suite,
    )

    v = settings.validation
    suite = settings.suite_name()
    try:
        found = find_suite(v.suites_dir, suite)
        load_suite(found.path)
    except SuiteError as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None
    typer.echo(f"validating with {found.describe()}", err=True)  # one line, never wrapped
    return GxValidator(
        GxPaths(v.gx_dir, v.docs_dir),
        v.suites_dir,
        suite,
        keep_results=v.keep_results,
        partial_unexpected=v.partial_unexpected,
        max_rows=v.max_rows,
    )


def _finish_docs(validator: GxValidator) -> Path:
    """Prune results beyond the configured limit (and their pages); re-render the index."""
    if validator.prune():
        return validator.rebuild_index()
    return validator.paths.index


def _result_json(result: IngestResult) -> dict[str, Any]:
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


def _print_outcome(result: IngestResult) -> None:
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


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    csv = "csv"
    paper = "paper"


def _no_store(settings: Settings) -> bool:
    """True for a SQLite URL whose file does not exist (a report must not create it)."""
    from shardwatch.store.database import StoreError, parse_url

    try:
        url = parse_url(settings.database_url.get_secret_value())
    except StoreError:
        return False  # reported by _store_engine
    database = url.database or ""
    return (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and (not Path(database).exists())
    )


def _profile_resolver(settings: Settings) -> Callable[[str], DatasetProfile | None]:
    def resolve(name: str) -> DatasetProfile | None:
        try:
            return settings.dataset_profile(name)
        except ConfigError:
            return None  # a profile no longer configured: its labels are sorted instead

    return resolve


@app.command()
def report(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Dataset name (default: 'default').")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (same as --format json).")
    ] = False,
    fmt: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format",
            help="text (default), json, markdown, csv (Table 1 only) or paper (Table 1 by "
            "the audit paper's method, beside the lexicon's).",
        ),
    ] = None,
    paper: Annotated[bool, typer.Option("--paper", help="Same as --format paper.")] = False,
    drift: Annotated[
        bool,
        typer.Option(
            "--drift",
            help="Instead: each shard against the rest of the dataset: similarity PSI and "
            "two-proportion tests of the NSFW tag and keyword rates (text, or --json).",
        ),
    ] = False,
    domains: Annotated[
        bool,
        typer.Option(
            "--domains",
            help="Instead: the registrable URL domains contributing most NSFW, from each "
            "shard's exact top-k domain counts (text, or --json).",
        ),
    ] = False,
    top: Annotated[
        int, typer.Option("--top", min=1, max=100_000, help="Domains listed by --domains.")
    ] = 20,
    by: Annotated[
        str,
        typer.Option("--by", help="--domains order: keyword (default), tag or rows."),
    ] = "keyword",
    config: ConfigOpt = None,
) -> None:
    """Print a dataset's Table 1 and totals from the results store.

    Table 1 shows each term's keyword-NSFW lift over the dataset's rate with a Wilson 95%
    interval, and the NSFW tag among each term's keyword-NSFW matches (the paper's column).
    `--paper` computes Table 1 by the audit paper's method (the term and its 7 keywords as
    plain substrings: N_match, N_nsfw and the tag among N_nsfw), beside the same figures by
    the dataset's lexicon, so the effect of the matching rule is plain.

    The totals are summed in SQL over the latest done version of every shard; they equal
    `shardwatch scan --json`'s total over the same files. Failed or quarantined shards are
    counted and listed, not summed.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from shardwatch.store.database import current, masked
    from shardwatch.store.report import ReportError, dataset_report

    if drift and domains:
        raise _fail(ExitCode.USAGE, "--drift and --domains are alternatives: give one")
    if (drift or domains) and (paper or fmt not in (None, ReportFormat.text)):
        view = "--drift" if drift else "--domains"
        raise _fail(ExitCode.USAGE, f"{view} prints its own table: give it alone or with --json")
    if by not in ("keyword", "tag", "rows"):
        raise _fail(ExitCode.USAGE, f"--by must be keyword, tag or rows, not {by!r}")
    if as_json + paper + (fmt is not None) > 1:
        raise _fail(ExitCode.USAGE, "--json, --paper and --format are alternatives: give one")
    fmt = ReportFormat.json if as_json else ReportFormat.paper if paper else fmt
    fmt = fmt or ReportFormat.text
    settings = _settings(config, dataset=dataset)
    url = masked(settings.database_url.get_secret_value())
    if _no_store(settings):
        raise _fail(ExitCode.USAGE, f"no results store at {url}: run `shardwatch ingest` first")
    engine = _store_engine(settings)
    try:
        if current(engine) is None:
            raise _fail(ExitCode.USAGE, f"{url} has no results yet: run `shardwatch ingest`")
        if domains:
            from shardwatch.store.report import domain_report

            _print_domains(domain_report(engine, settings.dataset, top=top, by=by), as_json)
            return
        result = dataset_report(engine, settings.dataset, profiles=_profile_resolver(settings))
        if drift:
            from shardwatch.store.report import shard_drift

            _print_drift(result.dataset, shard_drift(engine, settings.dataset), as_json)
            return
    except ReportError as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None
    except SQLAlchemyError as exc:
        raise _db_error(exc, settings) from None
    _print_report(result, fmt)


def _print_drift(dataset: str, rows: list[tuple[str, Any]], as_json: bool) -> None:
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
    width = None if sys.stdout.isatty() else 160
    Console(highlight=False, soft_wrap=True, width=width).print(table)
    typer.echo(
        "PSI < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major; |z| > 3: a rate that "
        f"differs beyond chance; a test needs {MIN_DRIFT_ROWS} rows in the shard and in the "
        "rest ('too few rows' below)"
    )


def _print_domains(found: Any, as_json: bool) -> None:
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
    width = None if sys.stdout.isatty() else 160
    Console(highlight=False, soft_wrap=True, width=width).print(table)
    typer.echo(
        f"Each shard stores exact counts for its top {found.k} domains by rows, keyword-NSFW "
        "and tag-NSFW rows; summed over shards a count is a lower bound, and the true count "
        "is at most count + 'error up to' ('exact': every count on the row is exact). Where "
        "a count is not exact, the rate is the interval the true rate lies in. A domain not "
        "listed holds at most "
        f"{found.floor_keyword:,} keyword-NSFW rows (docs/metrics.md#domains)."
    )


def _print_report(result: DatasetReport, fmt: ReportFormat) -> None:
    total, labels = result.total, result.labels
    if fmt is ReportFormat.json:
        sys.stdout.write(json_shown(json.dumps(result.to_dict(), ensure_ascii=False)) + "\n")
        return
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
    width = None if sys.stdout.isatty() else 160
    console = Console(highlight=False, soft_wrap=True, width=width)
    if fmt is ReportFormat.paper:
        if not sys.stdout.isatty():  # a pipe: wide enough for both methods' columns
            console = Console(highlight=False, soft_wrap=True, width=240)
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
    console.print(summary(total, labels, f"total of dataset {result.dataset}", lexicon))


def _export_help() -> str:
    from shardwatch.export.flag_rules import RULES, TERM_RULE_HELP

    rules = "\n\n".join(f"  {name}: {text}" for name, text in RULES.items())
    return (
        "Write a remove-list: one parquet row per row of the dataset that RULE flags.\n\n"
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
        "Exit 0 when every shard was read; 3 if a shard was skipped (missing, changed since "
        "ingest, unreadable, download refused): the other shards' rows are still written "
        "and every skipped shard is listed; 2 for an unknown rule or term, an unknown "
        "dataset, or a rule no shard can evaluate (no file is written then)."
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


@app.command("export-flagged", help=_export_help())
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
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Dataset name (default: 'default').")
    ] = None,
    with_text: Annotated[
        bool,
        typer.Option("--with-text", help="Also write each row's caption (untrusted text)."),
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show progress on stderr (default: when stderr is a terminal).",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from shardwatch.export.flag_rules import UnknownRule, parse_rule
    from shardwatch.export.flagged import ExportError, ExportRequest
    from shardwatch.export.flagged import export_flagged as run_export
    from shardwatch.store.database import current, masked
    from shardwatch.store.report import ReportError

    try:
        parse_rule(rule)
    except UnknownRule as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None
    settings = _settings(config, dataset=dataset)
    url = masked(settings.database_url.get_secret_value())
    if _no_store(settings):
        raise _fail(ExitCode.USAGE, f"no results store at {url}: run `shardwatch ingest` first")
    engine = _store_engine(settings)
    request = ExportRequest(settings.dataset, rule, out, with_text, settings.batch_size)
    show_progress = sys.stderr.isatty() if progress is None else progress
    try:
        if current(engine) is None:
            raise _fail(ExitCode.USAGE, f"{url} has no results yet: run `shardwatch ingest`")
        with Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} rows"),
            TimeRemainingColumn(),
            console=_stderr,
            disable=not show_progress,
            transient=True,
        ) as bar:
            summary = run_export(engine, settings, request, progress=_ExportBar(bar))
    except (UnknownRule, ExportError, ReportError) as exc:
        raise _fail(ExitCode.USAGE, str(exc)) from None
    except SQLAlchemyError as exc:
        raise _db_error(exc, settings) from None
    except OSError as exc:
        raise _fail(ExitCode.INPUT, f"cannot write {out}: {exc}") from None
    for note in summary.unavailable:
        line = f"note: rule {summary.rule} unavailable in {note.uri}: {note.reason}"
        typer.echo(shown(line), err=True)
    for note in summary.skipped:
        typer.echo(shown(f"error: skipped {note.uri}: {note.reason}"), err=True)
    typer.echo(shown(summary.line()))
    if summary.skipped:
        raise typer.Exit(int(ExitCode.INPUT))


@app.command()
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
    settings = _settings(config)
    validator = _validator(settings)
    pruned = validator.prune()
    index = validator.build_docs(clean=True)
    if pruned:
        typer.echo(f"pruned {pruned} old validation result(s)")
    typer.echo(f"Data Docs: {index}")
    if serve:
        _serve(validator.paths.docs, port)


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


@suites_app.command("check")
def suites_check(
    suites_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of suite files (default: validation.suites_dir, else the packaged "
            "default suites)."
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Check every suite file strictly: valid JSON, known expectation types, valid kwargs.

    GX itself silently drops an expectation it cannot parse; this command names the file,
    the expectation and the problem instead, and exits 2 on any bad suite.
    """
    from shardwatch.settings.resources import default_suites_dir
    from shardwatch.validate.gx_adapter import check_suites

    folder = suites_dir or _settings(config).validation.suites_dir or default_suites_dir()
    files, problems = check_suites(folder)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    bad = len(problems)
    typer.echo(f"checked {len(files)} suite file(s) in {folder}: {bad or 'no'} problem(s)")
    if problems:
        raise typer.Exit(int(ExitCode.USAGE))


def _relay(settings: Settings, engine: Engine, quiet_stdout: bool) -> RelayResult:
    """One relay pass over every configured channel; the outcome is printed on stderr."""
    from sqlalchemy.exc import SQLAlchemyError

    from shardwatch.alerting.relay import relay_configured

    console = sys.stderr.write if quiet_stdout else None
    try:
        result = relay_configured(engine, settings.alerts, console=console)
    except SQLAlchemyError as exc:
        raise _db_error(exc, settings) from None
    typer.echo(result.summary(), err=True)
    return result


def _relay_json(result: RelayResult) -> dict[str, Any]:
    return {
        "sent": result.sent,
        "failed": result.failed,
        "dead": result.dead,
        "deferred": result.deferred,
        "reminded": result.reminded,
        "channels": [asdict(c) for c in result.channels],
    }


def _outbox(settings: Settings) -> tuple[Engine, Outbox]:
    """The store's outbox (migrated); a missing SQLite file is a usage error."""
    from sqlalchemy.exc import SQLAlchemyError

    from shardwatch.store.database import masked, upgrade
    from shardwatch.store.outbox import Outbox

    if _no_store(settings):
        url = masked(settings.database_url.get_secret_value())
        raise _fail(ExitCode.USAGE, f"no results store at {url}: run `shardwatch ingest` first")
    engine = _store_engine(settings)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        raise _db_error(exc, settings) from None
    return engine, Outbox(engine)


@alerts_app.command("list")
def alerts_list(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only this dataset (default: all).")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include resolved alerts (default: open or dead).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """List alerts: breaching ones, and any whose notice was dead-lettered (with the reason),
    each with its notices per channel (pending, sending, sent, dead or cancelled)."""
    from sqlalchemy.exc import SQLAlchemyError

    settings = _settings(config)
    _, outbox = _outbox(settings)
    try:
        views = outbox.alerts(dataset, include_resolved=show_all)
        counts = outbox.counts()
    except SQLAlchemyError as exc:
        raise _db_error(exc, settings) from None
    if as_json:
        payload = {"alerts": [asdict(v) for v in views], "notices": counts}
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        return
    for v in views:
        state = "BREACHING" if v.breaching else "resolved"
        observed = "n/a" if v.observed is None else f"{v.observed:.6g}"
        detail = f" ({v.detail})" if v.detail else ""
        line = (
            f"#{v.id} {state} {v.severity} {v.rule} on {v.dataset} / {v.scope}: "
            f"observed {observed}{detail}, threshold {v.threshold}; "
            f"since {v.opened_at:%Y-%m-%d %H:%M}"
        )
        typer.echo(shown(line))
        for d in v.deliveries:
            error = f": {d.last_error}" if d.last_error and d.state != "sent" else ""
            tries = f", {d.attempts} attempt(s)" if d.attempts else ""
            status = d.state.upper()
            typer.echo(shown(f"    notice {d.id} {d.kind} -> {d.channel}: {status}{tries}{error}"))
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"
    typer.echo(f"{len(views)} alert(s) shown; notices: {summary}")


@alerts_app.command("relay")
def alerts_relay(config: ConfigOpt = None) -> None:
    """Send every due notice now (one message per channel); exit 4 if any was not delivered."""
    settings = _settings(config)
    engine, _ = _outbox(settings)
    result = _relay(settings, engine, False)
    if result.failed:
        raise typer.Exit(int(ExitCode.DELIVERY))


@alerts_app.command("retry")
def alerts_retry(
    notice: Annotated[
        list[int] | None,
        typer.Option("--id", help="A dead notice's id (from `alerts list`); repeatable."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Re-queue dead-lettered notices (all, or those given) and relay them now; exit 4 if
    any is still not delivered."""
    from sqlalchemy.exc import SQLAlchemyError

    settings = _settings(config)
    engine, outbox = _outbox(settings)
    try:
        count = outbox.retry(notice or None)
    except SQLAlchemyError as exc:
        raise _db_error(exc, settings) from None
    typer.echo(f"re-queued {count} dead notice(s)")
    result = _relay(settings, engine, False)
    if result.failed:
        raise typer.Exit(int(ExitCode.DELIVERY))


@alerts_app.command("test")
def alerts_test(
    channel: Annotated[str, typer.Option("--channel", help="A channel named in [alerts].")],
    config: ConfigOpt = None,
) -> None:
    """Send a test message through one configured channel; exit 4 if it is not delivered.

    Channels are `[alerts.channels.<name>]` tables in shardwatch.toml (type slack, email,
    console or file). Secrets (webhook URL, SMTP password) are never printed.
    """
    from shardwatch.alerting.channels import build_channel
    from shardwatch.alerting.message import DeliveryError, probe_message

    settings = _settings(config)
    channels = settings.alerts.channels
    if channel not in channels:
        known = ", ".join(sorted(channels)) or "none"
        raise _fail(ExitCode.USAGE, f"no alert channel {channel!r} (configured: {known})")
    spec = channels[channel]
    try:
        build_channel(channel, spec).send(probe_message(settings.dataset))
    except DeliveryError as exc:
        kind = "permanent" if exc.permanent else "transient"
        message = f"channel {channel!r}: not delivered ({kind}): {exc}"
        raise _fail(ExitCode.DELIVERY, message) from None
    typer.echo(f"sent a test message to channel {channel!r} ({spec.type})")


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective settings as JSON (secrets masked; `lexicon` is the one in effect,
    the profile's unless set)."""
    from shardwatch.core.redact import redact_tree

    settings = _settings(config)
    effective = json.loads(settings.model_dump_json())
    effective["lexicon"] = settings.lexicon_name()
    typer.echo(json_shown(json.dumps(redact_tree(effective), indent=2, ensure_ascii=False)))


@config_app.command("profiles")
def config_profiles(config: ConfigOpt = None) -> None:
    """List dataset profiles and their column mappings."""
    settings = _settings(config)
    for name in settings.available_profiles():
        prof = settings.dataset_profile(name)
        cols = ", ".join(f"{k}={v}" for k, v in prof.columns.items() if v)
        typer.echo(f"{name}: threshold {prof.similarity_threshold}; lexicon {prof.lexicon}; {cols}")


@config_app.command("lexicons")
def config_lexicons(config: ConfigOpt = None) -> None:
    """List lexicons with their terms and keywords."""
    settings = _settings(config)
    for name in settings.available_lexicons():
        lex = settings.active_lexicon(name)
        default = " (selected)" if name == settings.lexicon_name() else ""
        typer.echo(f"{shown(name)}{default}: {shown(lex.description)}")
        for kind, patterns in (("keywords", lex.keywords), ("terms", lex.terms)):
            typer.echo(f"  {kind}:")
            for p in patterns:
                forms = f"; forms: {', '.join(shown(f) for f in p.forms)}" if p.forms else ""
                typer.echo(f"    {shown(p.term)} ({p.mode}{forms})")


def main() -> None:
    """Console-script entry point: every exit status is one of ExitCode (cli_errors.py)."""
    from shardwatch.cli.errors import run

    sys.exit(run(app))
