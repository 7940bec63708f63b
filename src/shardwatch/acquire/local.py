"""Local source: the parquet files of a folder or a glob, read in place (no copy, no network)."""

from __future__ import annotations

import builtins
import glob
import hashlib
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from shardwatch.acquire.sources import Fetched, RemoteShard, SourceError, is_parquet
from shardwatch.core.errors import first_line

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_GLOB_MAGIC = re.compile(r"[*?[]")


class LocalSource:
    """Local parquet files: a folder's `*.parquet` (not recursive) or a glob (`**` allowed)."""

    def __init__(self, name: str, pattern: str) -> None:
        self.name = name
        self.pattern = pattern

    def __repr__(self) -> str:
        return f"LocalSource(name={self.name!r}, pattern={self.pattern!r})"

    def list(self) -> builtins.list[RemoteShard]:
        """Size and mtime of each file (no checksum: that means reading it; fetch does)."""
        expanded = os.path.expanduser(self.pattern)
        base = Path(expanded)
        try:
            if base.is_dir():
                files = [p for p in base.iterdir() if is_parquet(p.name) and p.is_file()]
            elif base.is_file():
                files = [base]
            elif _GLOB_MAGIC.search(expanded):
                files = [Path(p) for p in glob.glob(expanded, recursive=True)]
                files = [p for p in files if p.is_file()]
            else:
                raise SourceError(self.name, f"no such folder or file: {self.pattern}")
            shards = [self._shard(p) for p in files]
        except OSError as exc:
            raise SourceError(
                self.name, f"cannot list {self.pattern}: {first_line(exc, limit=300)}"
            ) from None
        shards.sort(key=lambda s: s.uri)
        logger.debug("source %r: %d local shards", self.name, len(shards))
        return shards

    def _shard(self, path: Path) -> RemoteShard:
        absolute = os.path.abspath(path)
        st = os.stat(absolute)
        return RemoteShard(
            source=self.name,
            uri=absolute,
            name=os.path.basename(absolute),
            size=st.st_size,
            etag=None,
            sha256=None,
            mtime=_from_ns(st.st_mtime_ns),
        )

    def fetch(self, shard: RemoteShard, cache: Path) -> Fetched:
        """The file itself (no copy), hashed by streaming it once."""
        path = Path(shard.uri)
        try:
            with path.open("rb") as fh:
                digest = hashlib.sha256()
                size = 0
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise SourceError(
                self.name, f"cannot read {shard.uri}: {first_line(exc, limit=300)}"
            ) from None
        if shard.size is not None and size != shard.size:
            raise SourceError(
                self.name, f"{shard.uri} changed since listing: {size} bytes, listed {shard.size}"
            )
        return Fetched(path=path, size=size, sha256=digest.hexdigest())


def _from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
        microsecond=(ns // 1000) % 1_000_000
    )
