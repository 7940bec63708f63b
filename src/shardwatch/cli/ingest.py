"""`shardwatch ingest`: scan, validate and store local shards, then relay the alerts.

The job is built by the pipeline's composition root (`shardwatch.pipeline.resources`), as
for the monitor stages.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from shardwatch.cli import options
from shardwatch.cli.alerts import relay
from shardwatch.cli.options import ConfigOpt, DatasetOpt, LexiconOpt, ProfileOpt
from shardwatch.cli.outcomes import Outcome, command
from shardwatch.cli.printing import print_outcome, relay_json, result_json
from shardwatch.cli.store_access import db_error, store_engine
from shardwatch.cli.validation import finish_docs, validation_on, validator

app = typer.Typer()


@command(app)
def ingest(
    shards: Annotated[
        list[Path], typer.Argument(help="Parquet shard files, or directories of them.")
    ],
    dataset: DatasetOpt = None,
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
) -> Outcome:
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
    from shardwatch.pipeline.blocklists import compiled_blocklists
    from shardwatch.pipeline.ingest import ingest_shards
    from shardwatch.pipeline.resources import ingest_job
    from shardwatch.store.database import upgrade
    from shardwatch.store.errors import StoreFailed
    from shardwatch.store.repository import ResultStore

    settings = options.load(config, profile=profile, lexicon=lexicon, dataset=dataset)
    options.check_profile_fit(options.expand(shards), settings)
    lists = compiled_blocklists(settings)  # a bad list: exit 2 before anything is stored
    gx = validator(settings) if validation_on(settings, validate) else None
    alerts_on = settings.alerts.enabled if alerts is None else alerts
    docs_index = str(gx.paths.index) if gx is not None else None
    severity = {name: spec.severity for name, spec in settings.blocklists.items()}
    plan = settings.alerts.plan(docs_index, blocklists=severity) if alerts_on else None
    engine = store_engine(settings)
    try:
        upgrade(engine)
        store = ResultStore(engine)
        run_id = store.start_run()
        try:  # the run row is closed whatever ends the pass
            job = ingest_job(
                settings,
                store,
                run_id=run_id,
                validator=gx,
                alerts=plan,
                force=force,
                blocklists=lists,
            )
            on_result = None if as_json else print_outcome
            results = ingest_shards(job, options.expand(shards), on_result=on_result)
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
    except StoreFailed as exc:
        raise db_error(exc, settings) from None
    docs = finish_docs(gx) if gx is not None else None
    relayed = relay(settings, engine, as_json) if plan is not None else None
    not_run = any(r.validation is not None and r.validation.not_run for r in results)
    checks_bad = any(r.validation is not None and not r.validation.success for r in results)
    if as_json:
        payload = {
            "run": run_id,
            "results": [result_json(r) for r in results],
            "data_docs": str(docs) if docs else None,
            "alerts": relay_json(relayed) if relayed is not None else None,
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        typer.echo(f"run {run_id}: {summary or 'nothing to do'}")
        if docs is not None:
            typer.echo(f"Data Docs: {docs}")
    if counts["failed"] or counts["quarantined"]:
        return Outcome.INPUT_FAILED
    if not_run:
        return Outcome.VALIDATION_NOT_RUN
    return Outcome.CHECKS_FAILED if checks_bad else Outcome.OK
