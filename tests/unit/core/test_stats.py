"""Wilson intervals and lift against hand-computed values, and lift from merged counts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from support.builders import adversarial_table, tagged_table, write_shard
from support.reference import merge_reference, reference_metrics

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.core.stats import lift, term_lifts, wilson
from shardwatch.scan.engine import scan_batches, scan_shard

pytestmark = pytest.mark.unit


def test_wilson_matches_hand_computed_values() -> None:
    # 10 of 50, z = 1.96: centre (0.2 + 3.8415/100) / 1.07683 = 0.221405,
    # half 1.96 * sqrt(0.0032 + 0.000384) / 1.07683 = 0.108967
    low, high = wilson(10, 50)
    assert low == pytest.approx(0.112438, abs=2e-6)
    assert high == pytest.approx(0.330372, abs=2e-6)
    # 0 of 20: [0, z^2/n / (1 + z^2/n)] = [0, 0.192073 / 1.192073]
    low, high = wilson(0, 20)
    assert low == 0.0 and high == pytest.approx(0.161127, abs=2e-6)
    low, high = wilson(20, 20)  # the mirror image
    assert high == 1.0 and low == pytest.approx(1 - 0.161127, abs=2e-6)
    for bad in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            wilson(*bad)


def test_lift_is_the_rate_ratio_with_the_interval_scaled_by_the_base() -> None:
    found = lift(10, 50, 100, 1000)  # 0.2 against a base of 0.1
    assert found is not None
    assert (found.rate, found.base, found.value) == (0.2, 0.1, 2.0)
    assert found.low == pytest.approx(1.12438, abs=2e-5)
    assert found.high == pytest.approx(3.30372, abs=2e-5)
    assert found.text() == "2.00 [1.12, 3.30]"
    assert lift(3, 10, 0, 1000) is None and lift(0, 0, 5, 10) is None


def test_term_lift_from_merged_shards_equals_lift_from_the_reference_counts(
    tmp_path: Path,
) -> None:
    tables = [adversarial_table(1500, seed) for seed in (41, 42, 43)]
    paths = [write_shard(t, tmp_path, f"p{i}.parquet") for i, t in enumerate(tables)]
    total = ShardMetrics.merge_all(scan_shard(p, LAION400M, BIRHANE2021) for p in paths)
    ref = merge_reference([reference_metrics(t, LAION400M, BIRHANE2021) for t in tables])
    lifts = term_lifts(total)
    checked = 0
    for term, stats in ref["terms"].items():
        got = lifts[term]["keyword"]
        if stats["matches"] == 0:
            assert got is None
            continue
        rate = stats["keyword_nsfw"] / stats["matches"]
        base = ref["keyword_nsfw_rows"] / ref["rows"]
        assert got is not None and math.isclose(got.value, rate / base)
        low, high = wilson(stats["keyword_nsfw"], stats["matches"])
        assert (got.low, got.high) == (low / base, high / base)
        tag = lifts[term]["tag"]
        tags = stats["nsfw_flag_counts"]
        base_tag = ref["nsfw_flag_counts"]["NSFW"] / sum(ref["nsfw_flag_counts"].values())
        want = tags["NSFW"] / sum(tags.values()) / base_tag
        assert tag is not None and math.isclose(tag.value, want)
        checked += 1
    assert checked >= 5


def test_psi_and_the_two_proportion_test_by_hand() -> None:
    from shardwatch.core.stats import psi, two_proportion_test

    # shares (0.5, 0.5) -> (0.8, 0.2): 0.3 ln 1.6 + 0.3 ln 2.5
    assert psi([50, 50], [80, 20]) == pytest.approx(0.3 * math.log(1.6) + 0.3 * math.log(2.5))
    assert psi([50, 50], [80, 20]) == pytest.approx(0.415888, abs=1e-6)
    assert psi([10, 0], [10, 0]) == 0.0 and psi([0, 0], [1, 1]) is None
    # 30/100 vs 20/100: pooled 0.25, se sqrt(0.25 * 0.75 * 0.02) = 0.0612372
    test = two_proportion_test(30, 100, 20, 100)
    assert test is not None
    assert test.z == pytest.approx(1.632993, abs=1e-6)
    assert test.p_value == pytest.approx(0.102470, abs=1e-5)
    assert two_proportion_test(0, 10, 0, 10) is None  # no variance, no test


def test_drift_of_a_shard_is_against_the_rest_of_the_dataset(tmp_path: Path) -> None:
    from shardwatch.core.stats import coarse_bins, drift, psi, two_proportion_test

    tables = [adversarial_table(1000, seed) for seed in (51, 52, 53)]
    paths = [write_shard(t, tmp_path, f"d{i}.parquet") for i, t in enumerate(tables)]
    shards = [scan_shard(p, LAION400M, BIRHANE2021) for p in paths]
    total = ShardMetrics.merge_all(shards)
    rest = ShardMetrics.merge_all(shards[1:])  # what "the rest" must equal
    found = drift(shards[0], total)
    assert shards[0].similarity is not None and rest.similarity is not None
    want = psi(coarse_bins(rest.similarity.histogram), coarse_bins(shards[0].similarity.histogram))
    assert found.similarity_psi == want and want is not None and want > 0
    ref = [reference_metrics(t, LAION400M, BIRHANE2021) for t in tables]
    k1, n1 = ref[0]["keyword_nsfw_rows"], ref[0]["rows"]
    k2 = sum(r["keyword_nsfw_rows"] for r in ref[1:])
    assert found.keyword == two_proportion_test(k1, n1, k2, sum(r["rows"] for r in ref[1:]))
    t1 = ref[0]["nsfw_flag_counts"]
    t2 = merge_reference(ref[1:])["nsfw_flag_counts"]
    assert found.tag == two_proportion_test(t1["NSFW"], sum(t1.values()), t2["NSFW"],
                                            sum(t2.values()))


def test_interval_bounds_are_exactly_0_and_1_at_the_ends() -> None:
    from shardwatch.core.stats import lift, wilson

    for n in (1, 7, 71, 10_000):
        assert wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0
    found = lift(0, 71, 100, 10_000)
    assert found is not None and found.low == 0.0 and found.text().startswith("0.00 [0.00,")


def test_drift_below_its_minimum_support_says_too_few_rows() -> None:
    from shardwatch.core.stats import MIN_DRIFT_ROWS, drift

    tables = [tagged_table(1, 1, seed=1), tagged_table(5_000, 50, seed=2)]
    shards = [scan_batches(t.to_batches(), t.schema, LAION400M, BIRHANE2021) for t in tables]
    total = ShardMetrics.merge_all(shards)
    tiny = drift(shards[0], total)
    assert (tiny.tag, tiny.keyword, tiny.similarity_psi) == (None, None, None)
    assert set(tiny.too_few_rows) == {"tag", "keyword", "similarity"}
    big = drift(shards[1], total)  # 5,000 rows, but the rest holds 1: still too few
    assert big.tag is None and "tag" in big.too_few_rows
    assert MIN_DRIFT_ROWS > 1
    three = [tagged_table(MIN_DRIFT_ROWS, 10, seed=s) for s in (3, 4)]
    scans = [scan_batches(t.to_batches(), t.schema, LAION400M, BIRHANE2021) for t in three]
    ok = drift(scans[0], ShardMetrics.merge_all(scans))
    assert ok.tag is not None and ok.too_few_rows == ()


def test_rate_bounds_are_sharp_against_every_completion() -> None:
    """Brute force: every true (keyword, rows) the bounds allow, i.e. keyword + y and rows + x
    with 0 <= y <= keyword_error, 0 <= x <= rows_error, y <= x (the extra keyword rows are
    rows too); the bounds are the min and max of the true rate."""
    from shardwatch.core.stats import rate_bounds

    for k in range(4):
        for n in range(k, 6):
            for ek in range(4):
                for en in range(4):
                    rates = [
                        (k + y) / (n + x)
                        for y in range(ek + 1)
                        for x in range(en + 1)
                        if y <= x and n + x > 0 and k + y <= n + x
                    ]
                    bounds = rate_bounds(k, ek, n, en)
                    if not rates:
                        assert bounds is None
                        continue
                    assert bounds is not None
                    assert bounds[0] == pytest.approx(min(rates)), (k, ek, n, en)
                    assert bounds[1] == pytest.approx(max(rates)), (k, ek, n, en)
