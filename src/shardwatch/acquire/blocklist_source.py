"""Blocklist source: a remove-list published at an http(s) URL, downloaded into the cache.

The download goes through acquire.download (the project's HTTP client: the allow-list, here
the list's own origin, the address guard, bounded retries, size caps, an atomic rename), so a
list is either complete on disk or absent. It is fetched again each time it is asked for:
nothing proves a cached copy is the publisher's current list.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import urlsplit

from shardwatch.acquire.download import download
from shardwatch.acquire.partial import url_digest
from shardwatch.acquire.policy import DownloadPolicy, origin_entry, policy_from
from shardwatch.settings.download import DownloadSettings

_FORMATS: Final = (".parquet", ".csv.gz", ".csv", ".txt.gz", ".gz")


def blocklist_policy(settings: DownloadSettings, url: str) -> DownloadPolicy:
    """The download policy for one list: `[download]`'s limits, the list's origin allowed."""
    return policy_from(settings, frozenset({origin_entry(url)}))


def cache_path(cache_dir: Path, name: str, url: str) -> Path:
    """Where the list `name` from `url` is kept: `<cache>/blocklists/<name>-<digest><ext>`,
    the extension (which tells the format) taken from the URL's path, `.txt` by default."""
    file_name = PurePosixPath(urlsplit(url).path).name.lower()
    suffix = next((s for s in _FORMATS if file_name.endswith(s)), ".txt")
    return cache_dir / "blocklists" / f"{name}-{url_digest(url)[:16]}{suffix}"


def fetch_blocklist(name: str, url: str, settings: DownloadSettings) -> Path:
    """Download the list `name` from `url` into the cache; its local path (raises
    DownloadError, whose message holds no query string or credential)."""
    dest = cache_path(settings.cache_dir, name, url)
    return download(url, dest, policy=blocklist_policy(settings, url)).path
