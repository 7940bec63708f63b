"""The store's view of shard versions: what discovery compares and ingest claims (ORM rows
never leave the store)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from shardwatch.store import models as t


@dataclass(frozen=True)
class ShardVersion:
    """One stored version of a shard (ORM rows never leave the store)."""

    id: int
    dataset: str
    uri: str
    content_sha256: str
    version: int
    status: str
    attempts: int


@dataclass(frozen=True)
class StoredShard:
    """The current (most recently seen) version of a URI, as discovery compares it."""

    uri: str
    version: int
    status: str
    content_sha256: str
    size_bytes: int | None
    etag: str | None
    mtime: datetime | None
    reason: str | None

    @property
    def fetched(self) -> bool:
        """False for a version recorded before its content could be fetched."""
        return not self.content_sha256.startswith(UNFETCHED)


# The content hash of a version whose bytes never arrived (a failed download): derived from
# what the source listed, so the next attempt finds the same row; always 64 characters.
UNFETCHED = "unfetched-"


def unfetched_hash(uri: str, size: int | None, etag: str | None) -> str:
    digest = hashlib.sha256(f"{uri}|{size}|{etag}".encode()).hexdigest()
    return UNFETCHED + digest[: 64 - len(UNFETCHED)]


def version_of(row: t.Shard, dataset: str) -> ShardVersion:
    return ShardVersion(
        row.id, dataset, row.uri, row.content_sha256, row.version, row.status, row.attempts
    )


class IdenticalContent(Exception):
    """The shard's content is already counted under another URI; `reason` names it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
