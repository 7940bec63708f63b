"""Fingerprint: what identifies a shard's content (SHA-256, size, modification time), read
in one streaming pass over the file. `HashingReader` is that pass's SHA-256, reusable by any
reader that must hash exactly the bytes it parses (blocklist_read.py)."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from shardwatch.scan.reader import ShardReadError

_CHUNK = 1 << 20


class HashingReader(io.RawIOBase):
    """A binary reader over `raw` that feeds every byte it reads into a SHA-256: `drain`
    reads the rest and gives the hex digest of the whole stream."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._digest = hashlib.sha256()
        self.consumed = 0  # bytes read so far

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)
        self.consumed += len(data)
        return data

    def readinto(self, buffer: memoryview | bytearray, /) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> str:
        """Read to the end; the SHA-256 hex of every byte of the stream."""
        while self.read(_CHUNK):
            pass
        return self._digest.hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a shard's content: SHA-256, size and modification time."""

    sha256: str
    size: int
    mtime: datetime


def fingerprint(path: Path) -> Fingerprint:
    """Stream the file once to hash it (raises ShardReadError if it cannot be read)."""
    try:
        with path.open("rb") as fh:
            digest = HashingReader(fh).drain()
            stat = os.fstat(fh.fileno())
    except FileNotFoundError:
        raise ShardReadError(str(path), "no such file") from None
    except IsADirectoryError:
        raise ShardReadError(str(path), "is a directory, not a parquet file") from None
    except OSError as exc:
        raise ShardReadError(str(path), f"cannot be read ({exc.strerror})") from None
    return Fingerprint(digest, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
