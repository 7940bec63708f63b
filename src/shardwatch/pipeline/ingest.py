"""Ingest: fingerprint, register, claim, scan and store shards exactly once (no Prefect)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from shardwatch.acquire.footer import (
    FooterInfo,
    FooterLimits,
    ShardRejected,
    TextFileInfo,
    check_footer,
)
from shardwatch.acquire.page_scan import batch_rows
from shardwatch.core.alerts import AlertPlan
from shardwatch.core.errors import one_line
from shardwatch.core.ids import worker_id
from shardwatch.core.names import shown, uri_problem
from shardwatch.core.passes import Outcome
from shardwatch.core.profiles import DatasetProfile
from shardwatch.core.schema import NO_DRIFT, SchemaDrift
from shardwatch.core.validation import ShardValidation, ShardValidator, blame_drift, could_not_run
from shardwatch.scan.blocklists import CompiledBlocklist
from shardwatch.scan.domains import DEFAULT_TOP_K
from shardwatch.scan.engine import CompiledLexicon, ProgressCallback, scan_shard
from shardwatch.scan.fingerprint import Fingerprint, fingerprint
from shardwatch.scan.reader import DEFAULT_BATCH_SIZE, DecodedTooLarge, ShardReadError
from shardwatch.store.errors import StoreUnavailable
from shardwatch.store.repository import ResultStore
from shardwatch.store.result_writes import BeforeCommit
from shardwatch.store.shard_versions import IdenticalContent, ShardVersion
from shardwatch.validate.compact import FeatureCollector

__all__ = [
    "Fingerprint",
    "IngestJob",
    "IngestResult",
    "Outcome",
    "fingerprint",
    "ingest_file",
    "ingest_shards",
    "judge_dataset",
    "worker_id",
]
log = logging.getLogger(__name__)
DEFAULT_FOOTER_LIMITS = FooterLimits()
DEFAULT_MAX_ATTEMPTS = 5  # tries per shard version before a failing one is quarantined
# What the footer gate said of a shard (acquire/footer.py): read by a caller that checked it.
FooterVerdict = FooterInfo | TextFileInfo


@dataclass(frozen=True)
class IngestResult:
    """What happened to one shard in one ingest pass."""

    uri: str
    outcome: Outcome
    shard_id: int | None = None
    version: int | None = None
    reason: str | None = None
    validation: ShardValidation | None = None
    # How the shard's columns differ from its profile (None: not read that far).
    schema_drift: SchemaDrift | None = None


@dataclass(frozen=True, kw_only=True)
class IngestJob:
    """What every shard of one ingest pass shares: where results go and how to scan (built
    from the settings by `pipeline/resources.py`; keyword-only)."""

    store: ResultStore
    dataset: str
    profile: DatasetProfile
    lexicon: CompiledLexicon
    lease_seconds: float
    owner: str = field(default_factory=worker_id)  # the claim owner: one per job by default
    force: bool = False
    run_id: int | None = None
    batch_size: int | None = None
    workers: int = 2
    progress: ProgressCallback | None = None
    before_commit: BeforeCommit | None = None
    validator: ShardValidator | None = None
    alerts: AlertPlan | None = None
    domain_top_k: int = DEFAULT_TOP_K
    # Caps checked on the footer before a shard is decoded (None: the caller checked it).
    footer: FooterLimits | None = DEFAULT_FOOTER_LIMITS
    # Tries per shard version: a failure once they are spent quarantines it (None: no limit).
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS
    # The configured remove-lists, compiled (pipeline/blocklists.py): every row is matched.
    blocklists: tuple[CompiledBlocklist, ...] = ()


def ingest_shards(
    job: IngestJob,
    paths: Iterable[Path],
    *,
    on_result: Callable[[IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Process each new or changed shard exactly once across concurrent processes, as `job`
    says (pipeline/resources.py builds it from the settings); `on_result` sees each result.

    Identical content already done is skipped (unless `job.force`); a shard another process
    holds is reported `busy`; an unreadable shard is marked failed with its reason and the
    rest go on. A shard whose footer breaks the `job.footer` caps (or is not parquet) is
    quarantined with the reason before any of its data is decoded (decompression bombs,
    hostile schemas). With a `job.validator`, each shard's feature table (from the same
    streaming pass) is validated and the checks are written in the shard's single results
    transaction; its Data Docs page is rendered only after that commit. With `job.alerts`,
    the shard-level rules are judged and outbox notices written in that same transaction
    (a relay sends them later); the dataset-level rules once, after the last shard
    (`judge_dataset`).
    A shard whose columns drifted from the profile (schema.py) is still stored with every
    metric its usable columns allow; the drift is stored with it, and checks it kept from
    running are errored with the drift as their reason, never failed.
    A database that goes away mid-pass is waited for (store/repository.py); one that stays
    away fails the shard in flight and the rest of the pass, never more than once per shard.
    """
    results: list[IngestResult] = []
    down: str | None = None  # the database stayed unavailable past the store's patience
    for path in paths:
        if down is not None:  # fail the rest at once rather than wait again for each
            results.append(IngestResult(shown(str(path.resolve())), "failed", reason=down))
            continue
        try:
            result = ingest_file(job, path)
        except StoreUnavailable as exc:
            down = f"database unavailable ({exc.driver}); retried next pass"
            log.warning("%s: %s", shown(str(path)), down)
            result = IngestResult(shown(str(path.resolve())), "failed", reason=down)
        results.append(result)
        if on_result is not None:
            on_result(result)
    if down is None:
        judge_dataset(job, [r.outcome for r in results])
    return results


def judge_dataset(job: IngestJob, outcomes: Sequence[Outcome]) -> None:
    """Judge `job.alerts`' dataset-level rules once, and keep the dataset's sums for the
    report (store/stored_totals.py), after a pass over some shard. A skipped shard counts:
    it may have made an older version current again (content A -> B -> A). Not when every
    shard was busy: the pass holding them judges after them (and holds the dataset lock
    meanwhile). After an empty pass, only when the last judgement does not cover the stored
    versions: a pass that died after its shards' commits and before judging is made up by
    the next pass, even one that finds nothing new. A database gone away delays it to the
    next pass; the report sums the rows meanwhile."""
    try:
        if outcomes and all(o == "busy" for o in outcomes):
            return
        if not outcomes and job.store.judged_current(job.dataset):
            return  # nothing this pass changed, and the last judgement covers it all
        job.store.judge_dataset(job.dataset, job.alerts, run_id=job.run_id)
    except StoreUnavailable as exc:
        log.warning("dataset alerts not judged: database unavailable (%s)", exc.driver)


def ingest_file(
    job: IngestJob,
    path: Path,
    *,
    uri: str | None = None,
    fp: Fingerprint | None = None,
    etag: str | None = None,
    checked: FooterVerdict | None = None,
) -> IngestResult:
    """Ingest one local file, stored under `uri` (default: its absolute path). A caller that
    already hashed the file (a verified download) passes its fingerprint; one that already
    passed it through the footer gate with `job.footer` (the monitor's fetch) passes the
    verdict as `checked`, so the footer is not read twice."""
    uri = uri or str(path.resolve())
    problem = uri_problem(uri)
    if problem:  # e.g. a file name with undecodable bytes: refused, not mangled
        return IngestResult(shown(uri), "failed", reason=f"not stored: its name {problem}")
    if fp is None:
        try:
            fp = fingerprint(path)
        except ShardReadError as exc:
            return IngestResult(uri, "failed", reason=exc.reason)
    store = job.store
    sv = store.register(job.dataset, uri, fp.sha256, fp.size, etag=etag, mtime=fp.mtime)
    if sv.status == "done" and not job.force:
        return IngestResult(uri, "skipped", sv.id, sv.version)
    if sv.status == "quarantined" and not job.force:
        reason = "quarantined earlier, content unchanged (--force checks it again)"
        return IngestResult(uri, "quarantined", sv.id, sv.version, reason)
    if not store.claim(sv.id, job.owner, job.lease_seconds, force=job.force):
        return IngestResult(uri, "busy", sv.id, sv.version)
    twin = store.done_with_content(job.dataset, fp.sha256, other_than=uri)
    if twin is not None:  # a copy: not scanned (complete() enforces it under the lock)
        return _ended(job, sv, uri, f"identical content to {shown(twin)}", quarantine=True)
    batch_size = job.batch_size or DEFAULT_BATCH_SIZE
    cap = None
    if job.footer is not None:
        info = checked
        if info is None:
            try:
                info = check_footer(path, job.footer)
            except ShardRejected as exc:
                reason = f"refused before decoding: {exc.reason}"
                return _ended(job, sv, uri, reason, quarantine=True)
        cap = job.footer.max_uncompressed_bytes
        if isinstance(info, FooterInfo) and info.pages is not None:
            batch_size = batch_rows(info.pages, batch_size, cap)
    validator = job.validator
    features = FeatureCollector()  # compacted while the scan runs (validate/compact.py)
    drifts: list[SchemaDrift] = []
    try:
        metrics = scan_shard(
            path,
            job.profile,
            job.lexicon,
            batch_size=batch_size,
            workers=job.workers,
            progress=job.progress,
            on_features=features if validator is not None else None,
            domain_top_k=job.domain_top_k,
            on_drift=drifts.append,
            max_decoded_bytes=cap,
            blocklists=job.blocklists,
        )
    except DecodedTooLarge as exc:
        return _ended(job, sv, uri, f"refused while decoding: {exc.reason}", quarantine=True)
    except ShardReadError as exc:
        return _ended(job, sv, uri, exc.reason)
    except (pa.ArrowException, ValueError) as exc:
        reason = f"unreadable data ({type(exc).__name__}: {one_line(exc, limit=400)})"
        return _ended(job, sv, uri, reason)
    drift = drifts[0] if drifts else NO_DRIFT
    validation = None
    if validator is not None:
        validation = _validate(validator, features, job.dataset, sv.id, sv.version)
        validation = blame_drift(validation, drift)  # drift is not a data failure
    try:
        stored = store.complete(
            sv.id,
            job.owner,
            metrics,
            profile=job.profile.name,
            lexicon=job.lexicon.lexicon.name,
            run_id=job.run_id,
            validation=validation,
            alerts=job.alerts,
            before_commit=job.before_commit,
            schema_drift=drift,
        )
    except IdenticalContent as exc:  # a copy finished first by another worker
        if validator is not None and validation is not None:
            validator.discard(validation)
        return IngestResult(uri, "quarantined", sv.id, sv.version, exc.reason)
    except BaseException:
        if validator is not None and validation is not None:
            validator.discard(validation)  # no page for results that were never committed
        raise
    if validator is not None and validation is not None:
        if stored:
            validator.publish(validation)
        else:
            validator.discard(validation)
    outcome: Outcome = "done" if stored else "lost"
    return IngestResult(uri, outcome, sv.id, sv.version, None, validation, drift)


def _ended(
    job: IngestJob, sv: ShardVersion, uri: str, reason: str, *, quarantine: bool = False
) -> IngestResult:
    """Record a shard that could not be stored (failed, or quarantined: refused, or failed
    once its retry budget is spent), judging the `shard_failed` alert rules."""
    status, reason = job.store.fail(
        sv.id,
        job.owner,
        reason,
        quarantine=quarantine,
        max_attempts=job.max_attempts,
        alerts=job.alerts,
        run_id=job.run_id,
    )
    outcome: Outcome = "quarantined" if status == "quarantined" else "failed"
    return IngestResult(uri, outcome, sv.id, sv.version, reason)


def _validate(
    validator: ShardValidator,
    features: FeatureCollector,
    dataset: str,
    shard_id: int,
    version: int,
) -> ShardValidation:
    """Validate the collected features; a validator crash becomes one errored check."""
    table = features.table()  # the table holds the only references: conversion can free them
    try:
        return validator.validate(table, dataset, shard_id, version)
    except Exception as exc:  # GX failing on one shard must not stop the run
        return could_not_run(validator.suite, f"shard-{shard_id}.v{version}", exc)
