"""Ingest: fingerprint, register, claim, scan and store shards exactly once (no Prefect)."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa

from shardwatch.alerts import AlertPlan
from shardwatch.engine import CompiledLexicon, ProgressCallback, scan_shard
from shardwatch.profiles import DatasetProfile
from shardwatch.reader import DEFAULT_BATCH_SIZE, ShardReadError
from shardwatch.store.repository import BeforeCommit, ResultStore
from shardwatch.validation import ShardValidation, ShardValidator, could_not_run

Outcome = Literal["done", "skipped", "busy", "failed", "lost"]
_CHUNK = 1 << 20


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
) -> list[IngestResult]:
    """Process each new or changed shard exactly once across concurrent processes.

    Identical content already done is skipped (unless `force`); a shard another process holds
    is reported `busy`; an unreadable shard is marked failed with its reason and the rest go on.
    With a `validator`, each shard's feature table (from the same streaming pass) is validated
    and the checks are written in the shard's single results transaction; its Data Docs page
    is rendered only after that commit. With `alerts`, alert rules are judged and outbox
    notices written in that same transaction (a relay sends them later).
    """
    owner = owner or worker_id()
    results = []
    for path in paths:
        result = _ingest_one(
            path,
            store,
            dataset,
            profile,
            lexicon,
            lease_seconds,
            owner,
            force,
            run_id,
            batch_size,
            workers,
            progress,
            before_commit,
            validator,
            alerts,
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _ingest_one(
    path: Path,
    store: ResultStore,
    dataset: str,
    profile: DatasetProfile,
    lexicon: CompiledLexicon,
    lease_seconds: float,
    owner: str,
    force: bool,
    run_id: int | None,
    batch_size: int | None,
    workers: int,
    progress: ProgressCallback | None,
    before_commit: BeforeCommit | None,
    validator: ShardValidator | None,
    alerts: AlertPlan | None,
) -> IngestResult:
    uri = str(path.resolve())
    try:
        fp = fingerprint(path)
    except ShardReadError as exc:
        return IngestResult(uri, "failed", reason=exc.reason)
    sv = store.register(dataset, uri, fp.sha256, fp.size, mtime=fp.mtime)
    if sv.status == "done" and not force:
        return IngestResult(uri, "skipped", sv.id, sv.version)
    if not store.claim(sv.id, owner, lease_seconds, force=force):
        return IngestResult(uri, "busy", sv.id, sv.version)
    feature_batches: list[pa.RecordBatch] = []
    try:
        metrics = scan_shard(
            path,
            profile,
            lexicon,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            workers=workers,
            progress=progress,
            on_features=feature_batches.append if validator is not None else None,
        )
    except ShardReadError as exc:
        store.fail(sv.id, owner, exc.reason)
        return IngestResult(uri, "failed", sv.id, sv.version, exc.reason)
    except (pa.ArrowException, ValueError) as exc:
        reason = f"unreadable data ({type(exc).__name__}: {exc})"
        store.fail(sv.id, owner, reason)
        return IngestResult(uri, "failed", sv.id, sv.version, reason)
    validation = None
    if validator is not None:
        validation = _validate(validator, feature_batches, dataset, sv.id, sv.version)
    try:
        stored = store.complete(
            sv.id,
            owner,
            metrics,
            profile=profile.name,
            lexicon=lexicon.lexicon.name,
            run_id=run_id,
            validation=validation,
            alerts=alerts,
            before_commit=before_commit,
        )
    except BaseException:
        if validator is not None and validation is not None:
            validator.discard(validation)  # no page for results that were never committed
        raise
    if validator is not None and validation is not None:
        if stored:
            validator.publish(validation)
        else:
            validator.discard(validation)
    return IngestResult(uri, "done" if stored else "lost", sv.id, sv.version, None, validation)


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
