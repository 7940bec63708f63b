"""What an export is asked for and what it wrote: the request, the per-shard notes, the
summary line and the file's closing metadata (flagged.py fills them). Counts, list names
and shard names only: never a row's URL, id or caption."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shardwatch.export.rule_names import RULES
from shardwatch.scan.reader import DEFAULT_BATCH_SIZE


class ExportProgress(Protocol):
    """Where an export reports how far it is (the CLI draws a progress bar)."""

    def start(self, shards: int, rows: int) -> None: ...

    def shard(self, index: int, uri: str) -> None: ...

    def advance(self, rows: int) -> None: ...


class Silent:
    """No progress shown."""

    def start(self, shards: int, rows: int) -> None:
        pass

    def shard(self, index: int, uri: str) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass


class ExportError(Exception):
    """The export cannot be made as asked (nothing is written); the message says why."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export: the rows of `dataset` that `rule` flags, to the parquet file `out`."""

    dataset: str
    rule: str
    out: Path
    with_text: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE


@dataclass(frozen=True)
class ShardNote:
    """A shard and why it was skipped, or why the rule could not be evaluated on it."""

    uri: str  # for display: an http(s) URI without its query string
    reason: str


@dataclass(frozen=True)
class ListVersions:
    """A `blocklist:<name>` export applies the list as configured now (`version`, the SHA-256
    of its file); the shards read whose stored results came from another version of it, or
    from none (stored before the list was configured), by display URI. Their exported rows
    are the current list's, so they may differ from the report's `blocklists.<name>.rows`."""

    name: str
    version: str
    other_version: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()

    def notes(self) -> list[str]:
        """One line per such shard (its name and the list's name only)."""
        applied = f"its rows are exported by the current version of blocklist {self.name}"
        return [
            f"{uri} was checked against another version of blocklist {self.name}; {applied}"
            for uri in self.other_version
        ] + [
            f"{uri} was never checked against blocklist {self.name}; {applied}"
            for uri in self.unchecked
        ]

    def line(self) -> str:
        """The counts, for the summary line ('' when every shard read was checked against
        the current version)."""
        if not self.other_version and not self.unchecked:
            return ""
        return (
            f"; blocklist {self.name} applied as configured now: {len(self.other_version)} "
            f"shard(s) checked against another version, {len(self.unchecked)} never checked "
            "(their rows may differ from the report's; re-ingest them with --force)"
        )


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote. `skipped` shards contributed no rows (exit 3); in `unavailable`
    shards the rule could not be evaluated (as in the report, the metric is missing there);
    `blocklist`: for a `blocklist:<name>` rule, which shards were checked against another
    version of the list than the one applied."""

    out: Path
    dataset: str
    rule: str
    rows: int
    by_reason: Mapping[str, int]  # among the rows written: rows carrying each reason
    shards_read: int
    skipped: tuple[ShardNote, ...]
    unavailable: tuple[ShardNote, ...]
    blocklist: ListVersions | None = None

    def line(self) -> str:
        """One line: rows written, rows per fixed rule (and the term asked for) among them,
        shards read and skipped, and the output path."""
        shown = {k: n for k, n in self.by_reason.items() if k in RULES or k == self.rule}
        reasons = ", ".join(f"{name} {n:,}" for name, n in shown.items()) or "none"
        shards = f"{self.shards_read} read, {len(self.skipped)} skipped"
        if self.unavailable:
            shards += f", rule unavailable in {len(self.unavailable)}"
        return (
            f"wrote {self.rows:,} rows flagged by {self.rule} to {self.out}; "
            f"rows per rule among them: {reasons}; shards: {shards}"
            + (self.blocklist.line() if self.blocklist is not None else "")
        )

    def footer(self) -> dict[str, str]:
        """The parquet file's closing metadata."""
        doc: dict[str, object] = {
            "complete": not self.skipped,
            "rows": self.rows,
            "shards_read": self.shards_read,
            "skipped": [{"uri": n.uri, "reason": n.reason} for n in self.skipped],
            "rule_unavailable": [{"uri": n.uri, "reason": n.reason} for n in self.unavailable],
        }
        if (lv := self.blocklist) is not None:
            doc["blocklist"] = {
                "name": lv.name,
                "version": lv.version,
                "checked_against_other_version": list(lv.other_version),
                "never_checked": list(lv.unchecked),
            }
        return {"shardwatch.export.result": json.dumps(doc)}
