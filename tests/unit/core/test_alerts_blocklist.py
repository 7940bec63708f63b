"""The built-in `blocklisted-rows` rule: breaches when any row of a shard matches a configured
list, names the lists with counts only, and is critical unless every matching list is a
warning list (or the rule itself was lowered)."""

from __future__ import annotations

import hashlib

import pytest

from shardwatch.core.alerts import DEFAULT_RULES, Rule, failing_checks, judge
from shardwatch.core.blocklist import BlocklistStats, entry_id
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.validation import Check, ShardValidation
from shardwatch.settings.alerts import AlertSettings, RuleSpec

pytestmark = pytest.mark.unit

URL = "https://example.org/secret/a.jpg"
MATCHED = frozenset({entry_id("url", hashlib.sha256(URL.encode()).digest())})


def shard(**lists: BlocklistStats) -> ShardMetrics:
    return ShardMetrics(rows=100, blocklists=lists)


def stats(rows: int, entries: int = 1000, kind: str = "url") -> BlocklistStats:
    return BlocklistStats(kind, entries, rows, MATCHED if rows else frozenset(), {"v1": 1})  # type: ignore[arg-type]


def blocklist_obs(metrics: ShardMetrics, **severity: str) -> list:  # type: ignore[type-arg]
    found = judge(DEFAULT_RULES, metrics, "shard", list_severity=severity)  # type: ignore[arg-type]
    return [o for o in found if o.rule.name == "blocklisted-rows"]


def test_the_builtin_rule_is_critical_on_shards_and_breaches_on_one_row() -> None:
    (rule,) = [r for r in DEFAULT_RULES if r.metric == "blocklisted_rows"]
    assert (rule.name, rule.severity, rule.level, rule.max) == (
        "blocklisted-rows",
        "critical",
        "shard",
        0,
    )
    (ob,) = blocklist_obs(shard(csam=stats(1), spam=stats(0, kind="domain")))
    assert ob.breaching and ob.observed == 1.0 and ob.rule.severity == "critical"
    assert ob.term is None  # one alert per shard, naming the lists
    assert ob.describe() == "list csam: 1 row (1 of 1,000 entries)"
    (ob,) = blocklist_obs(shard(a=stats(3), b=stats(2, entries=5)))
    assert ob.observed == 5.0
    assert ob.describe() == "list a: 3 rows (1 of 1,000 entries); list b: 2 rows (1 of 5 entries)"


def test_no_matching_row_is_judged_not_breaching_and_no_list_is_not_judged() -> None:
    (ob,) = blocklist_obs(shard(a=stats(0), b=stats(0)))
    assert not ob.breaching and ob.observed == 0.0
    assert ob.describe() == "no row on lists a, b"
    assert blocklist_obs(ShardMetrics(rows=100)) == []  # no list checked: state left alone
    on_dataset = judge(DEFAULT_RULES, shard(a=stats(4)), "dataset")
    assert all(o.rule.name != "blocklisted-rows" for o in on_dataset)  # shard level only


def test_a_warning_list_lowers_the_alert_only_when_every_matching_list_is_one() -> None:
    (ob,) = blocklist_obs(shard(a=stats(3), b=stats(0)), a="warning", b="critical")
    assert ob.breaching and ob.rule.severity == "warning"
    (ob,) = blocklist_obs(shard(a=stats(3), b=stats(1)), a="warning", b="critical")
    assert ob.rule.severity == "critical"
    (ob,) = blocklist_obs(shard(a=stats(3)), b="warning")  # a list not named: critical
    assert ob.rule.severity == "critical"
    lowered = Rule("blocklisted-rows", "blocklisted_rows", "warning", "shard", max=0)
    (ob,) = judge([lowered], shard(a=stats(3)), "shard", list_severity={"a": "critical"})
    assert ob.rule.severity == "warning"  # the rule itself lowered: never raised by a list


def test_the_text_holds_counts_and_list_names_never_an_entry() -> None:
    (ob,) = blocklist_obs(shard(a=stats(2)))
    text = ob.describe()
    assert URL not in text and "example.org" not in text
    assert all(m.hex() not in text for m in MATCHED)


def test_the_alert_plan_carries_each_lists_severity() -> None:
    settings = AlertSettings(rules={"blocklisted-rows": RuleSpec(severity="warning")})
    plan = settings.plan(None, blocklists={"b": "warning", "a": "critical"})
    assert plan.blocklists == (("a", "critical"), ("b", "warning"))
    (rule,) = [r for r in plan.rules if r.name == "blocklisted-rows"]
    assert rule.severity == "warning" and rule.max == 0
    assert AlertSettings().plan(None).blocklists == ()


def test_a_failed_flag_check_is_the_blocklist_rules_not_the_validation_rules() -> None:
    flag = Check(
        3,
        "expect_column_values_to_not_be_in_set",
        "blocklist_csam",
        None,
        "failed",
        {"unexpected_count": 2, "element_count": 100},
        {"value_set": [True]},
    )
    other = Check(1, "expect_column_values_to_not_be_null", "id", None, "failed", None, None)
    own = Check(
        2,
        "expect_column_values_to_not_be_in_set",
        "blocklist_csam",
        "term_x == True",
        "failed",
        None,
        None,
    )  # a check of the user's own, with a condition: counted
    assert failing_checks(ShardValidation("s", "r", (flag,))) == (0, None)
    count, names = failing_checks(ShardValidation("s", "r", (other, flag, own)))
    assert count == 2 and names is not None and "on id" in names and "if term_x" in names


def test_a_list_the_shard_could_not_be_checked_against_is_not_judged() -> None:
    """A shard without the column a list needs reports the list unavailable (`missing_in`):
    its zero rows must not recover an open alert; the other lists are still judged."""
    unchecked = ShardMetrics(
        rows=100, blocklists={"ids": stats(0, kind="id")}, missing_in={"blocklists.ids": 1}
    )
    assert blocklist_obs(unchecked) == []
    mixed = ShardMetrics(
        rows=100,
        blocklists={"ids": stats(0, kind="id"), "urls": stats(2)},
        missing_in={"blocklists.ids": 1},
    )
    (ob,) = blocklist_obs(mixed)
    assert ob.breaching and ob.describe() == "list urls: 2 rows (1 of 1,000 entries)"
    clean = ShardMetrics(
        rows=100,
        blocklists={"ids": stats(0, kind="id"), "urls": stats(0)},
        missing_in={"blocklists.ids": 1},
    )
    (ob,) = blocklist_obs(clean)
    assert not ob.breaching and ob.describe() == "no row on lists urls"
