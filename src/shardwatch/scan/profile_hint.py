"""Profile hint: a CSV/TSV shard read with the default profile it does not fit is refused.

Without `--profile` (or `profile` in the config), a shard is read with the default profile
(laion400m). For parquet that is the common case; a CSV/TSV file is usually another
dataset (COYO, DataComp, CC3M/CC12M). If its header row lacks a column the default profile
maps, `profile_problem` returns a one-line reason naming the profiles whose columns it does
have, or, when the "header" is plainly a data row (a URL in it), says the file is
header-less and names the header-less profiles (cc3m|cc12m). The CLI exits 2 with it.
Column names are never echoed: in a header-less file they are captions and URLs.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable
from pathlib import Path

from shardwatch.core.profiles import BUILTIN_PROFILES, DatasetProfile
from shardwatch.scan.columns import resolve_columns
from shardwatch.scan.reader import TextFormat, text_format
from shardwatch.settings.config import Settings

_URL_PREFIXES = ("http://", "https://", "www.")
_FIRST_LINE_BYTES = 1 << 20


def mapped(profile: DatasetProfile) -> int:
    """How many columns the profile maps."""
    return sum(1 for column in profile.columns.values() if column)


def present(names: list[str], profile: DatasetProfile) -> int:
    """How many of the profile's mapped columns `names` holds."""
    return len(resolve_columns(names, profile).present)


def fits(names: list[str], profile: DatasetProfile) -> bool:
    """True when a header row holds every column the profile maps."""
    return profile.header is None and present(names, profile) == mapped(profile)


def looks_headerless(names: list[str]) -> bool:
    """True when the first row is data: one of its fields is a URL."""
    return any(name.strip().lower().startswith(_URL_PREFIXES) for name in names)


def header_row(path: Path, fmt: TextFormat) -> list[str] | None:
    """The first row of a CSV/TSV file, split into fields; None if it cannot be read (the
    scan then reports the file itself). Only the first line is read (at most 1 MiB)."""
    try:
        with gzip.open(path, "rb") if fmt.gzip else path.open("rb") as raw:
            line = raw.readline(_FIRST_LINE_BYTES).decode("utf-8", "replace").rstrip("\r\n")
    except (OSError, EOFError):
        return None
    if not line:
        return None
    if fmt.kind == "tsv":
        return line.split("\t")  # TSV has no quoting (reader.py)
    return next(csv.reader([line]), [])


def _alternatives(names: list[str], profiles: Iterable[DatasetProfile]) -> list[str]:
    """The profiles that fit `names`, else those holding the most of their mapped columns."""
    candidates = [p for p in profiles if p.header is None]
    full = [p.name for p in candidates if fits(names, p)]
    if full:
        return full
    best = max((present(names, p) for p in candidates), default=0)
    return [p.name for p in candidates if best and present(names, p) == best]


def profile_problem(paths: Iterable[Path], settings: Settings) -> str | None:
    """Why the CSV/TSV files in `paths` cannot be read with the default profile, or None.

    None when a profile was chosen (`--profile`, the config file or the environment): the
    user's choice stands, and a missing column is schema drift, reported by the scan."""
    if "profile" in settings.model_fields_set:
        return None
    default = settings.dataset_profile()
    if default.header is not None:
        return None
    order = [*BUILTIN_PROFILES, *sorted(set(settings.profiles) - set(BUILTIN_PROFILES))]
    profiles = [settings.dataset_profile(name) for name in order]
    for path in paths:
        fmt = text_format(path)
        if fmt is None or not path.is_file():
            continue
        names = header_row(path, fmt)
        if names is None or fits(names, default):
            continue
        kind = fmt.kind.upper()
        if looks_headerless(names):
            width = [p.name for p in profiles if p.header is not None]
            same = [p.name for p in profiles if p.header and len(p.header) == len(names)]
            return (
                f"{path}: the first row of this {kind} file is data, not a header: "
                f"header-less: pass --profile {'|'.join(same or width)}"
            )
        others = _alternatives(names, profiles)
        have = present(names, default)
        lacks = f"has {have} of the {mapped(default)} columns of the default profile"
        listed = " or ".join(others)
        if others and all(fits(names, settings.dataset_profile(n)) for n in others):
            return (
                f"{path}: this {kind} file {lacks} {default.name}; its columns fit "
                f"profile {listed}: pass --profile {others[0]}"
            )
        if others:
            return (
                f"{path}: this {kind} file {lacks} {default.name}; its columns come closest "
                f"to profile {listed}: pass --profile {others[0]} (the metrics its columns "
                "cannot support are then listed as unavailable)"
            )
        return (
            f"{path}: this {kind} file {lacks} {default.name} and matches no profile "
            f"({', '.join(p.name for p in profiles)}): pass --profile NAME, or define one "
            "under [profiles] in shardwatch.toml"
        )
    return None
