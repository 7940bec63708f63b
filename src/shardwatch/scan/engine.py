"""Engine: stream a shard's record batches into exact, mergeable ShardMetrics."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shardwatch.core import metrics as m
from shardwatch.core.lexicon import Lexicon
from shardwatch.core.profiles import DatasetProfile, LogicalField, tag_keys
from shardwatch.core.schema import SchemaDrift
from shardwatch.scan.dedup import DistinctCounter, KeyArray, keys_of
from shardwatch.scan.domains import DEFAULT_TOP_K, DomainCounter, batch_counts
from shardwatch.scan.features import FeatureSpec
from shardwatch.scan.lexicon_match import CompiledLexicon as CompiledLexicon  # re-exported
from shardwatch.scan.lexicon_match import RowMatches, match_rows
from shardwatch.scan.reader import (
    DEFAULT_BATCH_SIZE,
    ResolvedColumns,
    ShardReader,
    as_text,
    resolve_columns,
)

ProgressCallback = Callable[[int], None]
FeatureSink = Callable[[pa.RecordBatch], None]


@dataclass(frozen=True)
class BatchResult:
    """One batch's partial metrics, its dedup keys, its exact per-domain counts and (if asked
    for) its feature rows."""

    metrics: m.ShardMetrics
    keys: dict[str, KeyArray]
    features: pa.RecordBatch | None
    domains: pa.Table | None = None


def _as_float(arr: pa.Array) -> npt.NDArray[np.float64]:
    """Float64 values with null as NaN."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _null_count(arr: pa.Array) -> int:
    """Nulls, counting a non-finite float (NaN, +-inf) as null."""
    if pa.types.is_floating(arr.type):
        return int(np.count_nonzero(~np.isfinite(_as_float(arr))))
    return int(arr.null_count)


def _tag_codes(tag: pa.Array, profile: DatasetProfile) -> npt.NDArray[np.int64]:
    """0..L-1 for the labels, L for any other value, L+1 for null. A score signal maps to
    NSFW above the profile's threshold, UNLIKELY at or below it, null when null or NaN."""
    labels = profile.nsfw_labels
    if profile.nsfw_signal == "score":
        assert profile.nsfw_threshold is not None
        return _score_codes(_as_float(tag), profile.nsfw_threshold, len(labels))
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
    values = _as_float(score)
    with np.errstate(invalid="ignore"):
        flags: npt.NDArray[np.bool_] = np.isfinite(values) & (values > threshold)
    return flags


def _similarity(values: npt.NDArray[np.float64], threshold: float) -> m.SimilarityStats:
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


def _counts_by_label(codes: npt.NDArray[np.int64], labels: tuple[str, ...]) -> dict[str, int]:
    counts = np.bincount(codes, minlength=len(labels) + 2).tolist()
    return dict(zip(tag_keys(labels), counts, strict=True))


class _BatchScanner:
    """Computes one batch's partial metrics; safe to call from several threads."""

    def __init__(
        self,
        columns: ResolvedColumns,
        profile: DatasetProfile,
        compiled: CompiledLexicon,
        features: FeatureSpec | None = None,
    ) -> None:
        self.columns = columns
        self.profile = profile
        self.compiled = compiled
        self.features = features

    def column(self, batch: pa.RecordBatch, logical: LogicalField) -> pa.Array | None:
        name = self.columns.present.get(logical)
        return None if name is None else batch.column(name)

    def __call__(self, batch: pa.RecordBatch) -> BatchResult:
        keys: dict[str, KeyArray] = {}
        dedup_fields: tuple[LogicalField, ...] = ("id", "url")
        for logical in dedup_fields:
            arr = self.column(batch, logical)
            if arr is not None:
                keys[logical] = keys_of(arr)
        metrics, rm, codes, url = self.metrics(batch)
        domains = None
        if url is not None:
            labels = self.profile.nsfw_labels
            tag_nsfw = None
            if codes is not None and "NSFW" in labels:
                tag_nsfw = codes == labels.index("NSFW")
            domains = batch_counts(url, rm.keyword if rm is not None else None, tag_nsfw)
        features = None
        if self.features is not None:
            features = self.features.batch(
                batch.num_rows,
                ids=self.column(batch, "id"),
                tag_codes=codes,
                similarity=self.column(batch, "similarity"),
                width=self.column(batch, "width"),
                height=self.column(batch, "height"),
                url=url,
                keyword=rm.keyword if rm is not None else None,
                match_rows=rm.match_rows if rm is not None else None,
                match_terms=rm.match_terms if rm is not None else None,
            )
        return BatchResult(metrics, keys, features, domains)

    def metrics(
        self, batch: pa.RecordBatch
    ) -> tuple[m.ShardMetrics, RowMatches | None, npt.NDArray[np.int64] | None, pa.Array | None]:
        """The batch's partial metrics, its row matches, its tag codes (see _tag_codes) and
        its decoded URL column (the feature table reuses the last three)."""
        labels = self.profile.nsfw_labels
        n = batch.num_rows
        nulls: dict[str, int] = {}
        for logical in self.columns.present:
            arr = self.column(batch, logical)
            assert arr is not None
            nulls[logical] = _null_count(arr)

        tag = self.column(batch, "nsfw_tag")
        codes = _tag_codes(tag, self.profile) if tag is not None else None
        sim = self.column(batch, "similarity")
        text = self.column(batch, "text")
        url = self.column(batch, "url")
        text = as_text(text) if text is not None else None
        url = as_text(url) if url is not None else None

        keyword_rows: int | None = None
        paper_rows: int | None = None
        terms: dict[str, m.TermStats] | None = None
        rm: RowMatches | None = None
        if text is not None or url is not None:
            rm = match_rows(self.compiled, text, url, n)
            keyword_rows = int(np.count_nonzero(rm.keyword))
            paper_rows = int(np.count_nonzero(rm.paper))
            if text is not None:
                terms = self._term_stats(rm, codes, labels)
        score = self.column(batch, "unsafe_score")
        unsafe = unsafe_flags(score, self.profile.unsafe_threshold) if score is not None else None
        partial = m.ShardMetrics(
            rows=n,
            shards=0,
            nulls=nulls,
            nsfw_flag_counts=_counts_by_label(codes, labels) if codes is not None else None,
            keyword_nsfw_rows=keyword_rows,
            paper_keyword_nsfw_rows=paper_rows,
            keyword_nsfw_by_tag=(
                _counts_by_label(codes[rm.keyword], labels)
                if codes is not None and rm is not None
                else None
            ),
            similarity=(
                _similarity(_as_float(sim), self.profile.similarity_threshold)
                if sim is not None
                else None
            ),
            terms=terms,
            unsafe_rows=int(np.count_nonzero(unsafe)) if unsafe is not None else None,
            keyword_unsafe_rows=(
                int(np.count_nonzero(unsafe & rm.keyword))
                if unsafe is not None and rm is not None
                else None
            ),
            unsafe_by_tag=(
                _counts_by_label(codes[unsafe], labels)
                if unsafe is not None and codes is not None
                else None
            ),
        )
        return partial, rm, codes, url

    def _term_stats(
        self,
        rm: RowMatches,
        codes: npt.NDArray[np.int64] | None,
        labels: tuple[str, ...],
    ) -> dict[str, m.TermStats]:
        names, modes = self.compiled.term_names, self.compiled.term_modes
        n_terms = len(names)
        matches = np.bincount(rm.match_terms, minlength=n_terms)
        substring = np.bincount(rm.substring_terms, minlength=n_terms)
        kw_hit = rm.keyword[rm.match_rows]
        kw = np.bincount(rm.match_terms[kw_hit], minlength=n_terms)
        paper_hit = rm.paper[rm.substring_rows]
        paper = np.bincount(rm.substring_terms[paper_hit], minlength=n_terms)
        no_tags: list[dict[str, int] | None] = [None] * n_terms
        per_tag, kw_tag, paper_tag = no_tags, no_tags, no_tags
        if codes is not None:
            per_tag = _term_tags(rm.match_rows, rm.match_terms, codes, labels, n_terms)
            kw_tag = _term_tags(
                rm.match_rows[kw_hit], rm.match_terms[kw_hit], codes, labels, n_terms
            )
            paper_tag = _term_tags(
                rm.substring_rows[paper_hit], rm.substring_terms[paper_hit], codes, labels, n_terms
            )
        return {
            names[t]: m.TermStats(
                mode=modes[t],
                matches=int(matches[t]),
                keyword_nsfw=int(kw[t]),
                substring_matches=int(substring[t]),
                nsfw_flag_counts=per_tag[t],
                keyword_nsfw_by_tag=kw_tag[t],
                paper_keyword_nsfw=int(paper[t]),
                paper_keyword_nsfw_by_tag=paper_tag[t],
            )
            for t in range(n_terms)
        }


def _term_tags(
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


def _finish(
    partial: m.ShardMetrics,
    columns: ResolvedColumns,
    dedup: dict[str, DistinctCounter],
    profile: DatasetProfile,
    domains: DomainCounter | None,
) -> m.ShardMetrics:
    """Turn the sum of a shard's batches into the shard's metrics."""
    missing = []
    if profile.column("unsafe_score") is not None and not columns.has("unsafe_score"):
        missing.append(m.UNSAFE_ROWS)
    if not columns.has("url"):
        missing.append(m.DOMAINS)
    if not columns.has("nsfw_tag"):
        missing.append(m.NSFW_FLAG_COUNTS)
    if not columns.has("similarity"):
        missing.append(m.SIMILARITY)
    if not columns.has("text"):
        missing.append(m.TERMS)
    if not (columns.has("text") or columns.has("url")):
        missing.append(m.KEYWORD_NSFW_ROWS)
    if not columns.has("id"):
        missing.append(m.DUPLICATE_IDS)
    if not columns.has("url"):
        missing.append(m.DUPLICATE_URLS)
    notes = []
    if columns.has("text") != columns.has("url"):
        only = "TEXT" if columns.has("text") else "URL"
        notes.append(f"keyword_nsfw_rows matched {only} only: the other column is missing")
    return replace(
        partial,
        shards=1,
        missing_in={name: 1 for name in missing},
        duplicates={name: counter.duplicates for name, counter in dedup.items()},
        domains=domains.sketch() if domains is not None else None,
        notes=tuple(notes),
    )


def _empty_partial(
    columns: ResolvedColumns,
    profile: DatasetProfile,
    compiled: CompiledLexicon,
    schema: pa.Schema,
) -> m.ShardMetrics:
    """The metrics of a zero-row batch, so an empty shard still reports every available key."""
    return _BatchScanner(columns, profile, compiled).metrics(_no_rows(schema))[0]


def scan_batches(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    profile: DatasetProfile,
    lexicon: Lexicon | CompiledLexicon,
    *,
    workers: int = 1,
    progress: ProgressCallback | None = None,
    on_features: FeatureSink | None = None,
    domain_top_k: int = DEFAULT_TOP_K,
) -> m.ShardMetrics:
    """The metrics of one shard given as a stream of record batches sharing `schema`.

    The domain sketch keeps the shard's top `domain_top_k` domains (domains.py).

    With `on_features`, each batch's per-row feature table (features.py) is handed to it, in
    row order, from the calling thread: validation reads it in the same streaming pass.
    """
    compiled = lexicon if isinstance(lexicon, CompiledLexicon) else CompiledLexicon(lexicon)
    columns = resolve_columns(schema.names, profile)
    features = None
    if on_features is not None:
        id_name = columns.present.get("id")
        id_source = schema.field(id_name).type if id_name is not None else None
        features = FeatureSpec.for_shard(profile, compiled.lexicon, columns, id_source)
    scanner = _BatchScanner(columns, profile, compiled, features)
    dedup = {}
    if columns.has("id"):
        dedup["id"] = DistinctCounter()
    if columns.has("url"):
        dedup["url"] = DistinctCounter()
    domains = DomainCounter(domain_top_k) if columns.has("url") else None
    total = _empty_partial(columns, profile, compiled, schema)

    emitted = False

    def absorb(result: BatchResult) -> None:
        nonlocal total, emitted
        emitted = True
        total = total.merge(result.metrics)
        for name, batch_keys in result.keys.items():
            dedup[name].add(batch_keys)
        if domains is not None and result.domains is not None:
            domains.add(result.domains)
        if on_features is not None and result.features is not None:
            on_features(result.features)
        if progress is not None:
            progress(result.metrics.rows)

    try:
        if workers <= 1:
            for batch in batches:
                absorb(scanner(batch))
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shardwatch") as pool:
                pending: deque[Future[BatchResult]] = deque()
                for batch in batches:
                    pending.append(pool.submit(scanner, batch))
                    if len(pending) > workers:
                        absorb(pending.popleft().result())
                while pending:
                    absorb(pending.popleft().result())
        if on_features is not None and features is not None and not emitted:
            on_features(_no_rows(features.schema))  # the sink always learns the schema
        return _finish(total, columns, dedup, profile, domains)
    finally:
        for counter in dedup.values():
            counter.close()


def _no_rows(schema: pa.Schema) -> pa.RecordBatch:
    """A batch of `schema` with no rows."""
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


def scan_shard(
    path: str | Path,
    profile: DatasetProfile,
    lexicon: Lexicon | CompiledLexicon,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 2,
    progress: ProgressCallback | None = None,
    on_features: FeatureSink | None = None,
    domain_top_k: int = DEFAULT_TOP_K,
    on_drift: Callable[[SchemaDrift], None] | None = None,
    max_decoded_bytes: int | None = None,
) -> m.ShardMetrics:
    """Stream one parquet shard from disk and compute its metrics (raises ShardReadError).

    `on_drift` is told the shard's schema drift against the profile (schema.py) once the
    shard is open; a retyped column's metrics are unavailable, as if it were missing.
    `max_decoded_bytes` caps what the batches may decode to (reader.DecodedTooLarge)."""
    with ShardReader(path, profile, max_decoded_bytes=max_decoded_bytes) as reader:
        if on_drift is not None:
            on_drift(reader.drift)
        return scan_batches(
            reader.iter_batches(batch_size),
            _projected_schema(reader),
            profile,
            lexicon,
            workers=workers,
            progress=progress,
            on_features=on_features,
            domain_top_k=domain_top_k,
        )


def _projected_schema(reader: ShardReader) -> pa.Schema:
    names = list(dict.fromkeys(reader.columns.present.values()))
    if not names:
        return pa.schema([pa.field("__rows__", pa.null())])
    return pa.schema([reader.schema.field(name) for name in names])


@dataclass(frozen=True)
class RowView:
    """Per-row signals of one batch, computed exactly as the metrics count them.

    Each array has one entry per row, or is None when the shard lacks the column. The
    remove-list export reads these, so a flagged row count equals the stored metric.
    """

    rows: int
    keyword: npt.NDArray[np.bool_] | None
    match_rows: npt.NDArray[np.int64] | None
    match_terms: npt.NDArray[np.int64] | None
    tag_codes: npt.NDArray[np.int64] | None
    below_similarity: npt.NDArray[np.bool_] | None
    unsafe: npt.NDArray[np.bool_] | None


def row_view(
    batch: pa.RecordBatch,
    columns: ResolvedColumns,
    profile: DatasetProfile,
    compiled: CompiledLexicon,
) -> RowView:
    """The per-row signals of `batch` (whose columns are named as in `columns`)."""
    scanner = _BatchScanner(columns, profile, compiled)
    _, rm, codes, _ = scanner.metrics(batch)
    below = None
    sim = scanner.column(batch, "similarity")
    if sim is not None:
        values = _as_float(sim)
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
    )
