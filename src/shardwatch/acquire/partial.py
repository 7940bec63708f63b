"""Partial downloads and the cache they live in: the validator a resume needs, the budget the
cache keeps, and the collection of partial files no shard owns any more.

A download streams into `<dest>.part`. Beside it, `<dest>.part.meta` (JSON, written
atomically: a temporary file, fsync, `os.replace`) records what the bytes are a prefix of:
a hash of the URL, the server's validator (a strong ETag, else Last-Modified) and the total
size the server declared. A resume sends `Range` with `If-Range: <validator>`, and is only
made when the meta is present, well-formed, for the same URL and holds a validator: a part
without one is deleted and the download starts from zero (no `Range`). The meta file is
untrusted on reading (size, types, lengths and characters are checked); anything odd means
"no validator".

The cache budget (`download.cache_max_bytes`) counts every file in the cache folder, partial
ones included. Orphaned partial files (no shard of the current listing owns them, or older
than `download.partial_max_age_hours`) are removed at the start of a pass by `collect`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

PART = ".part"
META = ".part.meta"
_META_LIMIT = 4096  # bytes: a meta file larger than this is not ours
_VALUE = re.compile(r'^(?:W/)?"[\x21\x23-\x7e]{0,190}"$')  # an ETag (visible ASCII)
_DATE = re.compile(r"^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$")
# A cache file the downloads write: `<16 hex>-<sanitized name>.parquet` (sources.cache_name).
_OURS = re.compile(r"^[0-9a-f]{16}-[A-Za-z0-9._-]+\.parquet\.part(?:\.meta)?$")
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass(frozen=True)
class Validator:
    """What a server says identifies its current bytes: an ETag or a Last-Modified date."""

    kind: Literal["etag", "last-modified"]
    value: str

    @property
    def strong(self) -> bool:
        """May it be sent in If-Range? (A weak ETag may not; a date may.)"""
        return self.kind == "last-modified" or not self.value.startswith("W/")

    def text(self) -> str:
        """How it is stored in a shard's `etag` column: an ETag as the server sent it (it
        starts with `"` or `W/"`), a date as `last-modified: <date>`."""
        return self.value if self.kind == "etag" else f"last-modified: {self.value}"

    @staticmethod
    def parse(text: str | None) -> Validator | None:
        """The inverse of `text` (None for anything else, e.g. a Hugging Face oid)."""
        if text is None:
            return None
        if text.startswith("last-modified: "):
            return _make("last-modified", text.removeprefix("last-modified: "))
        return _make("etag", text)

    def conditional(self) -> dict[str, str]:
        """The request headers asking "has it changed since?" (304 if not)."""
        if self.kind == "etag":
            return {"If-None-Match": self.value}
        return {"If-Modified-Since": self.value}

    def seen_in(self, headers: Mapping[str, str]) -> bool:
        """Does a response carry this same validator? (An ETag compared weakly.)"""
        got = validators(headers)
        mine = self.value.removeprefix("W/")
        return any(v.kind == self.kind and v.value.removeprefix("W/") == mine for v in got)


def _make(kind: Literal["etag", "last-modified"], value: str) -> Validator | None:
    value = value.strip()
    pattern = _VALUE if kind == "etag" else _DATE
    return Validator(kind, value) if pattern.match(value) else None


def validators(headers: Mapping[str, str]) -> list[Validator]:
    """The well-formed ETag and Last-Modified of a response, in that order."""
    found = [
        _make("etag", headers.get("ETag") or ""),
        _make("last-modified", headers.get("Last-Modified") or ""),
    ]
    return [v for v in found if v is not None]


def resume_validator(headers: Mapping[str, str]) -> Validator | None:
    """The validator a later resume may send in If-Range: a strong ETag, else Last-Modified."""
    return next((v for v in validators(headers) if v.strong), None)


def change_validator(headers: Mapping[str, str]) -> Validator | None:
    """The validator a later pass asks "changed?" with: an ETag (even weak), else the date."""
    found = validators(headers)
    return found[0] if found else None


# ----------------------------------------------------------------------------- meta file
@dataclass(frozen=True)
class PartMeta:
    """What `<dest>.part` is a prefix of. The URL is kept as a hash (it may be signed)."""

    url_hash: str
    validator: Validator
    total: int | None

    @staticmethod
    def of(url: str, validator: Validator, total: int | None) -> PartMeta:
        return PartMeta(url_digest(url), validator, total)


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".meta")


def read_meta(part: Path) -> PartMeta | None:
    """The meta beside `part`, or None when absent, too large, malformed or odd in any way."""
    try:
        with meta_path(part).open("rb") as fh:
            raw = fh.read(_META_LIMIT + 1)
    except OSError:
        return None
    if len(raw) > _META_LIMIT:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("version") != 1:
        return None
    url_hash, kind, value, total = (data.get(k) for k in ("url", "kind", "value", "total"))
    if not isinstance(url_hash, str) or not re.fullmatch(r"[0-9a-f]{64}", url_hash):
        return None
    if kind not in ("etag", "last-modified") or not isinstance(value, str):
        return None
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        return None
    validator = _make(kind, value)
    if validator is None or not validator.strong:
        return None
    return PartMeta(url_hash, validator, total)


def write_meta(part: Path, meta: PartMeta) -> None:
    """Write the meta atomically (raises OSError, e.g. ENOSPC)."""
    body = json.dumps(
        {
            "version": 1,
            "url": meta.url_hash,
            "kind": meta.validator.kind,
            "value": meta.validator.value,
            "total": meta.total,
        }
    ).encode()
    target = meta_path(part)
    fd, tmp = tempfile.mkstemp(prefix=".meta-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def drop(part: Path) -> None:
    """Remove a partial file and its meta."""
    for path in (part, meta_path(part)):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------- cache
def usage(folder: Path, *, besides: Path | None = None) -> int:
    """Bytes held by the files directly in `folder` (partial ones included), not counting
    `besides` and its meta."""
    skip = {besides.name, meta_path(besides).name} if besides is not None else set()
    total = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name in skip:
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def collect(folder: Path, owners: Iterable[str] | None, max_age: float) -> list[str]:
    """Remove partial files (and metas) in `folder` that no name in `owners` (cache file
    names of the current listing; None: unknown, age only) owns, or older than `max_age`
    seconds. Only files named like the downloads' are touched. Returns the names removed."""
    keep = None if owners is None else {name + PART for name in owners}
    now = time.time()
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not _OURS.match(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        part_name = entry.name.removesuffix(".meta")
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > max_age
        except OSError:
            continue
        if old or (keep is not None and part_name not in keep):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    if removed:
        logger.info("cache: removed %d orphaned partial file(s)", len(removed))
    return removed
