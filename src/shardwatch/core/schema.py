"""Schema: compare a shard's columns with its profile; what differs is schema drift.

Drift is not a data failure: the shard's values may be fine, but the columns are not what
the profile says, so some metrics and checks cannot be computed. Three kinds:

- **missing**: a column the profile maps is not in the shard (a renamed column is missing
  under its old name and unexpected under its new one);
- **retyped**: the column is there with a type the metrics cannot read as meant, e.g.
  `similarity` as text or the label tag `NSFW` as an integer. The engine treats it as
  missing (its metrics are unavailable), so a retyped column never pollutes a total;
- **unexpected**: a column the profile neither maps nor lists in `other_columns` (only when
  the profile declares `other_columns`; pandas' `__index_level_N__` is ignored). The
  shard's metrics are all still computed: this is a notice that the layout changed.

Types are judged on parquet shards only: every CSV/TSV field is read as text by design.
Integer fields stored as floats (and decimals) are numbers; an all-null column fits any field.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:  # pyarrow loads when a schema is judged, not with the alert rules
    import pyarrow as pa

from shardwatch.core.profiles import LOGICAL_FIELDS, DatasetProfile, LogicalField

Kind = Literal["number", "text", "id", "label"]
_KIND_TEXT: Final[dict[Kind, str]] = {
    "number": "a number",
    "text": "text",
    "id": "an integer or text",
    "label": "text or an integer",
}
_INTEGER: Final = re.compile(r"-?[0-9]+")
_PANDAS_INDEX: Final = re.compile(r"__index_level_\d+__")
_SHOWN_NAMES: Final = 8  # names per list in a summary line
_STORED: Final = 100  # names per list stored
_NAME_CHARS: Final = 64
_NUMBER_FIELDS: Final[frozenset[str]] = frozenset(
    {"similarity", "width", "height", "unsafe_score", "watermark"}
)


def shown(name: str) -> str:
    """A column name fit for one line of text: as is when plain, else quoted and cut."""
    if name and name.isprintable() and name.strip() == name and len(name) <= _NAME_CHARS:
        return name
    cut = name[:_NAME_CHARS]
    return repr(cut) + ("..." if len(name) > len(cut) else "")


def _listed(names: Sequence[str]) -> str:
    more = len(names) - _SHOWN_NAMES
    return ", ".join(names[:_SHOWN_NAMES]) + (f" and {more} more" if more > 0 else "")


def expected_kind(profile: DatasetProfile, logical: LogicalField) -> Kind:
    """What a logical field's column must hold: a number, text, or (ids; a label tag whose
    labels are all integers) either."""
    if logical == "id":
        return "id"
    if logical in _NUMBER_FIELDS or (logical == "nsfw_tag" and profile.nsfw_signal == "score"):
        return "number"
    labels = profile.nsfw_labels
    if logical == "nsfw_tag" and labels and all(_INTEGER.fullmatch(x) for x in labels):
        return "label"  # labels such as "0" and "1" may be stored as integers
    return "text"


def _is_number(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


@functools.cache
def _text_types() -> tuple[Any, ...]:
    import pyarrow as pa

    return tuple(
        getattr(pa.types, name)
        for name in (
            "is_string",
            "is_large_string",
            "is_binary",
            "is_large_binary",
            "is_string_view",
            "is_binary_view",
        )
        if hasattr(pa.types, name)
    )


def _is_text(t: pa.DataType) -> bool:
    return any(check(t) for check in _text_types())


def fits(kind: Kind, t: pa.DataType) -> bool:
    """Whether a column of type `t` can be read as `kind` (dictionaries by their values)."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return True
    if kind == "number":
        return _is_number(t)
    if kind == "text":
        return _is_text(t)
    if kind == "label":
        return bool(pa.types.is_integer(t)) or _is_text(t)
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t)) or _is_text(t)


@dataclass(frozen=True)
class Retyped:
    """A mapped column whose type does not fit its field."""

    column: str
    found: str  # the Arrow type, e.g. `int64`
    expected: str  # `a number`, `text`, `an integer or text`

    def describe(self) -> str:
        return f"{shown(self.column)} as {self.found[:80]} (expected {self.expected})"


@dataclass(frozen=True)
class SchemaDrift:
    """How a shard's columns differ from its profile's (empty: they do not)."""

    missing: tuple[str, ...] = ()
    retyped: tuple[Retyped, ...] = ()
    unexpected: tuple[str, ...] = ()
    # The logical fields the engine cannot use because of the drift (missing or retyped).
    lost: tuple[LogicalField, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.missing or self.retyped or self.unexpected)

    @property
    def columns(self) -> int:
        """How many columns drifted (the `schema_drift` alert metric)."""
        return len(self.missing) + len(self.retyped) + len(self.unexpected)

    def describe(self) -> str:
        """One line, e.g. `missing: similarity; unexpected: simlarity`. Column names come
        from the shard: odd ones (control characters, very long) are shown quoted and cut,
        and each list stops after a few names."""
        parts = []
        if self.missing:
            parts.append("missing: " + _listed([shown(c) for c in self.missing]))
        if self.retyped:
            parts.append("retyped: " + _listed([r.describe() for r in self.retyped]))
        if self.unexpected:
            parts.append("unexpected: " + _listed([shown(c) for c in self.unexpected]))
        return "; ".join(parts) or "none"

    def to_dict(self) -> dict[str, Any]:
        """The stored (and `--json`) form: the names verbatim (at most `_STORED` per list),
        how many columns drifted and the one-line summary."""
        return {
            "missing": list(self.missing[:_STORED]),
            "retyped": [
                {"column": r.column, "found": r.found, "expected": r.expected}
                for r in self.retyped[:_STORED]
            ],
            "unexpected": list(self.unexpected[:_STORED]),
            "lost": list(self.lost),
            "columns": self.columns,
            "summary": self.describe(),
        }


NO_DRIFT: Final = SchemaDrift()


def check_schema(
    schema: pa.Schema,
    profile: DatasetProfile,
    present: Mapping[LogicalField, str],
    *,
    typed: bool = True,
) -> tuple[SchemaDrift, dict[LogicalField, str]]:
    """The drift of a shard whose columns resolved to `present`, and the fields the engine
    may use (`present` without the retyped ones). `typed=False` (CSV/TSV) skips types."""
    usable: dict[LogicalField, str] = {}
    missing: list[str] = []
    lost: list[LogicalField] = []
    retyped: list[Retyped] = []
    for logical in LOGICAL_FIELDS:
        wanted = profile.column(logical)
        if wanted is None:
            continue
        name = present.get(logical)
        if name is None:
            missing.append(wanted)
            lost.append(logical)
            continue
        kind = expected_kind(profile, logical)
        found = schema.field(name).type
        if typed and not fits(kind, found):
            retyped.append(Retyped(name, str(found), _KIND_TEXT[kind]))
            lost.append(logical)
            continue
        usable[logical] = name
    unexpected: list[str] = []
    if profile.other_columns is not None:
        known = {n.casefold() for n in profile.other_columns}
        mapped = set(present.values())
        unexpected = [
            n
            for n in dict.fromkeys(schema.names)
            if n not in mapped and n.casefold() not in known and not _PANDAS_INDEX.fullmatch(n)
        ]
    drift = SchemaDrift(tuple(missing), tuple(retyped), tuple(unexpected), tuple(lost))
    return drift, usable


def lost_feature(name: str, lost: Sequence[str]) -> bool:
    """Whether the feature column `name` (features.py) depends on one of the logical fields
    `lost` to drift (so a check on it that errored could not run because of the drift)."""
    if name in ("id", "nsfw_tag", "similarity", "width", "height"):
        return name in lost
    if name == "url_scheme":
        return "url" in lost
    if name == "keyword_nsfw":
        return "text" in lost or "url" in lost
    if name.startswith("term_"):
        return "text" in lost
    return False
