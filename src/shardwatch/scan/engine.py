"""Engine: stream a shard's record batches into exact, mergeable ShardMetrics.

Each batch is scanned on its own (batch.py, from the per-column signals in signals.py); the
engine merges the partial metrics in row order, counts distinct ids and URLs (dedup.py) and
domains (domains.py) across batches, and hands the feature rows to a sink.

Blocklists (blocklists.py) are matched per batch; a shard's result per list sums its rows,
records the list's version (content SHA-256) once, and holds the distinct entries matched: each
batch marks the positions of its entries in a per-list bitmap (`MatchedEntries`), read once
when the shard ends, so a shard matching millions of entries never merges sets per batch. A shard
without the column a list needs (URL; id for an id list) reports the list with 0 rows and
`blocklists.<name>` in `missing_in` (so `unavailable`): it was not checked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shardwatch.core import metrics as m
from shardwatch.core.blocklist import BlocklistStats
from shardwatch.core.lexicon import Lexicon
from shardwatch.core.profiles import DatasetProfile
from shardwatch.core.schema import SchemaDrift
from shardwatch.scan.batch import BatchResult, BatchScanner
from shardwatch.scan.blocklists import CompiledBlocklist
from shardwatch.scan.columns import ResolvedColumns, resolve_columns
from shardwatch.scan.dedup import DistinctCounter
from shardwatch.scan.domains import DEFAULT_TOP_K, DomainCounter
from shardwatch.scan.features import FeatureSpec
from shardwatch.scan.lexicon_match import CompiledLexicon as CompiledLexicon  # re-exported
from shardwatch.scan.reader import DEFAULT_BATCH_SIZE, ShardReader

ProgressCallback = Callable[[int], None]
FeatureSink = Callable[[pa.RecordBatch], None]


class MatchedEntries:
    """The distinct entries one shard's batches match, per list: a bitmap over each list's
    keys (one byte per entry, allocated at the list's first match), so adding a batch costs
    its matches and the shard's ids are built once, sorted (`entry_ids`)."""

    def __init__(self, blocklists: Sequence[CompiledBlocklist]) -> None:
        self._lists = {b.name: b for b in blocklists}
        self._seen: dict[str, npt.NDArray[np.bool_]] = {}

    def add(self, blocked: dict[str, npt.NDArray[np.int64]]) -> None:
        for name, positions in blocked.items():
            if len(positions) == 0:
                continue
            seen = self._seen.get(name)
            if seen is None:
                seen = self._seen[name] = np.zeros(self._lists[name].entries, dtype=np.bool_)
            seen[positions] = True

    def entry_ids(self, name: str) -> frozenset[bytes]:
        """The ids of the entries of list `name` matched by any batch added."""
        seen = self._seen.get(name)
        if seen is None:
            return frozenset()
        return self._lists[name].keys.entry_ids(np.flatnonzero(seen).astype(np.int64))


def _finish(
    partial: m.ShardMetrics,
    columns: ResolvedColumns,
    dedup: dict[str, DistinctCounter],
    profile: DatasetProfile,
    domains: DomainCounter | None,
    blocklists: Sequence[CompiledBlocklist] = (),
    matched: MatchedEntries | None = None,
) -> m.ShardMetrics:
    """Turn the sum of a shard's batches into the shard's metrics."""
    missing = [blocklist_metric(b.name) for b in blocklists if not columns.has(b.needs)]
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
        blocklists=_checked(partial, blocklists, matched or MatchedEntries(blocklists)),
        notes=tuple(notes),
    )


def blocklist_metric(name: str) -> str:
    """The `missing_in` name of a list a shard could not be checked against."""
    return f"blocklists.{name}"


def _checked(
    partial: m.ShardMetrics, blocklists: Sequence[CompiledBlocklist], matched: MatchedEntries
) -> dict[str, BlocklistStats] | None:
    """Each list's sum over the batches with the distinct entries matched, checked against
    its version once."""
    if not blocklists:
        return None
    summed = partial.blocklists or {}
    out = {}
    for b in blocklists:
        stats = summed.get(b.name) or BlocklistStats(kind=b.kind, entries=b.entries)
        out[b.name] = replace(stats, matched=matched.entry_ids(b.name), versions={b.version: 1})
    return dict(sorted(out.items()))


def _empty_partial(
    columns: ResolvedColumns,
    profile: DatasetProfile,
    compiled: CompiledLexicon,
    schema: pa.Schema,
) -> m.ShardMetrics:
    """The metrics of a zero-row batch, so an empty shard still reports every available key."""
    return BatchScanner(columns, profile, compiled).metrics(_no_rows(schema))[0]


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
    blocklists: Sequence[CompiledBlocklist] = (),
) -> m.ShardMetrics:
    """The metrics of one shard given as a stream of record batches sharing `schema`.

    The domain sketch keeps the shard's top `domain_top_k` domains (domains.py). Each of
    `blocklists` (distinct names) is matched against every row (`ShardMetrics.blocklists`).

    With `on_features`, each batch's per-row feature table (features.py) is handed to it, in
    row order, from the calling thread: validation reads it in the same streaming pass.
    """
    compiled = lexicon if isinstance(lexicon, CompiledLexicon) else CompiledLexicon(lexicon)
    names = [b.name for b in blocklists]
    if len(set(names)) != len(names):
        raise ValueError("blocklist names must be distinct")
    columns = resolve_columns(schema.names, profile)
    features = None
    if on_features is not None:
        id_name = columns.present.get("id")
        id_source = schema.field(id_name).type if id_name is not None else None
        flagged = [b.name for b in blocklists if columns.has(b.needs)]
        features = FeatureSpec.for_shard(
            profile, compiled.lexicon, columns, id_source, blocklists=flagged
        )
    scanner = BatchScanner(columns, profile, compiled, features, blocklists)
    dedup = {}
    if columns.has("id"):
        dedup["id"] = DistinctCounter()
    if columns.has("url"):
        dedup["url"] = DistinctCounter()
    domains = DomainCounter(domain_top_k) if columns.has("url") else None
    total = _empty_partial(columns, profile, compiled, schema)
    matched = MatchedEntries(blocklists)

    emitted = False

    def absorb(result: BatchResult) -> None:
        nonlocal total, emitted
        emitted = True
        total = total.merge(result.metrics)
        matched.add(result.blocked)
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
        return _finish(total, columns, dedup, profile, domains, blocklists, matched)
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
    blocklists: Sequence[CompiledBlocklist] = (),
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
            blocklists=blocklists,
        )


def _projected_schema(reader: ShardReader) -> pa.Schema:
    names = list(dict.fromkeys(reader.columns.present.values()))
    if not names:
        return pa.schema([pa.field("__rows__", pa.null())])
    return pa.schema([reader.schema.field(name) for name in names])
