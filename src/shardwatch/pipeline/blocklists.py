"""Blocklists: the configured remove-lists (`[blocklists.<name>]`), compiled for the engine.

A list is compiled once per process and content version: `compiled_blocklists` keeps each
compiled list, keyed by its name, kind, severity and the SHA-256 of the file's bytes, so a
replaced file is compiled again and an unchanged one is not, whatever its modification time
(a list downloaded again each pass is a new file with the same content). An http(s) list is
downloaded into the cache first (acquire/blocklist_source.py) under the download policy,
each time it is asked for, except that `compiled_blocklists(..., hand_over=True)` (the
`run` command's check before a pass) leaves its download to the next call in this process,
the pass's: one download per pass. Any problem (a bad list, an unreadable file, a failed
download) is a `ConfigError` naming the list: nothing is scanned against an incomplete set
of lists.
"""

from __future__ import annotations

import threading
from pathlib import Path

from shardwatch.acquire.blocklist_source import fetch_blocklist
from shardwatch.acquire.policy import DownloadError
from shardwatch.scan.blocklists import (
    BlocklistError,
    CompiledBlocklist,
    compile_blocklist,
    list_version,
)
from shardwatch.settings.base import ConfigError
from shardwatch.settings.blocklists import BlocklistSpec
from shardwatch.settings.config import Settings

_Key = tuple[str, str, str, str]  # name, kind, severity, content SHA-256
_COMPILED: dict[str, tuple[_Key, CompiledBlocklist]] = {}  # by list name: its latest version
_HANDED: dict[tuple[str, str], Path] = {}  # (name, URL): a download left for the next call
_LOCK = threading.Lock()


def compiled_blocklists(
    settings: Settings, *, hand_over: bool = False
) -> tuple[CompiledBlocklist, ...]:
    """Every configured list, compiled, in name order (raises ConfigError naming a list).
    `hand_over`: the next call in this process uses this call's downloads (once)."""
    return tuple(
        _compiled(name, spec, _local_path(name, spec, settings, hand_over))
        for name, spec in sorted(settings.blocklists.items())
    )


def _local_path(name: str, spec: BlocklistSpec, settings: Settings, hand_over: bool) -> Path:
    if not spec.remote:
        return Path(spec.path).expanduser()
    with _LOCK:
        handed = _HANDED.pop((name, spec.path), None)
    if handed is None or not handed.is_file():
        try:
            handed = fetch_blocklist(name, spec.path, settings.download)
        except DownloadError as exc:
            raise ConfigError(f"blocklist {name!r}: cannot be downloaded ({exc})") from None
    if hand_over:
        with _LOCK:
            _HANDED[(name, spec.path)] = handed
    return handed


def _compiled(name: str, spec: BlocklistSpec, path: Path) -> CompiledBlocklist:
    try:
        version = list_version(name, path)  # a regular file only: never blocks
        key: _Key = (name, spec.kind, spec.severity, version)
        with _LOCK:  # one compilation at a time: a 10M-entry list takes a few hundred MB
            found = _COMPILED.get(name)
            if found is not None and found[0] == key:
                return found[1]
            compiled = compile_blocklist(name, spec.kind, path, spec.severity)
            # Keyed by the version compiled (read in the pass that parsed the entries).
            _COMPILED[name] = ((name, spec.kind, spec.severity, compiled.version), compiled)
            return compiled
    except BlocklistError as exc:
        raise ConfigError(str(exc)) from None
