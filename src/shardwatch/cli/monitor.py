"""The monitor flow from the command line: `run` (one pass), `serve` (on a schedule) and
`demo` (the whole job on a generated dataset served over loopback HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt
from shardwatch.cli.outcomes import Failed, Outcome, command
from shardwatch.cli.printing import ReportFormat, print_pass, print_report, stderr_console
from shardwatch.cli.store_access import check_store_url, store_engine

if TYPE_CHECKING:
    from shardwatch.core.passes import PassSummary
    from shardwatch.settings.config import Settings

app = typer.Typer()

DEFAULT_DEMO_DIR = Path(".shardwatch/demo")  # demo/run.py's, without loading pyarrow here
NO_SOURCES = "no [sources] configured: add one to shardwatch.toml"


def _monitor_flow() -> Any:
    from shardwatch.pipeline.monitor import load_flow

    try:
        return load_flow()
    except FileNotFoundError as exc:
        raise Failed(Outcome.BAD_USAGE, str(exc)) from None


def _prefect_quiet(logs: bool = False) -> None:
    """No telemetry; Prefect's own console logging only for warnings unless `logs`; and
    without a Prefect API, 120 s (not Prefect's 20) for the temporary server to start, which a
    busy 2-core machine can need. Each is a default: the user's own setting wins."""
    import os

    if not logs:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _pass_summary(state: Any) -> Any:
    """A finished flow run's summary; a failed flow stops the command (exit 3)."""
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, BaseException):
        raise Failed(Outcome.RUN_FAILED, f"the monitor flow failed: {summary}")
    return summary


LocalOpt = Annotated[
    bool,
    typer.Option(
        "--local",
        help="Run the pass's stages in this process, without Prefect: no Prefect API or "
        "temporary server to start (a pass that finds nothing new takes a second or two, not "
        "about 10), no flow run in a Prefect UI, no monitor-run notice. Same store, summary, "
        "fetch retries and exit "
        "codes.",
    ),
]


@command(app, "run")
def run_monitor(config: ConfigOpt = None, local: LocalOpt = False) -> Outcome:
    """Run one monitor pass (the Prefect flow): discover new or changed shards in the
    configured [sources], fetch and check them, scan, validate and store each, relay alerts,
    and write a report with Table 1 and charts under <state_dir>/reports/.

    With PREFECT_API_URL set the flow runs against that Prefect server (its runs, logs and
    Table 1 artifact appear in the UI); without it Prefect starts a temporary local server
    for the pass, which costs about 10 s. `--local` runs the same stages without Prefect
    (no fetch retries: a failed fetch is recorded and the next pass tries again). Either
    way each result and alert is stored once, and the next pass skips it.

    Exit 0 when every shard was stored; 3 if a shard failed or was quarantined (the others
    were still processed), a shard was left not done (busy under another worker's claim,
    or its task never returned: the next pass takes it), a source could not be listed, or
    validation could not run (no suite, GX crashed); 2 without sources.
    """
    settings = options.load(config)
    if not settings.sources:
        raise Failed(Outcome.BAD_USAGE, NO_SOURCES)
    check_store_url(settings)
    _check_blocklists(settings, hand_over=True)  # the pass uses these downloads
    if local:
        summary = _local_summary(settings)
    else:
        _prefect_quiet()
        flow = _monitor_flow()
        summary = _pass_summary(flow(str(config) if config else None, return_state=True))
    print_pass(summary, settings)
    if summary.failed or summary.not_done or summary.source_errors:
        return Outcome.INPUT_FAILED
    return Outcome.VALIDATION_NOT_RUN if summary.validation_errors else Outcome.OK


def _check_blocklists(settings: Settings, *, hand_over: bool = False) -> None:
    """Compile the configured remove-lists now: a bad one is a configuration error naming it
    (exit 2) before any shard is fetched (this process keeps them for its pass; with
    `hand_over`, the pass in this process uses these downloads of http(s) lists)."""
    from shardwatch.pipeline.blocklists import compiled_blocklists

    compiled_blocklists(settings, hand_over=hand_over)


def _local_summary(settings: Settings) -> PassSummary:
    """A pass without Prefect; an exception ends the command as a failed flow does (exit 3)."""
    from shardwatch.pipeline.local_pass import local_pass

    try:
        return local_pass(settings)
    except Exception as exc:
        raise Failed(Outcome.RUN_FAILED, f"the monitor flow failed: {exc}") from None


@command(app)
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
    settings = options.load(config)
    if not settings.sources:
        raise Failed(Outcome.BAD_USAGE, NO_SOURCES)
    _check_blocklists(settings)
    if cron is not None and interval is not None:
        raise Failed(Outcome.BAD_USAGE, "give --cron or --interval, not both")
    schedule = cron or settings.monitor.schedule
    try:
        from prefect.client.schemas.schedules import construct_schedule

        construct_schedule(cron=schedule)
    except (ValueError, TypeError) as exc:
        message = f"invalid cron schedule {schedule!r}: {exc}"
        raise Failed(Outcome.BAD_USAGE, message) from None
    from shardwatch.pipeline.prefect_api import ApiUnavailable, require_api

    _prefect_quiet(logs=True)
    try:
        require_api()
    except ApiUnavailable as exc:
        raise Failed(Outcome.BAD_USAGE, str(exc)) from None
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


@command(app)
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Where the demo shards are written (and reused).")
    ] = DEFAULT_DEMO_DIR,
    shards: Annotated[int, typer.Option("--shards", min=1, help="Full demo shards.")] = 3,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Rows per full shard.")] = 200_000,
) -> Outcome:
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
    from shardwatch.demo.run import (
        corrupt_shard,
        demo_config,
        demo_shards,
        serve_folder,
        write_manifest,
    )

    stderr_console().print(f"writing demo shards under {out} (reused when present)", markup=False)
    paths = demo_shards(out, shards=shards, rows=rows)
    paths.append(corrupt_shard(out, paths[0]))
    write_manifest(out, paths)
    _prefect_quiet()
    flow = _monitor_flow()
    state_dir = options.load(None).state_dir.resolve()  # $SHARDWATCH_STATE_DIR, else ./.shardwatch
    alerts_file = state_dir / "alerts.jsonl"
    with serve_folder(out) as base:
        config = demo_config(state_dir / "demo.toml", base + "manifest.json", state_dir)
        settings = options.load(config)
        stderr_console().print(f"serving {out} at {base}; running the monitor flow", markup=False)
        summary = _pass_summary(flow(str(config), return_state=True))
    typer.echo("")
    print_pass(summary, settings)
    from shardwatch.store.report import dataset_report

    typer.echo("")
    print_report(dataset_report(store_engine(settings), settings.dataset), ReportFormat.text)
    typer.echo(f"\nalerts (JSON lines): {alerts_file.resolve()}")
    typer.echo(f"config used: {config.resolve()}")
    # the demo's failing checks are the point; validation that could not run is not
    return Outcome.VALIDATION_NOT_RUN if summary.validation_errors else Outcome.OK
