"""Validation results as plain domain objects (no GX import): what each check concluded.

The GX adapter (gx_adapter.py) produces these; the store writes them and the CLI prints them.
A check *errored* when GX could not evaluate it (a missing column, say): that is a schema
or configuration problem, reported apart from a data *failure*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pyarrow as pa

Status = Literal["passed", "failed", "errored"]


@dataclass(frozen=True)
class Check:
    """One expectation's outcome on one shard."""

    position: int
    expectation: str
    column: str | None
    condition: str | None
    status: Status
    observed: dict[str, Any] | None
    threshold: dict[str, Any] | None
    reason: str | None = None  # why it errored

    def describe(self) -> str:
        """One line for people: what was checked, and what was seen against what limit."""
        target = self.column or "table"
        if self.condition:
            target += f" where {self.condition}"
        head = f"{self.expectation} on {target}"
        if self.status == "errored":
            return f"{head}: check errored: {self.reason}"
        return f"{head}: {self.status}; {_seen(self.observed)}; limit {_brief(self.threshold)}"


def _seen(observed: dict[str, Any] | None) -> str:
    if not observed:
        return "nothing observed"
    if "observed_value" in observed:
        return f"observed {_number(observed['observed_value'])}"
    bad, rows = observed.get("unexpected_count"), observed.get("element_count")
    pct = observed.get("unexpected_percent")
    share = f" ({_number(pct)}% of non-null)" if pct is not None else ""
    return f"{bad} of {rows} rows unexpected{share}"


def _brief(values: dict[str, Any] | None) -> str:
    if not values:
        return "none (every row)"
    return ", ".join(f"{k}={_number(v)}" for k, v in values.items())


def _number(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class ShardValidation:
    """A suite's verdict on one shard: its checks and where its Data Docs page is."""

    suite: str
    run_name: str
    checks: tuple[Check, ...]
    docs_page: str | None = None  # the first (usually only) page
    result_keys: tuple[tuple[str, ...], ...] = field(default=(), compare=False)  # adapter's
    pages: tuple[str, ...] = ()  # one per part when a large shard was validated in parts

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status == status)

    @property
    def success(self) -> bool:
        return all(c.status == "passed" for c in self.checks)

    def summary(self) -> str:
        return (
            f"{self.count('passed')} passed, {self.count('failed')} failed, "
            f"{self.count('errored')} errored"
        )


class ShardValidator(Protocol):
    """What ingest needs from a validator (the GX adapter implements it)."""

    suite: str

    def validate(
        self, features: pa.Table, dataset: str, shard_id: int, version: int
    ) -> ShardValidation:
        """Validate one shard's feature table (may consume the table's buffers)."""
        ...

    def publish(self, validation: ShardValidation) -> None:
        """Render the shard's Data Docs page, once its results are committed."""
        ...

    def discard(self, validation: ShardValidation) -> None:
        """Forget a validation whose shard was not stored."""
        ...


def could_not_run(suite: str, name: str, exc: BaseException) -> ShardValidation:
    """The validation of a shard GX could not validate at all: one errored check."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:1000]
    check = Check(0, "validation", None, None, "errored", None, None, reason)
    return ShardValidation(suite=suite, run_name=name, checks=(check,))
