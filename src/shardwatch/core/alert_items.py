"""Alert items: what one alert notice says, as the store keeps it and a channel receives it.

An item carries rule names, numbers, names and links only, never raw captions. The store
builds items from its alert state (`scope_label` names a stored scope key; `docs_relative`
keeps a Data Docs link relative to the site), and the alerting channels format and send them.
Local paths never leave the machine: a local shard is named by its file name, a remote one by
its URL without credentials, query or fragment (`shard_label`), and absolute paths inside
texts are cut to their last component (`strip_local_paths`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from shardwatch.core.alerts import Severity

Kind = Literal["breach", "reminder", "recovery", "test"]


@dataclass(frozen=True)
class AlertItem:
    """One breach (or recovery) inside a message: what, where, observed vs threshold."""

    rule: str
    severity: Severity
    dataset: str
    scope: str  # `shard <file name or URL>` or `dataset (...)`, and the term or domain
    observed: float | int | str | None
    threshold: float | int | str | None
    kind: Kind = "breach"
    run_id: int | None = None
    link: str | None = None  # Data Docs: a site-relative path when stored, a URL when sent
    detail: str | None = None  # e.g. "12 of 351" or the failing checks' names
    report: str | None = None  # the run's report: `run-N.html` when stored, a URL when sent


# ------------------------------------------------------------------------ local paths

_LOCAL_PATH = re.compile(
    r"(?:file://[^\s'\"<>|]*"  # file:///x/y
    r"|(?<![\w.~:/\\-])~?/(?:[^\s/'\"<>|]+/)+[^\s/'\"<>|,;)]*"  # /x/y, ~/x/y
    r"|(?<![\w])[A-Za-z]:\\(?:[^\s\\'\"<>|]+\\)*[^\s\\'\"<>|,;)]*)"  # C:\x\y
)


def _last_part(path: str) -> str:
    parts = [p for p in re.split(r"[/\\]", path) if p and p not in ("file:", "~")]
    return parts[-1] if parts else ""


def strip_local_paths(text: str) -> str:
    """`text` with every absolute local path (`/x/y/z.parquet`, `~/x`, `file:///x`,
    `C:\\x\\y`) cut to its last component (`z.parquet`); URLs are left as they are."""
    return _LOCAL_PATH.sub(lambda m: _last_part(m[0]), text)


def shard_label(uri: str) -> str:
    """How a shard is named in a message: a local path or file URI by its file name; a
    remote URI (http, s3, gs, ...) without credentials, query or fragment."""
    if uri.startswith("file:") or uri.startswith(("/", "~")):
        return PurePosixPath(uri.removeprefix("file://")).name or uri.strip("/")
    if re.match(r"^[A-Za-z]:[\\/]", uri):
        return PureWindowsPath(uri).name
    parts = urlsplit(uri)
    if parts.scheme and parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return strip_local_paths(uri)


def scope_label(key: str) -> str:
    """A stored alert scope key (`dataset`, `shard:<uri>`, `|term:<t>`, `|domain:<d>`) as
    a message shows it: the shard by its `shard_label`."""
    level, kind, subject = _split_scope(key)
    if level == "dataset":
        where = "dataset (latest shard versions)"
    elif level.startswith("shard:"):
        where = "shard " + shard_label(level.removeprefix("shard:"))
    else:
        where = level  # sha256:<hex> of a very long key
    return where + (f", {kind} {subject!r}" if subject is not None else "")


def _split_scope(key: str) -> tuple[str, str, str | None]:
    for kind in ("term", "domain"):
        level, sep, subject = key.partition(f"|{kind}:")
        if sep:
            return level, kind, subject
    return key, "", None


# ------------------------------------------------------------------------ stored links


def docs_relative(page: str | Path | None, index: str | Path | None) -> str | None:
    """`page`'s path inside the Data Docs site whose index is `index` (POSIX, relative),
    or None when either is unknown or the page lies outside the site."""
    if page is None or index is None:
        return None
    try:
        rel = Path(page).resolve().relative_to(Path(index).resolve().parent)
    except (ValueError, OSError):
        return None
    return rel.as_posix() if rel.parts else None
