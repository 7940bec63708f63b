"""Compare an engine metrics dict with the reference dict, key by documented key.

Only the keys docs/metrics.md defines are compared; extra keys the engine adds to a record
(e.g. top-level `notes`, `shards`) are ignored. Inside count maps (`nulls`, flag counts,
`duplicates`, the set of `terms`) the key sets must be equal. Integers must be equal plain
`int`s; `similarity.sum`/`.mean` are compared with `math.isclose(rel_tol=1e-9,
abs_tol=1e-12)`; every other float (min, max, threshold, lo, hi) must be exactly equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

DOC_KEYS = (
    "rows",
    "nulls",
    "nsfw_flag_counts",
    "keyword_nsfw_rows",
    "paper_keyword_nsfw_rows",
    "keyword_nsfw_by_tag",
    "unsafe_rows",
    "keyword_unsafe_rows",
    "unsafe_by_tag",
    "similarity",
    "terms",
    "duplicates",
    "unavailable",
)
SIMILARITY_KEYS = (
    "count",
    "null",
    "below_threshold",
    "threshold",
    "min",
    "max",
    "sum",
    "mean",
    "quantiles",
    "histogram",
)
HISTOGRAM_KEYS = ("lo", "hi", "bins_per_unit", "counts", "underflow", "overflow")
TERM_KEYS = ("matches", "keyword_nsfw", "substring_matches", "paper_keyword_nsfw", "mode")
TERM_COUNT_MAPS = ("nsfw_flag_counts", "keyword_nsfw_by_tag", "paper_keyword_nsfw_by_tag")
CLOSE_KEYS = ("sum", "mean")


def diff_metrics(
    engine: Mapping[str, Any], ref: Mapping[str, Any], *, skip: tuple[str, ...] = ()
) -> list[str]:
    """Every difference between the engine's and the reference's documented metrics."""
    out: list[str] = []
    for key in DOC_KEYS:
        if key in skip:
            continue
        _present(out, key, engine, ref)
        if key not in engine or key not in ref:
            continue
        if key in (
            "nulls",
            "nsfw_flag_counts",
            "duplicates",
            "keyword_nsfw_by_tag",
            "unsafe_by_tag",
        ):
            _counts(out, key, engine[key], ref[key])
        elif key == "similarity":
            _similarity(out, engine[key], ref[key])
        elif key == "terms":
            _terms(out, engine[key], ref[key])
        elif key == "unavailable":
            if list(engine[key]) != list(ref[key]):
                out.append(f"unavailable: engine {engine[key]!r} != reference {ref[key]!r}")
        else:
            _int(out, key, engine[key], ref[key])
    return out


def _present(out: list[str], path: str, engine: Mapping[str, Any], ref: Mapping[str, Any]) -> None:
    key = path.rsplit(".", 1)[-1]
    if (key in engine) != (key in ref):
        where = "engine only" if key in engine else "reference only"
        value = engine.get(key, ref.get(key))
        out.append(f"{path}: present in {where} ({_short(value)})")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."


def _int(out: list[str], path: str, got: Any, want: Any) -> None:
    if type(got) is not int:
        out.append(f"{path}: engine {got!r} has type {type(got).__name__}, expected int")
    if got != want:
        out.append(f"{path}: engine {got!r} != reference {want!r}")


def _exact_float(out: list[str], path: str, got: Any, want: Any) -> None:
    if want is None or got is None:
        if got is not want:
            out.append(f"{path}: engine {got!r} != reference {want!r}")
    elif not isinstance(got, float | int) or isinstance(got, bool) or got != want:
        out.append(f"{path}: engine {got!r} != reference {want!r}")


def _close_float(out: list[str], path: str, got: Any, want: Any) -> None:
    if want is None or got is None:
        if got is not want:
            out.append(f"{path}: engine {got!r} != reference {want!r}")
    elif not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
        out.append(f"{path}: engine {got!r} not close to reference {want!r}")


def _counts(out: list[str], path: str, got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    if set(got) != set(want):
        out.append(f"{path}: engine keys {sorted(got)} != reference keys {sorted(want)}")
    for k in sorted(set(got) & set(want)):
        _int(out, f"{path}.{k}", got[k], want[k])


def _similarity(out: list[str], got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    for key in SIMILARITY_KEYS:
        path = f"similarity.{key}"
        _present(out, path, got, want)
        if key not in got or key not in want:
            continue
        if key in ("count", "null", "below_threshold"):
            _int(out, path, got[key], want[key])
        elif key in CLOSE_KEYS:
            _close_float(out, path, got[key], want[key])
        elif key == "histogram":
            _histogram(out, got[key], want[key])
        elif key == "quantiles":
            if set(got[key]) != set(want[key]):
                out.append(f"{path}: engine keys {sorted(got[key])} != {sorted(want[key])}")
            for q in sorted(set(got[key]) & set(want[key])):
                _exact_float(out, f"{path}.{q}", got[key][q], want[key][q])
        else:
            _exact_float(out, path, got[key], want[key])


def _histogram(out: list[str], got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    for key in HISTOGRAM_KEYS:
        path = f"similarity.histogram.{key}"
        _present(out, path, got, want)
        if key not in got or key not in want:
            continue
        if key in ("lo", "hi"):
            _exact_float(out, path, got[key], want[key])
        elif key == "counts":
            if len(got[key]) != len(want[key]):
                out.append(f"{path}: engine has {len(got[key])} bins, reference {len(want[key])}")
            for i, (g, w) in enumerate(zip(got[key], want[key], strict=False)):
                if g != w or type(g) is not int:
                    out.append(f"{path}[{i}]: engine {g!r} != reference {w!r}")
        else:
            _int(out, path, got[key], want[key])


def _terms(out: list[str], got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    if list(got) != list(want):
        out.append(f"terms: engine terms {list(got)} != reference terms {list(want)}")
    for term in want:
        if term not in got:
            continue
        g, w = got[term], want[term]
        for key in (*TERM_KEYS, *TERM_COUNT_MAPS):
            path = f"terms.{term!r}.{key}"
            if key in TERM_COUNT_MAPS:
                _present(out, path, g, w)
            if key not in g or key not in w:
                if key not in TERM_COUNT_MAPS:
                    out.append(f"{path}: missing")
                continue
            if key == "mode":
                if g[key] != w[key]:
                    out.append(f"{path}: engine {g[key]!r} != reference {w[key]!r}")
            elif key in TERM_COUNT_MAPS:
                _counts(out, path, g[key], w[key])
            else:
                _int(out, path, g[key], w[key])


def assert_same_metrics(
    engine: Mapping[str, Any],
    ref: Mapping[str, Any],
    *,
    skip: tuple[str, ...] = (),
    context: str = "",
) -> None:
    problems = diff_metrics(engine, ref, skip=skip)
    if problems:
        shown = "\n  ".join(problems[:40])
        more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise AssertionError(f"engine != reference {context}\n  {shown}{more}")
