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

from shardwatch import metrics as m
from shardwatch.dedup import DistinctCounter, KeyArray, keys_of
from shardwatch.domains import DEFAULT_TOP_K, DomainCounter, batch_counts
from shardwatch.features import FeatureSpec
from shardwatch.lexicon import Lexicon
from shardwatch.matching import ColumnMatcher, python_matches
from shardwatch.profiles import DatasetProfile, LogicalField, tag_keys
from shardwatch.reader import (
    DEFAULT_BATCH_SIZE,
    ResolvedColumns,
    ShardReader,
    as_text,
    resolve_columns,
)
from shardwatch.schema import SchemaDrift

ProgressCallback = Callable[[int], None]
FeatureSink = Callable[[pa.RecordBatch], None]

_SUBSTRING, _WORD = 1, 2  # keyword kinds per needle; 0: not a keyword
_MODE_CODE = {"substring": _SUBSTRING, "word": _WORD}


class CompiledLexicon:
    """A lexicon turned into needle tables and one column matcher per searched column."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self.term_names = [p.term for p in lexicon.terms]
        self.term_modes = [p.mode for p in lexicon.terms]
        text_needles = list(dict.fromkeys([p.needle for p in lexicon.terms + lexicon.keywords]))
        index = {n: i for i, n in enumerate(text_needles)}
        self.text_term = np.full(len(text_needles), -1, dtype=np.int64)
        self.text_term_word = np.zeros(len(text_needles), dtype=bool)
        self.text_kw = np.zeros(len(text_needles), dtype=np.int8)
        for t, p in enumerate(lexicon.terms):
            self.text_term[index[p.needle]] = t
            self.text_term_word[index[p.needle]] = p.mode == "word"
        for p in lexicon.keywords:
            self.text_kw[index[p.needle]] = _MODE_CODE[p.mode]
        self.url_kw = np.array([_MODE_CODE[p.mode] for p in lexicon.keywords], dtype=np.int8)
        self.text_matcher = ColumnMatcher(text_needles) if text_needles else None
        url_needles = [p.needle for p in lexicon.keywords]
        self.url_matcher = ColumnMatcher(url_needles) if url_needles else None
        self.url_substring_only = all(p.mode == "substring" for p in lexicon.keywords)


@dataclass(frozen=True)
class RowMatches:
    """Per-row results for one batch: the keyword flag and (row, term) hit pairs."""

    keyword: npt.NDArray[np.bool_]
    match_rows: npt.NDArray[np.int64]
    match_terms: npt.NDArray[np.int64]
    substring_terms: npt.NDArray[np.int64]


@dataclass(frozen=True)
class BatchResult:
    """One batch's partial metrics, its dedup keys, its exact per-domain counts and (if asked
    for) its feature rows."""

    metrics: m.ShardMetrics
    keys: dict[str, KeyArray]
    features: pa.RecordBatch | None
    domains: pa.Table | None = None


def _keyword_hits(
    kinds: npt.NDArray[np.int8], bounded: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    hits: npt.NDArray[np.bool_] = (kinds == _SUBSTRING) | ((kinds == _WORD) & bounded)
    return hits


def match_rows(
    compiled: CompiledLexicon, text: pa.Array | None, url: pa.Array | None, num_rows: int
) -> RowMatches:
    """Which rows are keyword-NSFW and which terms each row matches (word and substring)."""
    n_terms = len(compiled.term_names)
    keyword = np.zeros(num_rows, dtype=bool)
    match_keys: list[npt.NDArray[np.int64]] = []
    sub_keys: list[npt.NDArray[np.int64]] = []
    problem: list[npt.NDArray[np.int64]] = []
    if text is not None and compiled.text_matcher is not None:
        occ = compiled.text_matcher.find(text)
        keyword[occ.rows[_keyword_hits(compiled.text_kw[occ.needles], occ.bounded)]] = True
        term = compiled.text_term[occ.needles]
        is_term = term >= 0
        is_match = is_term & (~compiled.text_term_word[occ.needles] | occ.bounded)
        sub_keys.append(occ.rows[is_term] * n_terms + term[is_term])
        match_keys.append(occ.rows[is_match] * n_terms + term[is_match])
        problem.append(occ.problem_rows)
    if url is not None and compiled.url_matcher is not None:
        if compiled.url_substring_only:  # a flag per row is enough: skip hit positions
            hit_rows, problem_rows = compiled.url_matcher.rows_with_any(url)
            keyword[hit_rows] = True
            problem.append(problem_rows)
        else:
            occ = compiled.url_matcher.find(url)
            keyword[occ.rows[_keyword_hits(compiled.url_kw[occ.needles], occ.bounded)]] = True
            problem.append(occ.problem_rows)

    matched = np.unique(np.concatenate(match_keys)) if match_keys else np.zeros(0, np.int64)
    substr = np.unique(np.concatenate(sub_keys)) if sub_keys else np.zeros(0, np.int64)
    problem_rows = np.unique(np.concatenate(problem)) if problem else np.zeros(0, np.int64)
    if len(problem_rows):
        keyword[problem_rows] = False
        if n_terms:
            matched = matched[~np.isin(matched // n_terms, problem_rows)]
            substr = substr[~np.isin(substr // n_terms, problem_rows)]
        extra_match, extra_sub = _match_in_python(compiled, text, url, problem_rows, keyword)
        matched = np.concatenate([matched, extra_match])
        substr = np.concatenate([substr, extra_sub])
    if n_terms == 0:
        return RowMatches(keyword, matched, matched, substr)
    return RowMatches(keyword, matched // n_terms, matched % n_terms, substr % n_terms)


def _match_in_python(
    compiled: CompiledLexicon,
    text: pa.Array | None,
    url: pa.Array | None,
    rows: npt.NDArray[np.int64],
    keyword: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The exact slow path for the rare rows the vectorised path cannot decide."""
    n_terms = len(compiled.term_names)
    lex = compiled.lexicon
    match_keys: list[int] = []
    sub_keys: list[int] = []
    for row in rows.tolist():
        low_text = (text[row].as_py() or "").lower() if text is not None else ""
        low_url = (url[row].as_py() or "").lower() if url is not None else ""
        keyword[row] = any(
            (text is not None and python_matches(p.needle, p.mode, low_text))
            or (url is not None and python_matches(p.needle, p.mode, low_url))
            for p in lex.keywords
        )
        if text is None:
            continue
        for t, p in enumerate(lex.terms):
            if p.needle in low_text:
                sub_keys.append(row * n_terms + t)
                if python_matches(p.needle, p.mode, low_text):
                    match_keys.append(row * n_terms + t)
    return np.array(match_keys, dtype=np.int64), np.array(sub_keys, dtype=np.int64)


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
        terms: dict[str, m.TermStats] | None = None
        rm: RowMatches | None = None
        if text is not None or url is not None:
            rm = match_rows(self.compiled, text, url, n)
            keyword_rows = int(np.count_nonzero(rm.keyword))
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
        kw = np.bincount(rm.match_terms[rm.keyword[rm.match_rows]], minlength=n_terms)
        per_tag: list[dict[str, int] | None] = [None] * n_terms
        if codes is not None:
            width = len(labels) + 2
            flat = np.bincount(
                rm.match_terms * width + codes[rm.match_rows], minlength=n_terms * width
            ).reshape(n_terms, width)
            keys = tag_keys(labels)
            per_tag = [dict(zip(keys, row, strict=True)) for row in flat.tolist()]
        return {
            names[t]: m.TermStats(
                mode=modes[t],
                matches=int(matches[t]),
                keyword_nsfw=int(kw[t]),
                substring_matches=int(substring[t]),
                nsfw_flag_counts=per_tag[t],
            )
            for t in range(n_terms)
        }


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
) -> m.ShardMetrics:
    """Stream one parquet shard from disk and compute its metrics (raises ShardReadError).

    `on_drift` is told the shard's schema drift against the profile (schema.py) once the
    shard is open; a retyped column's metrics are unavailable, as if it were missing."""
    with ShardReader(path, profile) as reader:
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
