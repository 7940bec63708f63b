"""Dataset profiles: map shardwatch's logical fields to one dataset's column names."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

LogicalField = Literal[
    "id",
    "url",
    "text",
    "nsfw_tag",
    "similarity",
    "width",
    "height",
    "license",
    "unsafe_score",
    "watermark",
]
NsfwSignal = Literal["label", "score"]
LOGICAL_FIELDS: Final[tuple[LogicalField, ...]] = get_args(LogicalField)
# Tag counts carry these keys after the profile's labels: any other value, and null.
EXTRA_TAG_KEYS: Final = ("other", "null")
SAFE_LABEL: Final = re.compile(r"[A-Za-z0-9_. -]{1,64}")
# A score signal becomes a tag with these labels: NSFW when score > threshold, else UNLIKELY
# (a null or NaN score counts as null), so every tag metric and rule applies unchanged.
SCORE_LABELS: Final = ("UNLIKELY", "NSFW")


def tag_keys(labels: Sequence[str]) -> tuple[str, ...]:
    """The keys of a tag-count map, in order: the labels, then `other` and `null`."""
    return (*labels, *EXTRA_TAG_KEYS)


@dataclass(frozen=True)
class DatasetProfile:
    """How to read one dataset: its columns, similarity cut-off and NSFW signals.

    The `nsfw_tag` column is the dataset's own NSFW signal: a label (`nsfw_signal="label"`,
    values from `nsfw_labels`) or a score (`nsfw_signal="score"`: NSFW when the score is
    above `nsfw_threshold`). The optional `unsafe_score` column is a second, independent
    score (LAION-5B's punsafe), cross-tabulated against the tag at `unsafe_threshold`.
    `header` names the columns of a header-less CSV/TSV file (CC3M, CC12M).
    `other_columns` lists the columns the dataset carries that no field maps; any further
    column is schema drift ("unexpected", schema.py). None: extra columns are not judged.
    """

    name: str
    columns: Mapping[LogicalField, str | None]
    similarity_threshold: float
    nsfw_labels: tuple[str, ...] = ()
    description: str = ""
    nsfw_signal: NsfwSignal = "label"
    nsfw_threshold: float | None = None
    unsafe_threshold: float = 0.5
    header: tuple[str, ...] | None = None
    other_columns: tuple[str, ...] | None = None
    # The lexicon this dataset is scanned with unless the settings name another.
    lexicon: str = "precise2026"

    def __post_init__(self) -> None:
        if self.nsfw_signal == "score":
            if self.nsfw_threshold is None or not math.isfinite(self.nsfw_threshold):
                raise ValueError(f"profile {self.name!r}: a score NSFW signal needs nsfw_threshold")
            if self.nsfw_labels not in ((), SCORE_LABELS):
                raise ValueError(
                    f"profile {self.name!r}: a score NSFW signal has the labels {SCORE_LABELS}"
                )
            object.__setattr__(self, "nsfw_labels", SCORE_LABELS)
        elif self.nsfw_threshold is not None:
            raise ValueError(f"profile {self.name!r}: nsfw_threshold needs nsfw_signal='score'")
        if not math.isfinite(self.unsafe_threshold):
            raise ValueError(f"profile {self.name!r}: unsafe_threshold must be finite")
        if self.header is not None and len(set(self.header)) != len(self.header):
            raise ValueError(f"profile {self.name!r}: duplicate header names {self.header}")
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
    other_columns=(),
)

LAION5B_JOINED: Final = DatasetProfile(
    name="laion5b-joined",
    description="LAION-5B joined metadata (laion2B-en-joined etc.): the NSFW tag plus the "
    "safety model's punsafe and the watermark model's pwatermark (Schuhmann et al., 2022).",
    columns={
        "id": "hash",
        "url": "URL",
        "text": "TEXT",
        "nsfw_tag": "NSFW",
        "similarity": "similarity",
        "width": "WIDTH",
        "height": "HEIGHT",
        "license": "LICENSE",
        "unsafe_score": "punsafe",
        "watermark": "pwatermark",
    },
    similarity_threshold=0.28,
    nsfw_labels=("UNLIKELY", "UNSURE", "NSFW"),
    other_columns=("LANGUAGE",),  # laion2B-multi/-nolang-joined
)

COYO700M: Final = DatasetProfile(
    name="coyo700m",
    description="COYO-700M (Kakao Brain, 2022): OpenNSFW2 score as the NSFW signal "
    "(> 0.5), GantMan's score as the second signal, CLIP ViT-B/32 similarity.",
    columns={
        "id": "id",
        "url": "url",
        "text": "text",
        "nsfw_tag": "nsfw_score_opennsfw2",
        "similarity": "clip_similarity_vitb32",
        "width": "width",
        "height": "height",
        "unsafe_score": "nsfw_score_gantman",
        "watermark": "watermark_score",
    },
    similarity_threshold=0.3,
    nsfw_signal="score",
    nsfw_threshold=0.5,
    unsafe_threshold=0.5,
    other_columns=(
        "image_phash",
        "text_length",
        "word_count",
        "num_tokens_bert",
        "num_tokens_gpt",
        "num_faces",
        "clip_similarity_vitl14",
        "aesthetic_score_laion_v2",
    ),
)

DATACOMP: Final = DatasetProfile(
    name="datacomp",
    description="DataComp CommonPool metadata (Gadre et al., 2023): uid, CLIP B/32 score; "
    "no NSFW signal.",
    columns={
        "id": "uid",
        "url": "url",
        "text": "text",
        "similarity": "clip_b32_similarity_score",
        "width": "original_width",
        "height": "original_height",
    },
    similarity_threshold=0.3,
    other_columns=("clip_l14_similarity_score", "face_bboxes", "sha256"),
)

CC3M: Final = DatasetProfile(
    name="cc3m",
    description="Conceptual Captions 3M: header-less TSV of caption, URL.",
    columns={"text": "caption", "url": "url"},
    similarity_threshold=0.3,
    header=("caption", "url"),
    other_columns=(),
)

CC12M: Final = DatasetProfile(
    name="cc12m",
    description="Conceptual 12M: header-less TSV of URL, caption.",
    columns={"url": "url", "text": "caption"},
    similarity_threshold=0.3,
    header=("url", "caption"),
    other_columns=(),
)

BUILTIN_PROFILES: Final[dict[str, DatasetProfile]] = {
    p.name: p for p in (LAION400M, LAION5B_JOINED, COYO700M, DATACOMP, CC3M, CC12M)
}
