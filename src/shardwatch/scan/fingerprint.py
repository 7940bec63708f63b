"""Fingerprint: what identifies a shard's content (SHA-256, size, modification time), read
in one streaming pass over the file."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shardwatch.scan.reader import ShardReadError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a shard's content: SHA-256, size and modification time."""

    sha256: str
    size: int
    mtime: datetime


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
