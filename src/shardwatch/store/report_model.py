"""The report's value types: a dataset's shards and total, as the report and the CLI show them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
        return out


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
        }


def as_int(value: Any) -> int:
    """SUM over BIGINT is NUMERIC on PostgreSQL (a Decimal in Python)."""
    return 0 if value is None else int(value)


def opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
