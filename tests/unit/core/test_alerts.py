"""Alert rules: every judged rate equals the reference count over the same rows, the bounds
and the minimum support decide exactly which keys breach, and unjudgeable metrics stay out."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.builders import adversarial_table, real_fixture, table_with_columns
from support.reference import merge_reference, reference_metrics

from shardwatch.core.alerts import DEFAULT_RULES, Rule, failing_checks, judge
from shardwatch.core.lexicon import BIRHANE2021, PRECISE2026, Lexicon
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.core.validation import Check, ShardValidation
from shardwatch.scan.engine import CompiledLexicon, scan_batches

pytestmark = pytest.mark.unit

ALL_METRIC_RULES = (
    Rule("tag", "nsfw_tag_rate", max=0.02),
    Rule("kw", "keyword_nsfw_rate", max=0.1),
    Rule("sim", "similarity_below_rate", max=0.05),
    Rule("term-kw", "term_keyword_nsfw_rate", max=0.2, min_support=5),
    Rule("term-tag", "term_tag_nsfw_rate", max=0.05, min_support=5, label="NSFW"),
)


def scanned(table: Any) -> ShardMetrics:
    return scan_batches(
        table.to_batches(max_chunksize=300), table.schema, LAION400M, CompiledLexicon(BIRHANE2021)
    )


def expected(rule: Rule, ref: dict[str, Any]) -> dict[str | None, tuple[int, int]]:
    """(numerator, denominator) per term (None: not a term rule), from the reference."""
    if rule.metric == "nsfw_tag_rate":
        return {None: (ref["nsfw_flag_counts"].get(rule.label, 0), ref["rows"])}
    if rule.metric == "keyword_nsfw_rate":
        return {None: (ref["keyword_nsfw_rows"], ref["rows"])}
    if rule.metric == "similarity_below_rate":
        sim = ref["similarity"]
        return {None: (sim["below_threshold"], sim["count"])}
    out = {}
    for term, stats in ref["terms"].items():
        numerator = (
            stats["keyword_nsfw"]
            if rule.metric == "term_keyword_nsfw_rate"
            else stats["nsfw_flag_counts"].get(rule.label, 0)
        )
        out[term] = (numerator, stats["matches"])
    return out


@pytest.mark.parametrize("seed", [3, 8])
def test_every_judged_rate_equals_the_reference_count(seed: int) -> None:
    table = adversarial_table(2000, seed)
    ref = reference_metrics(table, LAION400M, BIRHANE2021)
    observations = judge(ALL_METRIC_RULES, scanned(table), "shard")
    judged_terms = 0
    for rule in ALL_METRIC_RULES:
        got = {o.term: o for o in observations if o.rule is rule}
        want = {
            term: (k, n)
            for term, (k, n) in expected(rule, ref).items()
            if n >= rule.min_support and n > 0
        }
        assert set(got) == set(want), rule.name  # judged exactly where support suffices
        for term, (k, n) in want.items():
            o = got[term]
            assert (o.count, o.support) == (k, n)
            assert o.observed == k / n
            assert o.breaching is (k / n > (rule.max or 0))
            judged_terms += term is not None
    assert judged_terms >= 5  # the term rules really were exercised
    assert any(o.breaching for o in observations)
    relaxed = [r.replace(max=1.0) for r in ALL_METRIC_RULES]
    assert not any(o.breaching for o in judge(relaxed, scanned(table), "shard"))


def test_min_support_is_the_fewest_matches_judged() -> None:
    table = adversarial_table(2000, 5)
    metrics = scanned(table)
    assert metrics.terms is not None
    matches = sorted({s.matches for s in metrics.terms.values() if s.matches})
    cut = matches[len(matches) // 2]
    rule = Rule("t", "term_keyword_nsfw_rate", max=0.0, min_support=cut)
    judged = {o.term for o in judge([rule], metrics, "shard")}
    assert judged == {t for t, s in metrics.terms.items() if s.matches >= cut}
    assert 0 < len(judged) < len(metrics.terms)


def test_min_and_max_bounds() -> None:
    table = adversarial_table(1000, 4)
    metrics = scanned(table)
    (o,) = judge([Rule("kw", "keyword_nsfw_rate", max=1.0)], metrics, "shard")
    rate = o.observed
    assert not o.breaching

    def breaches(**bound: Any) -> bool:
        return judge([Rule("kw", "keyword_nsfw_rate", **bound)], metrics, "shard")[0].breaching

    assert not breaches(min=rate) and not breaches(max=rate)  # the bounds are inclusive
    assert breaches(min=rate + 1e-9) and breaches(max=rate - 1e-9)


def test_a_metric_the_shard_lacks_is_not_judged() -> None:
    metrics = scanned(table_with_columns(["URL", "TEXT"]))  # no tag, no similarity
    observations = judge(ALL_METRIC_RULES, metrics, "shard")
    assert {o.rule.name for o in observations} <= {"kw", "term-kw"}
    assert all(o.rule.name != "tag" and o.rule.name != "sim" for o in observations)


def test_levels_select_the_rules() -> None:
    metrics = scanned(adversarial_table(500, 1))
    rules = [
        Rule("s", "keyword_nsfw_rate", level="shard", max=0.5),
        Rule("d", "keyword_nsfw_rate", level="dataset", max=0.5),
        Rule("b", "keyword_nsfw_rate", level="both", max=0.5),
    ]
    assert [o.rule.name for o in judge(rules, metrics, "shard")] == ["s", "b"]
    assert [o.rule.name for o in judge(rules, metrics, "dataset")] == ["d", "b"]


def test_validation_failures_count_failed_and_errored_checks_by_name() -> None:
    def check(i: int, status: str, column: str | None = "id") -> Check:
        return Check(i, f"expect_{i}", column, None, status, None, None)  # type: ignore[arg-type]

    v = ShardValidation(
        "s", "r", (check(0, "passed"), check(1, "failed"), check(2, "errored", None))
    )
    count, detail = failing_checks(v)
    assert count == 2 and detail == "expect_1 on id; expect_2"
    rule = Rule("validation", "validation_failures", level="shard", max=0)
    (o,) = judge([rule], ShardMetrics(), "shard", validation_failures=count, failure_detail=detail)
    assert o.breaching and o.observed == 2 and o.describe() == detail
    (ok,) = judge([rule], ShardMetrics(), "shard", validation_failures=0)
    assert not ok.breaching
    assert judge([rule], ShardMetrics(), "shard") == []  # not validated: not judged


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "set max, min or both"),
        ({"min": 0.5, "max": 0.1}, "above max"),
        ({"max": 1, "min_support": 0}, "at least 1"),
        ({"max": 1, "level": "cluster"}, "level must be"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule("r", "keyword_nsfw_rate", **kwargs)
    with pytest.raises(ValueError, match="unknown metric"):
        Rule("r", "caption_length", max=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("lexicon", [PRECISE2026, BIRHANE2021], ids=["precise", "paper"])
def test_default_rules_on_the_real_rows(lexicon: Lexicon) -> None:
    """The built-in rules on 10,000 real LAION-400M rows (URL and TEXT only): the keyword
    and term rates are judged from exactly the reference counts; the tag is not judged.
    Calibrated on the default lexicon, clean real data stays quiet there; the paper's
    substring rule (16% of rows, mostly 'hot' in 'photo') breaches the keyword rate."""
    table = pq.read_table(real_fixture("laion400m_url_text_10000.parquet"))
    ref = reference_metrics(table, LAION400M, lexicon.name)
    metrics = scan_batches(
        table.to_batches(max_chunksize=300), table.schema, LAION400M, CompiledLexicon(lexicon)
    )
    observations = judge(DEFAULT_RULES, metrics, "dataset")
    by_key = {(o.rule.name, o.term): o for o in observations}
    assert ("nsfw-tag-rate", None) not in by_key  # no NSFW column in these rows
    kw = by_key[("keyword-nsfw-rate", None)]
    assert (kw.count, kw.support) == (ref["keyword_nsfw_rows"], ref["rows"])
    assert kw.breaching is (lexicon is BIRHANE2021)
    terms = {term for name, term in by_key if name == "term-keyword-nsfw-rate"}
    assert terms == {t for t, s in ref["terms"].items() if s["matches"] >= 50}
    for term in terms:
        o = by_key[("term-keyword-nsfw-rate", term)]
        assert (o.count, o.support) == (
            ref["terms"][term]["keyword_nsfw"],
            ref["terms"][term]["matches"],
        )
    assert metrics.domains is not None
    domains = judge(DEFAULT_RULES, metrics, "shard", new_domains=dict(metrics.domains.top))
    risky = [o.term for o in domains if o.rule.name == "new-high-risk-domain" and o.breaching]
    assert (risky == []) is (lexicon is PRECISE2026), risky


def test_shards_without_the_column_do_not_dilute_a_dataset_rate() -> None:
    """A dataset total merged from a tagged shard and a URL+TEXT-only one: the tag rates are
    over the tagged rows only (the term's too); the keyword rate over every row."""
    tagged = adversarial_table(600, 2)
    bare = table_with_columns(["URL", "TEXT"], n_rows=900, seed=3)
    ref = reference_metrics(tagged, LAION400M, BIRHANE2021)
    both = merge_reference([ref, reference_metrics(bare, LAION400M, BIRHANE2021)])
    total = ShardMetrics.merge_all([scanned(tagged), scanned(bare)])
    assert total.rows == 1500
    rules = [r.replace(min_support=1) for r in ALL_METRIC_RULES]
    by_key = {(o.rule.name, o.term): o for o in judge(rules, total, "dataset")}
    tag = by_key[("tag", None)]
    assert (tag.count, tag.support) == (ref["nsfw_flag_counts"]["NSFW"], 600)
    kw = by_key[("kw", None)]
    assert (kw.count, kw.support) == (both["keyword_nsfw_rows"], 1500)
    assert total.keyword_nsfw_rows == both["keyword_nsfw_rows"]
    for term, stats in ref["terms"].items():
        if stats["matches"]:
            o = by_key[("term-tag", term)]
            assert (o.count, o.support) == (stats["nsfw_flag_counts"]["NSFW"], stats["matches"])
            # the term's matches count every row, the untagged shard's too
            assert total.terms is not None
            assert total.terms[term].matches == both["terms"][term]["matches"]


def test_lift_rules_judge_the_lower_bound_of_the_interval() -> None:
    """ "Lift's lower bound above 1.5 with at least 20 matches", from the reference counts."""
    from shardwatch.core.stats import wilson

    table = adversarial_table(3000, 6)
    ref = reference_metrics(table, LAION400M, BIRHANE2021)
    rule = Rule("lift", "term_keyword_lift", "critical", "dataset", max=1.5, min_support=20)
    observations = {o.term: o for o in judge([rule], scanned(table), "dataset")}
    base = ref["keyword_nsfw_rows"] / ref["rows"]
    want = {t for t, s in ref["terms"].items() if s["matches"] >= 20}
    assert set(observations) == want and len(want) >= 3
    for term in want:
        stats = ref["terms"][term]
        low, _ = wilson(stats["keyword_nsfw"], stats["matches"])
        o = observations[term]
        assert o.observed == low / base
        assert o.breaching is (low / base > 1.5)
        assert f"{stats['keyword_nsfw']} of {stats['matches']}" in (o.detail or "")
    tag_rule = Rule("tag-lift", "term_tag_lift", max=1.0, min_support=20)
    tagged = judge([tag_rule], scanned(table), "shard")
    assert tagged and all(o.detail and o.detail.startswith("lift ") for o in tagged)


def test_keyword_rows_the_tag_calls_unlikely_by_hand() -> None:
    """100 rows, 20 with a keyword caption, the first 5 of them tagged NSFW: the tag calls
    15 of the 20 keyword-NSFW rows UNLIKELY (0.75); a shard whose 20 keyword rows are all
    tagged NSFW has 0 of 20; together 15 of 40. Merged totals judge the sum."""
    from support.builders import tagged_table

    rule = Rule(
        "dis", "keyword_tag_disagreement", level="both", max=0.5, min_support=10, label="UNLIKELY"
    )
    loose = scanned(tagged_table(100, 5, keyword=20))
    strict = scanned(tagged_table(100, 20, seed=1, keyword=20))
    assert loose.keyword_nsfw_by_tag == {
        "UNLIKELY": 15,
        "UNSURE": 0,
        "NSFW": 5,
        "other": 0,
        "null": 0,
    }
    (a,) = judge([rule], loose, "shard")
    assert (a.count, a.support, a.observed, a.breaching) == (15, 20, 0.75, True)
    (b,) = judge([rule], strict, "shard")
    assert (b.count, b.support, b.breaching) == (0, 20, False)
    (total,) = judge([rule], ShardMetrics.merge_all([loose, strict]), "dataset")
    assert (total.count, total.support, total.observed, total.breaching) == (15, 40, 0.375, False)
    assert any(r.metric == "keyword_tag_disagreement" for r in DEFAULT_RULES)


def test_drift_rules_judge_a_shard_against_its_dataset() -> None:
    """A shard with 40% NSFW tags in a dataset of 1%-tagged shards drifts (|z| large); a
    like shard does not; drift needs the dataset (baseline) and is never judged at the
    dataset level."""
    from support.builders import tagged_table

    from shardwatch.core.stats import two_proportion_test

    rules = [
        Rule("tag-drift", "tag_rate_drift", level="both", max=3.0, min_support=50),
        Rule("psi", "similarity_psi", level="shard", max=0.25, min_support=50),
    ]
    usual = [scanned(tagged_table(200, 2, seed=s)) for s in range(3)]
    odd = scanned(tagged_table(200, 80, seed=9))
    total = ShardMetrics.merge_all([*usual, odd])
    by_rule = {o.rule.name: o for o in judge(rules, odd, "shard", baseline=total)}
    want = two_proportion_test(80, 200, 6, 600)
    assert want is not None and by_rule["tag-drift"].observed == abs(want.z)
    assert by_rule["tag-drift"].breaching and "z " in (by_rule["tag-drift"].detail or "")
    assert by_rule["psi"].observed == 0.0 and not by_rule["psi"].breaching  # same 0.35s
    calm_total = ShardMetrics.merge_all(usual)  # 2, 2 and 2 of 200: no drift
    calm = {o.rule.name: o for o in judge(rules, usual[0], "shard", baseline=calm_total)}
    assert calm["tag-drift"].observed == 0.0 and not calm["tag-drift"].breaching
    assert judge(rules, odd, "shard") == []  # no baseline: not judged
    assert judge(rules, total, "dataset", baseline=total) == []


def test_unsafe_tag_disagreement_is_the_unlikely_share_of_unsafe_rows() -> None:
    rule = Rule(
        "punsafe-tagged-unlikely",
        "unsafe_tag_disagreement",
        max=0.5,
        min_support=4,
        label="UNLIKELY",
    )
    crosstab = {"UNLIKELY": 3, "UNSURE": 1, "NSFW": 1, "other": 0, "null": 0}
    [ob] = judge([rule], ShardMetrics(rows=50, unsafe_by_tag=crosstab), "dataset")
    assert (ob.count, ob.support, ob.breaching) == (3, 5, True)
    assert ob.observed == 3 / 5
    few = {"UNLIKELY": 3, "UNSURE": 0, "NSFW": 0, "other": 0, "null": 0}
    assert judge([rule], ShardMetrics(rows=50, unsafe_by_tag=few), "dataset") == []
    assert judge([rule], ShardMetrics(rows=50), "dataset") == []  # no second score


def test_the_audits_desi_rate_still_fires_under_the_default_lexicon() -> None:
    """Planted rows at the audit's rate: 34 of 100 'desi' captions with a precise keyword
    (34.1% in Table 1), among 2,000 clean rows that hold decoys only ('photo', 'hotel')."""
    texts = [f"desi {'sexy' if i < 34 else 'wedding'} {i}" for i in range(100)]
    texts += [f"photo of a hotel lobby {i}" for i in range(1_900)]
    table = pa.table({"TEXT": texts, "URL": [f"https://img.example/{i}.jpg" for i in range(2_000)]})
    metrics = scan_batches(table.to_batches(), table.schema, LAION400M, PRECISE2026)
    by_key = {(o.rule.name, o.term): o for o in judge(DEFAULT_RULES, metrics, "dataset")}
    desi = by_key[("term-keyword-nsfw-rate", "desi")]
    assert (desi.count, desi.support, desi.breaching) == (34, 100, True)
    kw = by_key[("keyword-nsfw-rate", None)]
    assert (kw.count, kw.breaching) == (34, False)  # 1.7% of rows: the decoys do not count
