"""Signals: one column of a batch as the numbers the metrics count.

Tag codes (a label's index, or a score above the profile's threshold), NSFW scores above a
threshold, similarity statistics with their fixed-bin histogram, and null counts that treat a
non-finite float as null. The batch scanner (batch.py) and the per-row view (rows.py) share
them, so a flagged row count equals the stored metric.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shardwatch.core import metrics as m
from shardwatch.core.profiles import DatasetProfile, tag_keys
from shardwatch.scan.columns import as_text


def as_float(arr: pa.Array) -> npt.NDArray[np.float64]:
    """Float64 values with null as NaN."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def null_count(arr: pa.Array) -> int:
    """Nulls, counting a non-finite float (NaN, +-inf) as null."""
    if pa.types.is_floating(arr.type):
        return int(np.count_nonzero(~np.isfinite(as_float(arr))))
    return int(arr.null_count)


def tag_codes(tag: pa.Array, profile: DatasetProfile) -> npt.NDArray[np.int64]:
    """0..L-1 for the labels, L for any other value, L+1 for null. A score signal maps to
    NSFW above the profile's threshold, UNLIKELY at or below it, null when null or NaN."""
    labels = profile.nsfw_labels
    if profile.nsfw_signal == "score":
        assert profile.nsfw_threshold is not None
        return _score_codes(as_float(tag), profile.nsfw_threshold, len(labels))
    tag = as_text(tag)
    idx = pc.index_in(tag, value_set=pa.array(labels, type=pa.large_string()))
    codes = np.asarray(idx.fill_null(len(labels)).to_numpy(zero_copy_only=False), dtype=np.int64)
    codes[np.asarray(tag.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = len(labels) + 1
    return codes


def _score_codes(
    score: npt.NDArray[np.float64], threshold: float, n_labels: int
) -> npt.NDArray[np.int64]:
    """1 (NSFW) above the threshold, 0 (UNLIKELY) at or below it, n_labels + 1 if not finite."""
    codes = np.where(score > threshold, 1, 0).astype(np.int64)
    codes[~np.isfinite(score)] = n_labels + 1
    return codes


def unsafe_flags(score: pa.Array, threshold: float) -> npt.NDArray[np.bool_]:
    """Rows whose second NSFW score (e.g. punsafe) is above the threshold; null/NaN is not."""
    values = as_float(score)
    with np.errstate(invalid="ignore"):
        flags: npt.NDArray[np.bool_] = np.isfinite(values) & (values > threshold)
    return flags


def similarity_stats(values: npt.NDArray[np.float64], threshold: float) -> m.SimilarityStats:
    valid = values[np.isfinite(values)]
    if len(valid) == 0:
        return m.SimilarityStats(threshold=threshold, null=len(values))
    scaled = np.floor((valid - m.HIST_LO) * m.HIST_BINS_PER_UNIT)
    inside = (valid >= m.HIST_LO) & (valid <= m.HIST_HI)
    bins = np.minimum(scaled[inside], m.HIST_BINS - 1).astype(np.int64)
    return m.SimilarityStats(
        threshold=threshold,
        count=len(valid),
        null=len(values) - len(valid),
        below_threshold=int(np.count_nonzero(valid < threshold)),
        min=float(valid.min()),
        max=float(valid.max()),
        sum=float(valid.sum()),
        histogram=m.Histogram(
            counts=tuple(np.bincount(bins, minlength=m.HIST_BINS).tolist()),
            underflow=int(np.count_nonzero(valid < m.HIST_LO)),
            overflow=int(np.count_nonzero(valid > m.HIST_HI)),
        ),
    )


def counts_by_label(codes: npt.NDArray[np.int64], labels: tuple[str, ...]) -> dict[str, int]:
    counts = np.bincount(codes, minlength=len(labels) + 2).tolist()
    return dict(zip(tag_keys(labels), counts, strict=True))


def term_tags(
    rows: npt.NDArray[np.int64],
    terms: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    labels: tuple[str, ...],
    n_terms: int,
) -> list[dict[str, int] | None]:
    """Per term, the tag buckets of the (row, term) pairs given."""
    width = len(labels) + 2
    flat = np.bincount(terms * width + codes[rows], minlength=n_terms * width)
    keys = tag_keys(labels)
    return [dict(zip(keys, row, strict=True)) for row in flat.reshape(n_terms, width).tolist()]
