"""Ingest: fingerprint, register, claim, scan and store shards exactly once (no Prefect)."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa

from shardwatch.acquire.footer import FooterInfo, FooterLimits, ShardRejected, check_footer
from shardwatch.acquire.page_scan import batch_rows
from shardwatch.core.alerts import AlertPlan
from shardwatch.core.names import shown, uri_problem
from shardwatch.core.profiles import DatasetProfile
from shardwatch.core.schema import NO_DRIFT, SchemaDrift
from shardwatch.core.validation import ShardValidation, ShardValidator, blame_drift, could_not_run
from shardwatch.scan.domains import DEFAULT_TOP_K
from shardwatch.scan.engine import CompiledLexicon, ProgressCallback, scan_shard
from shardwatch.scan.reader import DEFAULT_BATCH_SIZE, DecodedTooLarge, ShardReadError, one_line
from shardwatch.store.errors import StoreUnavailable
from shardwatch.store.repository import ResultStore
from shardwatch.store.result_writes import BeforeCommit
from shardwatch.store.shard_versions import IdenticalContent, ShardVersion

Outcome = Literal["done", "skipped", "busy", "failed", "quarantined", "lost"]
_CHUNK = 1 << 20
log = logging.getLogger(__name__)
DEFAULT_FOOTER_LIMITS = FooterLimits()
DEFAULT_MAX_ATTEMPTS = 5  # tries per shard version before a failing one is quarantined


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a shard's content: SHA-256, size and modification time."""

    sha256: str
    size: int
    mtime: datetime


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


def fingerprint(path: Path) -> Fingerprint:
    """Stream the file once to hash it (raises ShardReadError if it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
            stat = os.fstat(fh.fileno())
    except FileNotFoundError:
        raise ShardReadError(str(path), "no such file") from None
    except IsADirectoryError:
        raise ShardReadError(str(path), "is a directory, not a parquet file") from None
    except OSError as exc:
        raise ShardReadError(str(path), f"cannot be read ({exc.strerror})") from None
    return Fingerprint(digest.hexdigest(), stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))


def worker_id() -> str:
    """A unique claim owner for this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class IngestJob:
    """What every shard of one ingest pass shares: where results go and how to scan."""

    store: ResultStore
    dataset: str
    profile: DatasetProfile
    lexicon: CompiledLexicon
    lease_seconds: float
    owner: str
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


def ingest_shards(
    paths: Iterable[Path],
    *,
    store: ResultStore,
    dataset: str,
    profile: DatasetProfile,
    lexicon: CompiledLexicon,
    lease_seconds: float,
    owner: str | None = None,
    force: bool = False,
    run_id: int | None = None,
    batch_size: int | None = None,
    workers: int = 2,
    progress: ProgressCallback | None = None,
    before_commit: BeforeCommit | None = None,
    on_result: Callable[[IngestResult], None] | None = None,
    validator: ShardValidator | None = None,
    alerts: AlertPlan | None = None,
    domain_top_k: int = DEFAULT_TOP_K,
    footer: FooterLimits | None = DEFAULT_FOOTER_LIMITS,
    max_attempts: int | None = None,
) -> list[IngestResult]:
    """Process each new or changed shard exactly once across concurrent processes.

    Identical content already done is skipped (unless `force`); a shard another process holds
    is reported `busy`; an unreadable shard is marked failed with its reason and the rest go on.
    A shard whose footer breaks the `footer` caps (or is not parquet) is quarantined with the
    reason before any of its data is decoded (decompression bombs, hostile schemas).
    With a `validator`, each shard's feature table (from the same streaming pass) is validated
    and the checks are written in the shard's single results transaction; its Data Docs page
    is rendered only after that commit. With `alerts`, alert rules are judged and outbox
    notices written in that same transaction (a relay sends them later).
    A shard whose columns drifted from the profile (schema.py) is still stored with every
    metric its usable columns allow; the drift is stored with it, and checks it kept from
    running are errored with the drift as their reason, never failed.
    A database that goes away mid-pass is waited for (store/repository.py); one that stays
    away fails the shard in flight and the rest of the pass, never more than once per shard.
    """
    job = IngestJob(
        store,
        dataset,
        profile,
        lexicon,
        lease_seconds,
        owner or worker_id(),
        force,
        run_id,
        batch_size,
        workers,
        progress,
        before_commit,
        validator,
        alerts,
        domain_top_k,
        footer,
        max_attempts,
    )
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
    return results


def ingest_file(
    job: IngestJob,
    path: Path,
    *,
    uri: str | None = None,
    fp: Fingerprint | None = None,
    etag: str | None = None,
) -> IngestResult:
    """Ingest one local file, stored under `uri` (default: its absolute path). A caller that
    already hashed the file (a verified download) passes its fingerprint."""
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
        try:
            info = check_footer(path, job.footer)
        except ShardRejected as exc:
            return _ended(job, sv, uri, f"refused before decoding: {exc.reason}", quarantine=True)
        cap = job.footer.max_uncompressed_bytes
        if isinstance(info, FooterInfo) and info.pages is not None:
            batch_size = batch_rows(info.pages, batch_size, cap)
    validator = job.validator
    feature_batches: list[pa.RecordBatch] = []
    drifts: list[SchemaDrift] = []
    try:
        metrics = scan_shard(
            path,
            job.profile,
            job.lexicon,
            batch_size=batch_size,
            workers=job.workers,
            progress=job.progress,
            on_features=feature_batches.append if validator is not None else None,
            domain_top_k=job.domain_top_k,
            on_drift=drifts.append,
            max_decoded_bytes=cap,
        )
    except DecodedTooLarge as exc:
        return _ended(job, sv, uri, f"refused while decoding: {exc.reason}", quarantine=True)
    except ShardReadError as exc:
        return _ended(job, sv, uri, exc.reason)
    except (pa.ArrowException, ValueError) as exc:
        reason = f"unreadable data ({type(exc).__name__}: {one_line(exc)})"
        return _ended(job, sv, uri, reason)
    drift = drifts[0] if drifts else NO_DRIFT
    validation = None
    if validator is not None:
        validation = _validate(validator, feature_batches, job.dataset, sv.id, sv.version)
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
    batches: list[pa.RecordBatch],
    dataset: str,
    shard_id: int,
    version: int,
) -> ShardValidation:
    """Validate the collected features; a validator crash becomes one errored check."""
    table = pa.Table.from_batches(batches)
    batches.clear()  # the table holds the only references: conversion can free them
    try:
        return validator.validate(table, dataset, shard_id, version)
    except Exception as exc:  # GX failing on one shard must not stop the run
        return could_not_run(validator.suite, f"shard-{shard_id}.v{version}", exc)
