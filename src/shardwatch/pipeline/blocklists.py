"""Blocklists: the configured remove-lists (`[blocklists.<name>]`), compiled for the engine.

A list is compiled once per process and file version: `compiled_blocklists` keeps each
compiled list, keyed by its name, kind, severity, path, size and modification time, so a
replaced local file is compiled again and an unchanged one is not. An http(s) list is
downloaded into the cache first (acquire/blocklist_source.py) under the download policy. Any
problem (a bad list, an unreadable file, a failed download) is a `ConfigError` naming the
list: nothing is scanned against an incomplete set of lists.
"""

from __future__ import annotations

import threading
from pathlib import Path

from shardwatch.acquire.blocklist_source import fetch_blocklist
from shardwatch.acquire.policy import DownloadError
from shardwatch.scan.blocklists import BlocklistError, CompiledBlocklist, compile_blocklist
from shardwatch.settings.base import ConfigError
from shardwatch.settings.blocklists import BlocklistSpec
from shardwatch.settings.config import Settings

_Key = tuple[str, str, str, str, int, int]
_COMPILED: dict[str, tuple[_Key, CompiledBlocklist]] = {}  # by list name: its latest version
_LOCK = threading.Lock()


def compiled_blocklists(settings: Settings) -> tuple[CompiledBlocklist, ...]:
    """Every configured list, compiled, in name order (raises ConfigError naming a list)."""
    return tuple(
        _compiled(name, spec, _local_path(name, spec, settings))
        for name, spec in sorted(settings.blocklists.items())
    )


def _local_path(name: str, spec: BlocklistSpec, settings: Settings) -> Path:
    if not spec.remote:
        return Path(spec.path).expanduser()
    try:
        return fetch_blocklist(name, spec.path, settings.download)
    except DownloadError as exc:
        raise ConfigError(f"blocklist {name!r}: cannot be downloaded ({exc})") from None


def _compiled(name: str, spec: BlocklistSpec, path: Path) -> CompiledBlocklist:
    try:
        stat = path.stat()
        key: _Key = (name, spec.kind, spec.severity, str(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = (name, spec.kind, spec.severity, str(path), -1, -1)  # compile reports it
    with _LOCK:  # one compilation at a time: a 10M-entry list takes a few hundred MB
        found = _COMPILED.get(name)
        if found is not None and found[0] == key:
            return found[1]
        try:
            compiled = compile_blocklist(name, spec.kind, path, spec.severity)
        except BlocklistError as exc:
            raise ConfigError(str(exc)) from None
        _COMPILED[name] = (key, compiled)
        return compiled
