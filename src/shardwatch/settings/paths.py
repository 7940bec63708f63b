"""Config paths: relative paths of a config file resolve against its folder, and everything
shardwatch writes defaults to below one folder, `state_dir`.

`state_dir` (default `.shardwatch`): the store `<state_dir>/shardwatch.sqlite`, the download
cache `<state_dir>/cache`, the GX project `<state_dir>/gx`, Data Docs `<state_dir>/docs`,
HTML reports `<state_dir>/reports` and a file channel's `<state_dir>/alerts.jsonl`. With a
config file, the default is `.shardwatch` beside the file; without one, in the current
directory. Values from the environment or the command line stay relative to the current
directory.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

DEFAULT_STATE_DIR = Path(".shardwatch")
SQLITE_PREFIX = "sqlite:///"

# (section, key) of the path settings a config file may give relatively ("" = top level).
_PATHS = (
    ("", "state_dir"),
    ("validation", "suites_dir"),
    ("validation", "gx_dir"),
    ("validation", "docs_dir"),
    ("download", "cache_dir"),
)
# Path settings derived from `state_dir` when they are not set: (section, key, below).
_DERIVED = (
    ("validation", "gx_dir", "gx"),
    ("validation", "docs_dir", "docs"),
    ("download", "cache_dir", "cache"),
)


def _against(folder: Path, value: Any) -> Any:
    if isinstance(value, str | Path) and str(value) and not Path(value).is_absolute():
        return str(folder / Path(value).expanduser())
    return value


def sqlite_against(folder: Path, url: Any) -> Any:
    """A relative SQLite file URL, against `folder` (anything else unchanged)."""
    if not isinstance(url, str) or not url.startswith(SQLITE_PREFIX):
        return url
    rest = url[len(SQLITE_PREFIX) :]
    database, sep, query = rest.partition("?")
    if not database or database == ":memory:" or database.startswith("/"):
        return url
    return f"{SQLITE_PREFIX}{folder / database}{sep}{query}"


def resolve_file_paths(data: dict[str, Any], config_file: Path) -> dict[str, Any]:
    """The config file's relative paths made absolute against its folder, and `state_dir`
    defaulted to `.shardwatch` beside the file."""
    folder = config_file.expanduser().resolve().parent
    for section, key in _PATHS:
        table = data if not section else data.get(section)
        if isinstance(table, MutableMapping) and key in table:
            table[key] = _against(folder, table[key])
    data.setdefault("state_dir", str(folder / DEFAULT_STATE_DIR))
    if "database_url" in data:
        data["database_url"] = sqlite_against(folder, data["database_url"])
    blocklists = data.get("blocklists")
    if isinstance(blocklists, MutableMapping):
        for spec in blocklists.values():
            path = spec.get("path") if isinstance(spec, MutableMapping) else None
            if isinstance(path, str) and "://" not in path:  # a URL is checked, not anchored
                spec["path"] = _against(folder, path)
    for kind, key, section in (("file", "path", "alerts"), ("local", "path", "sources")):
        specs = data.get(section)
        if section == "alerts":
            specs = specs.get("channels") if isinstance(specs, MutableMapping) else None
        if not isinstance(specs, MutableMapping):
            continue
        for spec in specs.values():
            if isinstance(spec, MutableMapping) and spec.get("type") == kind and key in spec:
                spec[key] = _against(folder, spec[key])
    return data


def fill_state_defaults(data: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Every unset path setting below `state_dir` (the merged settings' raw values)."""
    state = Path(data.get("state_dir") or DEFAULT_STATE_DIR)
    data.setdefault("database_url", f"{SQLITE_PREFIX}{state / 'shardwatch.sqlite'}")
    for section, key, below in _DERIVED:
        table = data.setdefault(section, {})
        if isinstance(table, MutableMapping):
            table.setdefault(key, str(state / below))
    alerts = data.get("alerts")
    channels = alerts.get("channels") if isinstance(alerts, MutableMapping) else None
    if isinstance(channels, MutableMapping):
        for spec in channels.values():
            if isinstance(spec, MutableMapping) and spec.get("type") == "file":
                spec.setdefault("path", str(state / "alerts.jsonl"))
    return data
