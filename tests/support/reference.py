"""Independent row-by-row reference implementation of docs/metrics.md (the test oracle).

Deliberately simple and slow: one Python loop over rows, `str.lower`, `re.search` for word
mode, `in` for substring mode, `math.floor` for histogram bins. It imports nothing from
shardwatch, so it cannot share a bug with the engine: a built-in profile or lexicon (passed by
name, or as an object bearing a built-in's name) is replaced by its literal copy in
builtin_literals.py; any other profile or lexicon a test builds is read by its attributes
(`terms`/`keywords` entries with `term`, `mode`, optional `forms`; a profile's `column()`,
labels and thresholds).

Two readings of the docs that the page leaves open are fixed here and flagged in the tests:
- `similarity.sum` is `None` when `count == 0` (the docs list sum with min/max/mean as null).
- a value `v < hi` whose `floor((v - lo) * bins_per_unit)` rounds to `len(counts)` (only
  `v = 1 - 2**-53`) is put in the last bin, like `v == hi`.

A profile with a score NSFW signal (`nsfw_signal="score"`, e.g. COYO-700M's OpenNSFW2 score)
buckets each row's score: `NSFW` when it is above `nsfw_threshold`, `UNLIKELY` when it is a
finite number at or below it, `null` when null, NaN, infinite or not a number. Numbers given
as text (rows read from a CSV file) are parsed with Python's `float`; a similarity given as
text is parsed the same way and counts as null when it is not a finite number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from support.builtin_literals import LEXICONS, PROFILES

LOGICAL_FIELDS = (
    "id", "url", "text", "nsfw_tag", "similarity", "width", "height", "license",
    "unsafe_score", "watermark",
)  # fmt: skip
# The paper's keyword rule: any of these as a substring of lower-cased TEXT or URL.
PAPER_KEYWORDS = ("porn", "hot", "adult", "xxx", "sex", "fuck", "rape")


def plain_lexicon(lexicon: Any) -> Any:
    """The literal copy of a built-in lexicon (by name or namesake object), else `lexicon`."""
    name = lexicon if isinstance(lexicon, str) else getattr(lexicon, "name", None)
    return LEXICONS.get(name, lexicon) if name is not None else lexicon


def plain_profile(profile: Any) -> Any:
    """The literal copy of a built-in profile (by name or namesake object), else `profile`."""
    name = profile if isinstance(profile, str) else getattr(profile, "name", None)
    return PROFILES.get(name, profile) if name is not None else profile

# docs/metrics.md: min/max/sum/mean are "`null` when `count == 0`". Read literally, that
# includes the sum; change this one constant if the docs settle on 0.0 instead.
EMPTY_SUM: float | None = None

HIST_LO = -1.0
HIST_HI = 1.0
HIST_BINS_PER_UNIT = 200
HIST_NBINS = int((HIST_HI - HIST_LO) * HIST_BINS_PER_UNIT)  # 400

# Every metric name that can appear in `unavailable`.
UNAVAILABLE_NAMES = (
    "nsfw_flag_counts",
    "similarity",
    "keyword_nsfw_rows",
    "terms",
    "duplicates.id",
    "duplicates.url",
)


# --- column resolution and normalisation --------------------------------------------------


def resolve_column(present: Iterable[str], wanted: str | None) -> str | None:
    """Exact name first, then a unique case-insensitive match; otherwise None."""
    if wanted is None:
        return None
    names = list(present)
    if wanted in names:
        return wanted
    folded = [name for name in names if name.casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0]
    return None


def is_null(value: Any) -> bool:
    """Null, or a non-finite float (NaN, +-inf); only float columns hold those."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def lower(value: str | None) -> str:
    """`str.lower`, with a null TEXT or URL read as the empty string."""
    return "" if value is None else value.lower()


def word_match(needle: str, haystack: str) -> bool:
    """The docs' reference definition of word mode."""
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", haystack) is not None


def pattern_matches(pattern: Any, haystack: str) -> bool:
    """The entry, or any of its forms, in the entry's mode."""
    for spelling in (pattern.term, *getattr(pattern, "forms", ())):
        needle = spelling.lower()
        if word_match(needle, haystack) if pattern.mode == "word" else needle in haystack:
            return True
    return False


def tag_string(value: Any) -> str | None:
    """The tag compared as its string form (None stays None)."""
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def parse_number(value: Any) -> float | None:
    """A finite float from a number or its text form; None when null, non-finite or text that
    is not a number."""
    if value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
    return number if math.isfinite(number) else None


def score_bucket(value: Any, threshold: float) -> str:
    """A score signal as a tag: `NSFW` above the threshold, `UNLIKELY` at or below it,
    `null` when it is not a finite number."""
    number = parse_number(value)
    if number is None:
        return "null"
    return "NSFW" if number > threshold else "UNLIKELY"


def flag_bucket(tag: str | None, labels: Sequence[str]) -> str:
    if tag is None:
        return "null"
    if tag in labels:
        return tag
    return "other"


def histogram_bin(v: float) -> int:
    """Bin index in [0, HIST_NBINS) for lo <= v <= hi."""
    i = math.floor((v - HIST_LO) * HIST_BINS_PER_UNIT)
    return min(i, HIST_NBINS - 1)


# --- the metrics --------------------------------------------------------------------------


def table_rows(table: pa.Table) -> tuple[list[dict[str, Any]], list[str]]:
    """A table as a list of row dicts plus its column names, in order."""
    return table.to_pylist(), list(table.column_names)


def reference_metrics(
    data: pa.Table | Sequence[Mapping[str, Any]],
    profile: Any,
    lexicon: Any,
    columns: Iterable[str] | None = None,
) -> dict[str, Any]:
    """All per-shard metrics of docs/metrics.md for one shard, as the documented dict.

    `data` is a pyarrow Table, or a list of row dicts with `columns` naming the columns present.
    """
    profile, lexicon = plain_profile(profile), plain_lexicon(lexicon)
    if isinstance(data, pa.Table):
        rows, present = table_rows(data)
    else:
        if columns is None:
            raise ValueError("row dicts need the set of columns present")
        rows, present = [dict(row) for row in data], list(columns)

    col = {field: resolve_column(present, profile.column(field)) for field in LOGICAL_FIELDS}

    def value(row: Mapping[str, Any], field: str) -> Any:
        name = col[field]
        v = None if name is None else row.get(name)
        # docs/metrics.md: bytes are text, invalid UTF-8 decoded with U+FFFD replacement
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v

    labels = list(profile.nsfw_labels)
    has_tag = col["nsfw_tag"] is not None
    has_sim = col["similarity"] is not None
    has_text = col["text"] is not None
    has_url = col["url"] is not None
    has_id = col["id"] is not None
    has_unsafe = col["unsafe_score"] is not None

    out: dict[str, Any] = {"rows": len(rows)}

    # nulls of every mapped column that is present
    nulls: dict[str, int] = {}
    for field, name in col.items():
        if name is not None:
            nulls[field] = sum(1 for row in rows if is_null(row.get(name)))
    out["nulls"] = nulls

    def empty_flags() -> dict[str, int]:
        return {**{label: 0 for label in labels}, "other": 0, "null": 0}

    flags = empty_flags()
    keyword_rows = 0
    sim_values: list[float] = []
    sim_nulls = 0
    terms: dict[str, dict[str, Any]] = {}
    for p in lexicon.terms:
        terms[p.term] = {
            "matches": 0,
            "keyword_nsfw": 0,
            "substring_matches": 0,
            "mode": p.mode,
            "paper_keyword_nsfw": 0,
        }
        if has_tag:
            terms[p.term]["nsfw_flag_counts"] = empty_flags()
            terms[p.term]["keyword_nsfw_by_tag"] = empty_flags()
            terms[p.term]["paper_keyword_nsfw_by_tag"] = empty_flags()
    paper_rows = 0
    ids: list[Any] = []
    urls: list[str] = []
    keyword_by_tag = empty_flags()
    unsafe_rows = keyword_unsafe = 0
    unsafe_by_tag = empty_flags()

    for row in rows:
        text = lower(value(row, "text"))
        url = lower(value(row, "url"))

        bucket = None
        if has_tag and profile.nsfw_signal == "score":
            assert profile.nsfw_threshold is not None
            bucket = score_bucket(value(row, "nsfw_tag"), profile.nsfw_threshold)
        elif has_tag:
            bucket = flag_bucket(tag_string(value(row, "nsfw_tag")), labels)
        if bucket is not None:
            flags[bucket] += 1

        haystacks = []
        if has_text:
            haystacks.append(text)
        if has_url:
            haystacks.append(url)
        is_keyword_row = any(pattern_matches(k, h) for k in lexicon.keywords for h in haystacks)
        if is_keyword_row:
            keyword_rows += 1
            if bucket is not None:
                keyword_by_tag[bucket] += 1
        is_paper_row = any(k in h for k in PAPER_KEYWORDS for h in haystacks)
        paper_rows += is_paper_row

        if has_unsafe:
            score = parse_number(value(row, "unsafe_score"))
            if score is not None and score > profile.unsafe_threshold:
                unsafe_rows += 1
                keyword_unsafe += is_keyword_row
                if bucket is not None:
                    unsafe_by_tag[bucket] += 1

        if has_text:
            for p in lexicon.terms:
                stats = terms[p.term]
                if p.term.lower() in text:
                    stats["substring_matches"] += 1
                    if is_paper_row:
                        stats["paper_keyword_nsfw"] += 1
                        if bucket is not None:
                            stats["paper_keyword_nsfw_by_tag"][bucket] += 1
                if pattern_matches(p, text):
                    stats["matches"] += 1
                    if is_keyword_row:
                        stats["keyword_nsfw"] += 1
                        if bucket is not None:
                            stats["keyword_nsfw_by_tag"][bucket] += 1
                    if bucket is not None:
                        stats["nsfw_flag_counts"][bucket] += 1

        if has_sim:
            v = value(row, "similarity")
            if isinstance(v, str):  # read from text (CSV): parsed, non-numbers are null
                v = parse_number(v)
            if is_null(v):
                sim_nulls += 1
            else:
                sim_values.append(float(v))

        if has_id:
            v = value(row, "id")
            if not is_null(v):
                ids.append(v)
        if has_url:
            raw_url = value(row, "url")
            if raw_url is not None:
                urls.append(raw_url)

    if has_tag:
        out["nsfw_flag_counts"] = flags
    if has_text or has_url:
        out["keyword_nsfw_rows"] = keyword_rows
        out["paper_keyword_nsfw_rows"] = paper_rows
    if has_tag and (has_text or has_url):
        out["keyword_nsfw_by_tag"] = keyword_by_tag
    if has_sim:
        out["similarity"] = similarity_metrics(sim_values, sim_nulls, profile.similarity_threshold)
    if has_text:
        out["terms"] = terms
    if has_unsafe:
        out["unsafe_rows"] = unsafe_rows
        if has_text or has_url:
            out["keyword_unsafe_rows"] = keyword_unsafe
        if has_tag:
            out["unsafe_by_tag"] = unsafe_by_tag

    duplicates: dict[str, int] = {}
    if has_id:
        duplicates["id"] = len(ids) - len(set(ids))  # Python sets: 5 == 5.0 == 5.0, 0.0 == -0.0
    if has_url:
        duplicates["url"] = len(urls) - len(set(urls))
    out["duplicates"] = duplicates

    unavailable = []
    if not has_tag:
        unavailable.append("nsfw_flag_counts")
    if not has_sim:
        unavailable.append("similarity")
    if not (has_text or has_url):
        unavailable.append("keyword_nsfw_rows")
    if not has_text:
        unavailable.append("terms")
    if not has_id:
        unavailable.append("duplicates.id")
    if not has_url:
        unavailable += ["duplicates.url", "domains"]
    if profile.column("unsafe_score") is not None and not has_unsafe:
        unavailable.append("unsafe_rows")
    out["unavailable"] = sorted(unavailable)
    return out


def exact_sum(values: list[float]) -> float:
    """Correctly rounded sum (plain left-to-right sum if an infinity makes fsum refuse)."""
    if all(math.isfinite(v) for v in values):
        return math.fsum(values)
    return sum(values)


def similarity_metrics(values: list[float], nulls: int, threshold: float) -> dict[str, Any]:
    counts = [0] * HIST_NBINS
    underflow = 0
    overflow = 0
    below = 0
    for v in values:
        if v < threshold:
            below += 1
        if v < HIST_LO:
            underflow += 1
        elif v > HIST_HI:
            overflow += 1
        else:
            counts[histogram_bin(v)] += 1
    count = len(values)
    total = exact_sum(values) if count else EMPTY_SUM
    return {
        "count": count,
        "null": nulls,
        "below_threshold": below,
        "threshold": threshold,
        "min": min(values) if count else None,
        "max": max(values) if count else None,
        "sum": total,
        "mean": total / count if count and total is not None else None,
        "quantiles": quantiles(counts, underflow, overflow),
        "histogram": {
            "lo": HIST_LO,
            "hi": HIST_HI,
            "bins_per_unit": HIST_BINS_PER_UNIT,
            "counts": counts,
            "underflow": underflow,
            "overflow": overflow,
        },
    }


QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95,
             "p99": 0.99}  # fmt: skip


def quantiles(counts: Sequence[int], underflow: int, overflow: int) -> dict[str, float | None]:
    """docs/metrics.md: the upper edge of the bin holding the value of rank ceil(q * n)
    (at least 1) in the sorted histogram (underflow below `lo`, overflow above `hi`)."""
    n = sum(counts) + underflow + overflow
    out: dict[str, float | None] = {}
    for name, q in QUANTILES.items():
        if n == 0:
            out[name] = None
            continue
        rank = max(1, math.ceil(q * n))
        edge: float = HIST_HI
        if underflow >= rank:
            edge = HIST_LO
        else:
            cumulative = underflow
            for i, c in enumerate(counts):
                cumulative += c
                if cumulative >= rank:
                    edge = HIST_LO + (i + 1) / HIST_BINS_PER_UNIT
                    break
        out[name] = edge
    return out


# --- merging (docs: field-wise sums, min of minima, max of maxima) --------------------------


def merge_reference(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The documented dataset total of several shards' reference metrics."""
    if not parts:
        raise ValueError("nothing to merge")
    out: dict[str, Any] = {"rows": sum(p["rows"] for p in parts)}
    out["nulls"] = _sum_dicts([p["nulls"] for p in parts])
    for key in (
        "nsfw_flag_counts",
        "keyword_nsfw_rows",
        "paper_keyword_nsfw_rows",
        "keyword_nsfw_by_tag",
        "unsafe_rows",
        "keyword_unsafe_rows",
        "unsafe_by_tag",
    ):
        present = [p[key] for p in parts if key in p]
        if present:
            out[key] = _sum_dicts(present) if isinstance(present[0], dict) else sum(present)
    sims = [p["similarity"] for p in parts if "similarity" in p]
    if sims:
        out["similarity"] = _merge_similarity(sims)
    term_parts = [p["terms"] for p in parts if "terms" in p]
    if term_parts:
        merged_terms: dict[str, Any] = {}
        for term in term_parts[0]:
            stats = [t[term] for t in term_parts]
            merged: dict[str, Any] = {
                k: sum(s[k] for s in stats)
                for k in ("matches", "keyword_nsfw", "substring_matches", "paper_keyword_nsfw")
            }
            merged["mode"] = stats[0]["mode"]
            for key in ("nsfw_flag_counts", "keyword_nsfw_by_tag", "paper_keyword_nsfw_by_tag"):
                flag_parts = [s[key] for s in stats if key in s]
                if flag_parts:
                    merged[key] = _sum_dicts(flag_parts)
            merged_terms[term] = merged
        out["terms"] = merged_terms
    out["duplicates"] = _sum_dicts([p["duplicates"] for p in parts])
    out["unavailable"] = sorted(set.intersection(*(set(p["unavailable"]) for p in parts)))
    return out


def _sum_dicts(dicts: Sequence[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _merge_similarity(sims: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    with_values = [s for s in sims if s["count"]]
    count = sum(s["count"] for s in sims)
    counts = [sum(c) for c in zip(*(s["histogram"]["counts"] for s in sims), strict=True)]
    underflow = sum(s["histogram"]["underflow"] for s in sims)
    overflow = sum(s["histogram"]["overflow"] for s in sims)
    total = exact_sum([s["sum"] for s in with_values]) if with_values else EMPTY_SUM
    return {
        "count": count,
        "null": sum(s["null"] for s in sims),
        "below_threshold": sum(s["below_threshold"] for s in sims),
        "threshold": sims[0]["threshold"],
        "min": min(s["min"] for s in with_values) if with_values else None,
        "max": max(s["max"] for s in with_values) if with_values else None,
        "sum": total,
        "mean": total / count if count and total is not None else None,
        "quantiles": quantiles(counts, underflow, overflow),
        "histogram": {
            "lo": HIST_LO,
            "hi": HIST_HI,
            "bins_per_unit": HIST_BINS_PER_UNIT,
            "counts": counts,
            "underflow": underflow,
            "overflow": overflow,
        },
    }
