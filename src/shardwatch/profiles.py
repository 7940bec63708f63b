"""Dataset profiles: map shardwatch's logical fields to one dataset's column names."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

LogicalField = Literal["id", "url", "text", "nsfw_tag", "similarity", "width", "height", "license"]
LOGICAL_FIELDS: Final[tuple[LogicalField, ...]] = get_args(LogicalField)
# Tag counts carry these keys after the profile's labels: any other value, and null.
EXTRA_TAG_KEYS: Final = ("other", "null")
SAFE_LABEL: Final = re.compile(r"[A-Za-z0-9_. -]{1,64}")


def tag_keys(labels: Sequence[str]) -> tuple[str, ...]:
    """The keys of a tag-count map, in order: the labels, then `other` and `null`."""
    return (*labels, *EXTRA_TAG_KEYS)


@dataclass(frozen=True)
class DatasetProfile:
    """How to read one dataset: its columns, similarity cut-off and NSFW tag labels."""

    name: str
    columns: Mapping[LogicalField, str | None]
    similarity_threshold: float
    nsfw_labels: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(LOGICAL_FIELDS))
        if unknown:
            raise ValueError(
                f"profile {self.name!r}: unknown logical field(s) {unknown}; "
                f"expected some of {list(LOGICAL_FIELDS)}"
            )
        if len(set(self.nsfw_labels)) != len(self.nsfw_labels):
            raise ValueError(f"profile {self.name!r}: duplicate NSFW labels {self.nsfw_labels}")
        reserved = set(EXTRA_TAG_KEYS) & set(self.nsfw_labels)
        if reserved:
            raise ValueError(f"profile {self.name!r}: label(s) {sorted(reserved)} are reserved")
        unsafe = [label for label in self.nsfw_labels if not SAFE_LABEL.fullmatch(label)]
        if unsafe:  # labels reach Data Docs, which GX renders without escaping
            raise ValueError(
                f"profile {self.name!r}: NSFW label(s) {unsafe} must be 1-64 letters, digits, "
                "spaces or ._- characters"
            )

    def column(self, logical: LogicalField) -> str | None:
        """The dataset's column name for a logical field, or None if the profile has none."""
        return self.columns.get(logical)


LAION400M: Final = DatasetProfile(
    name="laion400m",
    description="LAION-400M metadata parquet parts (Schuhmann et al., 2021).",
    columns={
        "id": "SAMPLE_ID",
        "url": "URL",
        "text": "TEXT",
        "nsfw_tag": "NSFW",
        "similarity": "similarity",
        "width": "WIDTH",
        "height": "HEIGHT",
        "license": "LICENSE",
    },
    similarity_threshold=0.3,
    nsfw_labels=("UNLIKELY", "UNSURE", "NSFW"),
)

BUILTIN_PROFILES: Final[dict[str, DatasetProfile]] = {LAION400M.name: LAION400M}
