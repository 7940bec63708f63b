"""Object store source: the parquet files under an s3://, gs:// or file:// prefix (pyarrow.fs).

Lists recursively (size, mtime); `fetch` streams an object into the cache, hashing it,
checks its size and renames it into place atomically, with a `<file>.sha256` sidecar so a
later fetch re-uses the cache file while its size and mtime match the listing.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shardwatch.acquire.sources import (
    SHA256,
    Fetched,
    RemoteShard,
    SourceError,
    cache_name,
    is_parquet,
)
from shardwatch.core.errors import first_line

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ObjectStoreSource:
    """Parquet files under an object store prefix: s3://bucket/prefix, gs://..., file:///dir.

    Lists recursively through `pyarrow.fs` (size, mtime). `fetch` streams the object into the
    cache, hashing it as it goes, checks the size, and renames it into place atomically, then
    writes `<file>.sha256`; a later fetch re-uses the cache file while its size and mtime (set
    to the object's) match the listing and the sidecar holds its hash. Paths are taken
    literally (no percent-decoding), like S3 keys.
    """

    _SCHEMES = ("s3", "gs", "file")

    def __init__(
        self,
        name: str,
        uri: str,
        *,
        region: str | None = None,
        endpoint_override: str | None = None,
        anonymous: bool = False,
    ) -> None:
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme not in self._SCHEMES:
            raise ValueError(f"object store URI must be s3://, gs:// or file:///: {uri!r}")
        if scheme == "file":
            if not rest.startswith("/"):
                raise ValueError(f"file URI must be absolute (file:///dir): {uri!r}")
            base = "/" + rest.strip("/")
        else:
            base = rest.strip("/")
            if not base or rest.startswith("/"):
                raise ValueError(f"object store URI needs a bucket: {uri!r}")
        self.name = name
        self.uri = uri
        self.scheme = scheme
        self.base = base
        self.region = region
        self.endpoint_override = endpoint_override
        self.anonymous = anonymous
        self._fs: Any = None

    def __repr__(self) -> str:
        return f"ObjectStoreSource(name={self.name!r}, uri={self.uri!r})"

    def _filesystem(self) -> Any:
        if self._fs is None:
            from pyarrow import fs as pa_fs

            if self.scheme == "s3":
                self._fs = pa_fs.S3FileSystem(
                    region=self.region,
                    endpoint_override=self.endpoint_override,
                    anonymous=self.anonymous,
                )
            elif self.scheme == "gs":
                self._fs = pa_fs.GcsFileSystem(
                    anonymous=self.anonymous, endpoint_override=self.endpoint_override
                )
            else:
                self._fs = pa_fs.LocalFileSystem()
        return self._fs

    def _uri(self, path: str) -> str:
        return f"{self.scheme}://{path}"

    def _path(self, uri: str) -> str:
        prefix = f"{self.scheme}://"
        path = uri[len(prefix) :] if uri.startswith(prefix) else ""
        under = path.startswith(self.base.rstrip("/") + "/")
        if not under or any(s in (".", "..") for s in path.split("/")):
            raise SourceError(self.name, f"{uri!r} is not under {self.uri}")
        return path

    def list(self) -> builtins.list[RemoteShard]:
        """Every `*.parquet` object under the prefix (recursive), with size and mtime."""
        from pyarrow import fs as pa_fs

        try:
            infos = self._filesystem().get_file_info(pa_fs.FileSelector(self.base, recursive=True))
        except (OSError, ValueError) as exc:
            raise SourceError(
                self.name, f"cannot list {self.uri}: {first_line(exc, limit=300)}"
            ) from None
        shards = [
            RemoteShard(
                source=self.name,
                uri=self._uri(info.path),
                name=info.base_name,
                size=info.size,
                etag=None,
                sha256=None,
                mtime=_utc(info.mtime),
            )
            for info in infos
            if info.type == pa_fs.FileType.File and is_parquet(info.base_name)
        ]
        shards.sort(key=lambda s: s.uri)
        logger.debug("source %r: %d objects under %s", self.name, len(shards), self.uri)
        return shards

    def fetch(self, shard: RemoteShard, cache: Path) -> Fetched:
        """The cached copy if still valid, else stream the object into the cache."""
        path = self._path(shard.uri)
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / cache_name(shard)
        sidecar = target.with_name(target.name + ".sha256")
        reused = _reuse(target, sidecar, shard)
        if reused is not None:
            logger.debug("source %r: cache hit for %s", self.name, shard.uri)
            return reused
        sidecar.unlink(missing_ok=True)
        fd, part_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=cache)
        part = Path(part_name)
        try:
            with os.fdopen(fd, "wb") as out:
                size, sha256 = self._copy(shard, path, out)
            if shard.mtime is not None:
                ns = _ns(shard.mtime)
                os.utime(part, ns=(ns, ns))
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        _write_atomic(sidecar, f"{sha256}\n")
        logger.debug("source %r: fetched %s (%d bytes)", self.name, shard.uri, size)
        return Fetched(path=target, size=size, sha256=sha256)

    def _copy(self, shard: RemoteShard, path: str, out: Any) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        try:
            with self._filesystem().open_input_stream(path) as stream:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if shard.size is not None and size > shard.size:
                        break
                    digest.update(chunk)
                    out.write(chunk)
        except (OSError, ValueError) as exc:
            raise SourceError(
                self.name, f"cannot read {shard.uri}: {first_line(exc, limit=300)}"
            ) from None
        if shard.size is not None and size != shard.size:
            got = f"{size}" if size <= shard.size else f"more than {shard.size}"
            raise SourceError(
                self.name, f"{shard.uri}: size mismatch: read {got} bytes, listed {shard.size}"
            )
        return size, digest.hexdigest()


def _reuse(target: Path, sidecar: Path, shard: RemoteShard) -> Fetched | None:
    """The cache file, if its size (and mtime) match the listing and the sidecar is sound."""
    if shard.size is None:
        return None
    try:
        st = target.stat()
        recorded = sidecar.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if st.st_size != shard.size or not SHA256.match(recorded):
        return None
    if shard.mtime is not None and st.st_mtime_ns // 1000 != _ns(shard.mtime) // 1000:
        return None
    return Fetched(path=target, size=st.st_size, sha256=recorded.lower())


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ns(value: datetime) -> int:
    """Nanoseconds since the epoch, exact to the microsecond (no float rounding)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
