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

from shardwatch.engine import CompiledLexicon, ProgressCallback, scan_shard
from shardwatch.profiles import DatasetProfile
from shardwatch.reader import DEFAULT_BATCH_SIZE, ShardReadError
from shardwatch.store.repository import BeforeCommit, ResultStore

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
) -> list[IngestResult]:
    """Process each new or changed shard exactly once across concurrent processes.

    Identical content already done is skipped (unless `force`); a shard another process holds
    is reported `busy`; an unreadable shard is marked failed with its reason and the rest go on.
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
    try:
        metrics = scan_shard(
            path,
            profile,
            lexicon,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            workers=workers,
            progress=progress,
        )
    except ShardReadError as exc:
        store.fail(sv.id, owner, exc.reason)
        return IngestResult(uri, "failed", sv.id, sv.version, exc.reason)
    except (pa.ArrowException, ValueError) as exc:
        reason = f"unreadable data ({type(exc).__name__}: {exc})"
        store.fail(sv.id, owner, reason)
        return IngestResult(uri, "failed", sv.id, sv.version, reason)
    stored = store.complete(
        sv.id,
        owner,
        metrics,
        profile=profile.name,
        lexicon=lexicon.lexicon.name,
        run_id=run_id,
        before_commit=before_commit,
    )
    return IngestResult(uri, "done" if stored else "lost", sv.id, sv.version)
