"""Rows: the per-row signals of one batch, computed exactly as the metrics count them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shardwatch.core.profiles import DatasetProfile
from shardwatch.scan.batch import BatchScanner
from shardwatch.scan.blocklists import CompiledBlocklist
from shardwatch.scan.columns import ResolvedColumns
from shardwatch.scan.lexicon_match import CompiledLexicon
from shardwatch.scan.signals import as_float, unsafe_flags


@dataclass(frozen=True)
class RowView:
    """Per-row signals of one batch, computed exactly as the metrics count them.

    Each array has one entry per row, or is None when the shard lacks the column. The
    remove-list export reads these, so a flagged row count equals the stored metric.

    `blocklists`: per list given to `row_view` (by name), True where the row matches it,
    exactly as `ShardMetrics.blocklists[name].rows` counts; a list is absent when the shard
    lacks the column it needs (URL; id for an id list), as its metric is then unavailable.
    """

    rows: int
    keyword: npt.NDArray[np.bool_] | None
    match_rows: npt.NDArray[np.int64] | None
    match_terms: npt.NDArray[np.int64] | None
    tag_codes: npt.NDArray[np.int64] | None
    below_similarity: npt.NDArray[np.bool_] | None
    unsafe: npt.NDArray[np.bool_] | None
    blocklists: Mapping[str, npt.NDArray[np.bool_]] = field(default_factory=dict)


def row_view(
    batch: pa.RecordBatch,
    columns: ResolvedColumns,
    profile: DatasetProfile,
    compiled: CompiledLexicon,
    blocklists: Sequence[CompiledBlocklist] = (),
) -> RowView:
    """The per-row signals of `batch` (whose columns are named as in `columns`)."""
    scanner = BatchScanner(columns, profile, compiled, blocklists=blocklists)
    _, rm, codes, url = scanner.metrics(batch)
    blocks = scanner.block_matches(batch, url)
    below = None
    sim = scanner.column(batch, "similarity")
    if sim is not None:
        values = as_float(sim)
        with np.errstate(invalid="ignore"):
            below = np.isfinite(values) & (values < profile.similarity_threshold)
    score = scanner.column(batch, "unsafe_score")
    return RowView(
        rows=batch.num_rows,
        keyword=rm.keyword if rm is not None else None,
        match_rows=rm.match_rows if rm is not None else None,
        match_terms=rm.match_terms if rm is not None else None,
        tag_codes=codes,
        below_similarity=below,
        unsafe=unsafe_flags(score, profile.unsafe_threshold) if score is not None else None,
        blocklists={name: match.rows for name, match in blocks.items()},
    )
