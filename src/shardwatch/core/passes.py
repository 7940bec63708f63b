"""Passes: what happened to each shard of a monitor pass, and the pass as a whole (plain,
picklable values that the pipeline returns and the flow, its hooks and the report read)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["done", "skipped", "busy", "failed", "quarantined", "lost", "pending"]
# Outcomes that leave a shard not done at the end of the pass: `busy` (another worker's live
# claim, e.g. one left by a killed worker until it expires), `lost` (the claim was taken over
# before the commit) and `pending` (its task never returned, e.g. its worker died). The
# store still holds it as discovered or processing; a later pass takes it again.
NOT_DONE: tuple[Outcome, ...] = ("busy", "lost", "pending")


@dataclass(frozen=True)
class ShardOutcome:
    """What happened to one listed shard in this pass (picklable, for any task runner)."""

    source: str
    uri: str
    outcome: Outcome
    shard_id: int | None = None
    version: int | None = None
    reason: str | None = None
    checks_failed: int = 0  # failed or errored, not counting those errored by schema drift
    docs_page: str | None = None
    schema_drift: str | None = None  # how the shard's columns differ from its profile
    # "validation could not run: <reason>" (no suite, GX crashed): not a failed check
    validation_error: str | None = None


@dataclass(frozen=True)
class PassSummary:
    """One monitor pass, for the flow's final state and artifacts."""

    run_id: int
    outcomes: tuple[ShardOutcome, ...]
    unchanged: int
    source_errors: tuple[str, ...]
    alerts: str
    data_docs: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.outcome in ("failed", "quarantined"))

    @property
    def not_done(self) -> int:
        """Shards this pass meant to process but left `busy`, `lost` or `pending`."""
        return sum(1 for o in self.outcomes if o.outcome in NOT_DONE)

    @property
    def validation_errors(self) -> int:
        """Shards stored without validation because it could not run (no suite, GX
        crashed): the pass did not do its job, whatever the data holds."""
        return sum(1 for o in self.outcomes if o.validation_error)

    def line(self) -> str:
        parts = [f"{n} {k}" for k, n in sorted(self.counts.items())]
        if self.not_done:
            parts.append(f"{self.not_done} not done")
        if self.validation_errors:
            parts.append(f"validation could not run for {self.validation_errors} shard(s)")
        parts.append(f"{self.unchanged} unchanged")
        if self.source_errors:
            parts.append(f"{len(self.source_errors)} source(s) not listed")
        return f"run {self.run_id}: " + ", ".join(parts)
