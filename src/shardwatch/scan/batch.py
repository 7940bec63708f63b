"""Batch: one record batch's partial metrics, dedup keys, domain counts, blocklist matches and
feature rows.

`BatchScanner` is safe to call from several threads: the engine (engine.py) fans batches out
to a pool and merges the partial metrics in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shardwatch.core import metrics as m
from shardwatch.core.blocklist import BlocklistStats
from shardwatch.core.profiles import DatasetProfile, LogicalField
from shardwatch.scan.blocklists import BlockMatch, CompiledBlocklist, RowKeys, row_keys
from shardwatch.scan.columns import ResolvedColumns, as_text
from shardwatch.scan.dedup import KeyArray, keys_of
from shardwatch.scan.domains import batch_counts
from shardwatch.scan.features import FeatureSpec
from shardwatch.scan.lexicon_match import CompiledLexicon, RowMatches, match_rows
from shardwatch.scan.signals import (
    as_float,
    counts_by_label,
    null_count,
    similarity_stats,
    tag_codes,
    term_tags,
    unsafe_flags,
)


@dataclass(frozen=True)
class BatchResult:
    """One batch's partial metrics, its dedup keys, its exact per-domain counts, (if asked
    for) its feature rows and, per list, the positions of the entries it matched in the list's
    keys (its `metrics.blocklists` count rows only: the engine reduces the positions once per
    shard, so no batch builds or merges a set of entry ids)."""

    metrics: m.ShardMetrics
    keys: dict[str, KeyArray]
    features: pa.RecordBatch | None
    domains: pa.Table | None = None
    blocked: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)


class BatchScanner:
    """Computes one batch's partial metrics; safe to call from several threads."""

    def __init__(
        self,
        columns: ResolvedColumns,
        profile: DatasetProfile,
        compiled: CompiledLexicon,
        features: FeatureSpec | None = None,
        blocklists: Sequence[CompiledBlocklist] = (),
    ) -> None:
        self.columns = columns
        self.profile = profile
        self.compiled = compiled
        self.features = features
        self.blocklists = tuple(blocklists)

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
        blocks = self.block_matches(batch, url)
        if self.blocklists:
            metrics = replace(metrics, blocklists=block_stats(self.blocklists, blocks))
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
                blocklists={name: match.rows for name, match in blocks.items()},
            )
        blocked = {name: match.positions for name, match in blocks.items()}
        return BatchResult(metrics, keys, features, domains, blocked)

    def block_matches(self, batch: pa.RecordBatch, url: pa.Array | None) -> dict[str, BlockMatch]:
        """Each list's matches in the batch (`url`: the decoded URL column), for the lists
        whose column (URL, or id for id lists) the shard has."""
        ids = self.column(batch, "id")
        out: dict[str, BlockMatch] = {}
        hashed: dict[str, RowKeys] = {}  # "url" (url and url_sha256 lists) or "id"
        for blocklist in self.blocklists:
            source = ids if blocklist.needs == "id" else url
            if source is None:
                continue
            if blocklist.kind == "domain":
                out[blocklist.name] = blocklist.match(url, ids)
                continue
            if blocklist.needs not in hashed:
                hashed[blocklist.needs] = row_keys(blocklist.kind, source)
            out[blocklist.name] = blocklist.match_hashed(hashed[blocklist.needs])
        return out

    def metrics(
        self, batch: pa.RecordBatch
    ) -> tuple[m.ShardMetrics, RowMatches | None, npt.NDArray[np.int64] | None, pa.Array | None]:
        """The batch's partial metrics, its row matches, its tag codes (see signals.tag_codes) and
        its decoded URL column (the feature table reuses the last three)."""
        labels = self.profile.nsfw_labels
        n = batch.num_rows
        nulls: dict[str, int] = {}
        for logical in self.columns.present:
            arr = self.column(batch, logical)
            assert arr is not None
            nulls[logical] = null_count(arr)

        tag = self.column(batch, "nsfw_tag")
        codes = tag_codes(tag, self.profile) if tag is not None else None
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
            nsfw_flag_counts=counts_by_label(codes, labels) if codes is not None else None,
            keyword_nsfw_rows=keyword_rows,
            paper_keyword_nsfw_rows=paper_rows,
            keyword_nsfw_by_tag=(
                counts_by_label(codes[rm.keyword], labels)
                if codes is not None and rm is not None
                else None
            ),
            similarity=(
                similarity_stats(as_float(sim), self.profile.similarity_threshold)
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
                counts_by_label(codes[unsafe], labels)
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
            per_tag = term_tags(rm.match_rows, rm.match_terms, codes, labels, n_terms)
            kw_tag = term_tags(
                rm.match_rows[kw_hit], rm.match_terms[kw_hit], codes, labels, n_terms
            )
            paper_tag = term_tags(
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


def block_stats(
    blocklists: Sequence[CompiledBlocklist], matches: Mapping[str, BlockMatch]
) -> dict[str, BlocklistStats]:
    """One batch's partial per-list row counts: the entries matched (`BatchResult.blocked`)
    and the versions are set once per shard, by the engine."""
    out = {}
    for blocklist in blocklists:
        match = matches.get(blocklist.name)
        out[blocklist.name] = BlocklistStats(
            kind=blocklist.kind,
            entries=blocklist.entries,
            rows=match.count if match is not None else 0,
        )
    return dict(sorted(out.items()))
