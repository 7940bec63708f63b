"""Validation results as plain domain objects (no GX import): what each check concluded.

The GX adapter (gx_adapter.py) produces these; the store writes them and the CLI prints them.
A check *errored* when GX could not evaluate it (a missing column, say): that is a schema
or configuration problem, reported apart from a data *failure*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # only an annotation: the store's readers need no pyarrow
    import pyarrow as pa

from shardwatch.core.schema import SchemaDrift, lost_feature

Status = Literal["passed", "failed", "errored"]
# The reason of a check that could not run because of schema drift starts with this.
DRIFT_REASON = "schema drift: "
# The reason of a validation that could not run at all (no suite, GX crashed) starts with
# this: an errored validation, never a failed check.
NOT_RUN_REASON = "validation could not run: "
NOT_RUN_CHECK = "validation"  # the expectation name of that one errored check
# An absolute local path inside an error message (not the path part of a URL): the reason
# reaches alerts and Data Docs, so only the last part of the path is kept.
_LOCAL_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"/]+/)+(?=[^\s'\"/]*)")
# The table-level expectation that judges which columns exist (its `column_set` is kept).
_COLUMN_SET_CHECK = "expect_table_columns_to_match_set"


class ValidationCannotRun(Exception):
    """The suite cannot be used at all (missing, unreadable); the message is one line that
    names no local path."""


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

    @property
    def by_drift(self) -> bool:
        """Errored because the shard's columns drifted from its profile (not the data)."""
        return self.status == "errored" and (self.reason or "").startswith(DRIFT_REASON)

    def describe(self) -> str:
        """One line for people: what was checked, and what was seen against what limit."""
        target = self.column or "table"
        if self.condition:
            target += f" where {self.condition}"
        head = f"{self.expectation} on {target}"
        if self.expectation == NOT_RUN_CHECK and (self.reason or "").startswith(NOT_RUN_REASON):
            return self.reason or ""
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

    @property
    def not_run(self) -> str | None:
        """Why the validation could not run at all ("validation could not run: ..."), or
        None when the suite ran (whatever its checks concluded)."""
        if len(self.checks) == 1:
            c = self.checks[0]
            reason = c.reason or ""
            if c.expectation == NOT_RUN_CHECK and reason.startswith(NOT_RUN_REASON):
                return reason
        return None

    @property
    def drift_errored(self) -> int:
        """Checks that errored because of schema drift."""
        return sum(1 for c in self.checks if c.by_drift)

    def summary(self) -> str:
        if self.not_run:
            return self.not_run
        drift = self.drift_errored
        by_drift = f" ({drift} by schema drift)" if drift else ""
        return (
            f"{self.count('passed')} passed, {self.count('failed')} failed, "
            f"{self.count('errored')} errored{by_drift}"
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


def could_not_run(suite: str, name: str, exc: BaseException | str) -> ShardValidation:
    """The validation of a shard that could not run at all (its suite is missing or
    unusable, GX crashed): one errored check whose reason starts "validation could not
    run: " (`ShardValidation.not_run`), never a failed check."""
    plain = isinstance(exc, str | ValidationCannotRun)
    why = str(exc) if plain else f"{type(exc).__name__}: {exc}"
    reason = " ".join((NOT_RUN_REASON + _LOCAL_PATH.sub(".../", why)).split())[:1000]
    check = Check(0, NOT_RUN_CHECK, None, None, "errored", None, None, reason)
    return ShardValidation(suite=suite, run_name=name, checks=(check,))


def blame_drift(validation: ShardValidation, drift: SchemaDrift) -> ShardValidation:
    """The checks that could not run because of the shard's schema drift, as errored with
    the drift as their reason (not failed): those that errored on a feature column the drift
    removed (their column or row condition), and column checks that miss only such columns."""
    if not drift.lost:
        return validation

    def lost(name: str | None) -> bool:
        return name is not None and lost_feature(name, drift.lost)

    reason = (DRIFT_REASON + drift.describe())[:1000]
    checks = []
    for c in validation.checks:
        cond = (c.condition or "").split(" ", 1)[0] or None
        if c.status == "errored":
            blamed = lost(c.column) or lost(cond)
        elif c.status == "failed" and c.expectation == "expect_column_to_exist":
            blamed = lost(c.column)
        elif c.status == "failed" and c.column is None and c.expectation == _COLUMN_SET_CHECK:
            wanted = (c.threshold or {}).get("column_set") or []
            seen = (c.observed or {}).get("observed_value") or []
            absent = [n for n in wanted if n not in seen] if isinstance(seen, list) else []
            blamed = bool(absent) and all(lost(str(n)) for n in absent)
        else:
            blamed = False
        checks.append(replace(c, status="errored", reason=reason) if blamed else c)
    return replace(validation, checks=tuple(checks))
