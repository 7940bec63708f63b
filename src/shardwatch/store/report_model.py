"""The report's value types: a dataset's shards and total, as the report and the CLI show them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shardwatch.core.metrics import (
    ShardMetrics,
)
from shardwatch.core.profiles import DatasetProfile
from shardwatch.core.stats import term_lifts

ProfileResolver = Callable[[str], DatasetProfile | None]


@dataclass(frozen=True)
class ShardEntry:
    """One shard URI in the report: the version counted, or the newest one that is not done."""

    uri: str
    version: int
    status: str
    rows: int | None = None
    reason: str | None = None
    schema_drift: str | None = None  # how its columns differ from the profile, if they do
    # A version that is not done: its last failures, oldest first ({"at", "status", "reason"}).
    history: tuple[dict[str, Any], ...] = ()
    # A counted version: the version (content SHA-256) of each blocklist it was checked against.
    blocklists: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "uri": self.uri,
            "version": self.version,
            "status": self.status,
            "rows": self.rows,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.schema_drift is not None:
            out["schema_drift"] = self.schema_drift
        if self.history:
            out["history"] = list(self.history)
        if self.blocklists:
            out["blocklists"] = dict(self.blocklists)
        return out


@dataclass(frozen=True)
class ListChecks:
    """Which versions of one blocklist the counted shards were checked against: `newest`
    (the version the most recently stored shard was checked against), per other version
    the shards (URIs) checked against it, and how many counted shards were not checked
    against the list at all (stored before it was configured). Versions are the SHA-256
    of the list file's bytes; each version's shard count is in the total's `versions`."""

    newest: str
    older: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unchecked: int = 0

    @property
    def behind(self) -> int:
        """Shards checked against a version other than the newest."""
        return sum(len(uris) for uris in self.older.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "newest": self.newest,
            "older": {version: list(uris) for version, uris in self.older.items()},
            "unchecked": self.unchecked,
        }


@dataclass(frozen=True)
class DatasetReport:
    """A dataset's total over the latest done version of every shard URI, plus its gaps.

    `shards` lists, in URI order, every counted version (status `done`) and every URI whose
    newest version is not done (failed, quarantined, or still pending); such a URI also
    appears with its older done version, which is what the total counts.
    """

    dataset: str
    total: ShardMetrics
    shards: tuple[ShardEntry, ...]
    failed: int
    quarantined: int
    pending: int
    profiles: tuple[str, ...]
    lexicons: tuple[str, ...]
    labels: tuple[str, ...]  # NSFW tag labels in display order, without `other` and `null`
    drifted: int = 0  # counted versions whose columns drifted from their profile
    blocklists: Mapping[str, ListChecks] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of `shardwatch report --json`."""
        return {
            "dataset": self.dataset,
            "profiles": list(self.profiles),
            "lexicons": list(self.lexicons),
            "shards": [s.to_dict() for s in self.shards],
            "total": self.total.to_dict(),
            "lift": {
                term: {kind: (v.to_dict() if v else None) for kind, v in kinds.items()}
                for term, kinds in term_lifts(self.total).items()
            },
            "failed": self.failed,
            "quarantined": self.quarantined,
            "pending": self.pending,
            "schema_drift": self.drifted,
            **(
                {"blocklists": {n: c.to_dict() for n, c in self.blocklists.items()}}
                if self.blocklists
                else {}
            ),
        }


def as_int(value: Any) -> int:
    """SUM over BIGINT is NUMERIC on PostgreSQL (a Decimal in Python)."""
    return 0 if value is None else int(value)


def opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
