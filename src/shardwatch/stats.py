"""Stats: confidence intervals and lift for the audit's rates, from exact counts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from shardwatch.metrics import KEYWORD_NSFW_ROWS, ShardMetrics

Z95 = 1.959963984540054  # the two-sided 95% normal quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (n > 0); it stays inside [0, 1] and
    behaves at k = 0 and k = n, unlike the normal approximation."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Lift:
    """How many times a subgroup's rate exceeds the base rate, with a 95% interval.

    The interval is the Wilson interval of the subgroup's rate divided by the base rate: the
    base rate is a whole dataset's (millions of rows), so its own uncertainty is negligible
    next to a term's (tens to thousands of matches) and is not propagated."""

    rate: float
    base: float
    value: float
    low: float
    high: float

    def text(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"

    def to_dict(self) -> dict[str, float]:
        return {
            "rate": self.rate,
            "base": self.base,
            "lift": self.value,
            "low": self.low,
            "high": self.high,
        }


def lift(k: int, n: int, base_k: int, base_n: int) -> Lift | None:
    """The lift of k/n over base_k/base_n; None when either rate is undefined or the base
    rate is 0 (no finite lift)."""
    if n <= 0 or base_n <= 0 or base_k <= 0:
        return None
    base = base_k / base_n
    low, high = wilson(k, n)
    rate = k / n
    return Lift(rate, base, rate / base, low / base, high / base)


def term_lifts(metrics: ShardMetrics, label: str = "NSFW") -> dict[str, dict[str, Lift | None]]:
    """Per watched term: the lift of its keyword-NSFW rate over the dataset's, and of its
    `label`-tagged rate over the tagged rows' (None where undefined or unavailable)."""
    out: dict[str, dict[str, Lift | None]] = {}
    base_kw = metrics.keyword_nsfw_rows
    if metrics.missing_in.get(KEYWORD_NSFW_ROWS):
        base_kw = None  # some rows could not be flagged: no exact base rate
    tags = metrics.nsfw_flag_counts
    for term, stats in (metrics.terms or {}).items():
        keyword = (
            lift(stats.keyword_nsfw, stats.matches, base_kw, metrics.rows)
            if (base_kw is not None)
            else None
        )
        tag = None
        if tags is not None and stats.nsfw_flag_counts is not None:
            tag = lift(
                stats.nsfw_flag_counts.get(label, 0),
                sum(stats.nsfw_flag_counts.values()),
                tags.get(label, 0),
                sum(tags.values()),
            )
        out[term] = {"keyword": keyword, "tag": tag}
    return out
