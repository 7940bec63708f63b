"""Stats: confidence intervals, lift and drift for the audit's rates, from exact counts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shardwatch.core.metrics import KEYWORD_NSFW_ROWS, Histogram, ShardMetrics

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
    # The bounds at k = 0 and k = n are exactly 0 and 1 (rounding would leave 2.5e-16).
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


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


# --------------------------------------------------------------------------------- drift
PSI_BIN_WIDTH = 10  # fine 0.005-wide bins per PSI bin: PSI is computed over 0.05-wide bins
# The floor on a bin's share (docs/alerts.md): an empty bin counts as 0.01% of its side, so
# the log is defined; one empty-vs-full bin then adds at most (s - 1e-4) * ln(s / 1e-4).
PSI_EPSILON = 1e-4
# Drift is only tested with this support (docs/alerts.md): the shard and the rest of the
# dataset each hold at least this many rows (similarity values for PSI). Below it the test
# is "too few rows", not a figure: a 1-row shard's rate is 0 or 1 and its z is noise.
MIN_DRIFT_ROWS = 100


def coarse_bins(hist: Histogram) -> list[int]:
    """The histogram in 0.05-wide bins, with underflow and overflow as bins of their own."""
    counts = hist.counts
    coarse = [sum(counts[i : i + PSI_BIN_WIDTH]) for i in range(0, len(counts), PSI_BIN_WIDTH)]
    return [hist.underflow, *coarse, hist.overflow]


def psi(expected: Sequence[int], actual: Sequence[int]) -> float | None:
    """The population stability index sum((a - e) * ln(a / e)) over bin shares; shares of
    empty bins are taken as PSI_EPSILON. None if either side has no values. Rule of thumb:
    < 0.1 stable, 0.1-0.25 a moderate shift, > 0.25 a major one."""
    n_e, n_a = sum(expected), sum(actual)
    if n_e == 0 or n_a == 0 or len(expected) != len(actual):
        return None
    total = 0.0
    for e_count, a_count in zip(expected, actual, strict=True):
        e = max(e_count / n_e, PSI_EPSILON)
        a = max(a_count / n_a, PSI_EPSILON)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class TwoProportions:
    """A two-proportion z-test (pooled): is rate 1 different from rate 2?"""

    rate1: float
    rate2: float
    z: float
    p_value: float  # two-sided


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> TwoProportions | None:
    """None when a side is empty or the pooled rate is 0 or 1 (no variance: no test)."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (k1 + k2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    p1, p2 = k1 / n1, k2 / n2
    z = (p1 - p2) / math.sqrt(variance)
    return TwoProportions(p1, p2, z, math.erfc(abs(z) / math.sqrt(2)))


@dataclass(frozen=True)
class Drift:
    """One shard against the rest of its dataset (the total minus the shard)."""

    similarity_psi: float | None
    tag: TwoProportions | None
    keyword: TwoProportions | None
    # The tests not run for lack of support (MIN_DRIFT_ROWS): "similarity", "tag", "keyword".
    too_few_rows: tuple[str, ...] = ()


def drift(shard: ShardMetrics, total: ShardMetrics, label: str = "NSFW") -> Drift:
    """Drift of `shard` from the rest of `total` (which includes it): PSI of the similarity
    histograms, and two-proportion tests of the tag rate and the keyword-NSFW rate."""
    too_few: list[str] = []

    def supported(name: str, mine: int, rest: int) -> bool:
        if min(mine, rest) >= MIN_DRIFT_ROWS:
            return True
        too_few.append(name)
        return False

    sim_psi = None
    if shard.similarity is not None and total.similarity is not None:
        mine = coarse_bins(shard.similarity.histogram)
        rest = [t - s for t, s in zip(coarse_bins(total.similarity.histogram), mine, strict=True)]
        if supported("similarity", sum(mine), sum(rest)):
            sim_psi = psi(rest, mine)
    tag = None
    if shard.nsfw_flag_counts is not None and total.nsfw_flag_counts is not None:
        k1, n1 = shard.nsfw_flag_counts.get(label, 0), sum(shard.nsfw_flag_counts.values())
        k, n = total.nsfw_flag_counts.get(label, 0), sum(total.nsfw_flag_counts.values())
        if supported("tag", n1, n - n1):
            tag = two_proportion_test(k1, n1, k - k1, n - n1)
    keyword = None
    exact = not total.missing_in.get(KEYWORD_NSFW_ROWS)  # else the rest's rows are unknown
    if shard.keyword_nsfw_rows is not None and total.keyword_nsfw_rows is not None and exact:
        k1, n1 = shard.keyword_nsfw_rows, shard.rows
        if supported("keyword", n1, total.rows - n1):
            keyword = two_proportion_test(k1, n1, total.keyword_nsfw_rows - k1, total.rows - n1)
    return Drift(sim_psi, tag, keyword, tuple(too_few))


def rate_bounds(
    part: int, part_error: int, whole: int, whole_error: int
) -> tuple[float, float] | None:
    """The sharp bounds of part/whole when each count is a lower bound that the truth exceeds
    by at most its error, and the part's rows are among the whole's (a merged domain sketch:
    keyword-NSFW rows of a domain among its rows). Low: no extra part, every extra row (part /
    (whole + whole_error)); high: the extra rows all in the part, as many as both errors allow
    ((part + m) / (whole + m), m = min(part_error, whole_error)). None when there is no row."""
    if whole + whole_error == 0:
        return None
    low = part / (whole + whole_error)
    extra = min(part_error, whole_error)
    high = (part + extra) / (whole + extra) if whole + extra else 0.0
    return low, high
