"""Flag rules: which rows of a batch each remove-list rule flags, read off the engine's RowView."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shardwatch.core.profiles import DatasetProfile, LogicalField
from shardwatch.export.rule_names import ANY_OF, BLOCKLIST_PREFIX, RULES, TERM_PREFIX
from shardwatch.scan.blocklists import CompiledBlocklist
from shardwatch.scan.columns import ResolvedColumns
from shardwatch.scan.rows import RowView

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def _lacks(columns: ResolvedColumns, profile: DatasetProfile, logical: LogicalField) -> str | None:
    """Why the shard has no `logical` column, or None if it has one."""
    if columns.has(logical):
        return None
    wanted = profile.column(logical)
    if wanted is None:
        return f"profile {profile.name!r} maps no {logical} column"
    return f"the shard has no {logical} column {wanted!r}"


@dataclass(frozen=True)
class ShardRules:
    """The rules one shard can evaluate (its columns, profile and lexicon terms); `unavailable`
    says why each other rule cannot be."""

    term_names: tuple[str, ...]
    text_missing: str | None  # why the shard has no TEXT column (term rules need one)
    nsfw_code: int | None
    unlikely_code: int | None
    unavailable: Mapping[str, str]
    blocklists: tuple[CompiledBlocklist, ...] = ()  # the lists asked for

    def reason_unavailable(self, rule: str) -> str | None:
        if not rule.startswith(TERM_PREFIX):
            return self.unavailable.get(rule)
        term = rule[len(TERM_PREFIX) :]
        if term not in self.term_names:
            return f"the lexicon has no term {term!r}"
        return self.text_missing

    def flags(self, view: RowView) -> BatchFlags:
        """Every available rule's flags on one batch's rows (a blocklist's from the view's
        flags, which the engine computes exactly as it counts the list's rows)."""
        masks: dict[str, BoolArray] = {}
        if view.keyword is not None:
            masks["keyword-nsfw"] = view.keyword
        codes = view.tag_codes
        if codes is not None and self.nsfw_code is not None:
            masks["tag-nsfw"] = codes == self.nsfw_code
        if view.keyword is not None and codes is not None and self.unlikely_code is not None:
            masks["keyword-nsfw-tagged-unlikely"] = view.keyword & (codes == self.unlikely_code)
        if view.below_similarity is not None:
            masks["below-similarity-cutoff"] = view.below_similarity
        if view.unsafe is not None:
            masks["unsafe-score"] = view.unsafe
        parts = [masks[name] for name in ANY_OF if name in masks]
        if parts:
            masks["any-nsfw"] = np.logical_or.reduce(parts)
        for blocklist in self.blocklists:
            if blocklist.name in view.blocklists:
                masks[BLOCKLIST_PREFIX + blocklist.name] = view.blocklists[blocklist.name]
        matches = None
        rows, terms = view.match_rows, view.match_terms
        if self.text_missing is None and rows is not None and terms is not None:
            matches = (rows, terms)
        return BatchFlags(view.rows, masks, self.term_names, matches)


def shard_rules(
    columns: ResolvedColumns,
    profile: DatasetProfile,
    term_names: Sequence[str],
    blocklists: Sequence[CompiledBlocklist] = (),
) -> ShardRules:
    """What a shard with `columns`, read with `profile` and a lexicon of `term_names`, supports
    (and which of `blocklists`: each needs the shard's URL column, an `id` list its id)."""
    labels = profile.nsfw_labels
    unavailable: dict[str, str] = {}
    text, url = _lacks(columns, profile, "text"), _lacks(columns, profile, "url")
    if text is not None and url is not None:
        unavailable["keyword-nsfw"] = f"{text} and {url}"
    tag = _lacks(columns, profile, "nsfw_tag")
    for rule, label in (("tag-nsfw", "NSFW"), ("keyword-nsfw-tagged-unlikely", "UNLIKELY")):
        if tag is not None:
            unavailable[rule] = tag
        elif label not in labels:
            unavailable[rule] = f"profile {profile.name!r} has no {label!r} tag label"
    if "keyword-nsfw" in unavailable and "keyword-nsfw-tagged-unlikely" not in unavailable:
        unavailable["keyword-nsfw-tagged-unlikely"] = unavailable["keyword-nsfw"]
    if (reason := _lacks(columns, profile, "similarity")) is not None:
        unavailable["below-similarity-cutoff"] = reason
    if (reason := _lacks(columns, profile, "unsafe_score")) is not None:
        unavailable["unsafe-score"] = reason
    if all(name in unavailable for name in ANY_OF):
        unavailable["any-nsfw"] = "; ".join(unavailable[name] for name in ANY_OF)
    for blocklist in blocklists:
        needs: LogicalField = "id" if blocklist.kind == "id" else "url"
        if (reason := _lacks(columns, profile, needs)) is not None:
            unavailable[BLOCKLIST_PREFIX + blocklist.name] = reason
    return ShardRules(
        term_names=tuple(term_names),
        text_missing=text,
        nsfw_code=labels.index("NSFW") if "NSFW" in labels else None,
        unlikely_code=labels.index("UNLIKELY") if "UNLIKELY" in labels else None,
        unavailable=unavailable,
        blocklists=tuple(blocklists),
    )


@dataclass(frozen=True)
class BatchFlags:
    """One batch's flags: a mask per available fixed rule and the (row, term) match pairs."""

    rows: int
    masks: Mapping[str, BoolArray]
    term_names: tuple[str, ...]
    matches: tuple[IntArray, IntArray] | None  # (rows, term indices); None: no TEXT column

    def mask(self, rule: str) -> BoolArray:
        """The rows `rule` flags (the rule must be available in the shard)."""
        if not rule.startswith(TERM_PREFIX):
            return np.asarray(self.masks[rule], dtype=bool)
        assert self.matches is not None
        rows, terms = self.matches
        out = np.zeros(self.rows, dtype=bool)
        out[rows[terms == self.term_names.index(rule[len(TERM_PREFIX) :])]] = True
        return out

    def reasons(self, rows: IntArray) -> pa.Array:
        """For each of `rows`, every rule that flags it: fixed rules in order, then terms."""
        fixed = [name for name in RULES if name in self.masks]
        fixed += [name for name in self.masks if name.startswith(BLOCKLIST_PREFIX)]
        names = fixed + [TERM_PREFIX + term for term in self.term_names]
        hits = np.zeros((len(rows), len(names)), dtype=bool)
        for j, name in enumerate(fixed):
            hits[:, j] = self.masks[name][rows]
        if self.matches is not None and len(rows):
            position = np.full(self.rows, -1, dtype=np.int64)
            position[rows] = np.arange(len(rows))
            match_rows, match_terms = self.matches
            at = position[match_rows]
            keep = at >= 0
            hits[at[keep], len(fixed) + match_terms[keep]] = True
        _, which_rule = np.nonzero(hits)  # row-major: each row's rules in their order
        offsets = np.zeros(len(rows) + 1, dtype=np.int32)
        offsets[1:] = np.cumsum(hits.sum(axis=1))
        values = pa.array(names, type=pa.string()).take(pa.array(which_rule, type=pa.int64()))
        return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)
