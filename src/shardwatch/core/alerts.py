"""Alerts: judge a shard's (or a dataset's) metrics against the alert rules.

A rule names a metric, a bound (`max` and/or `min`), a severity and a minimum support: a rate
is judged only when its denominator (rows, non-null similarities, or a term's matches) reaches
`min_support`, so no alert fires on a term rate computed from 3 matches. A metric the shard
cannot provide (a missing column) and a rate below its support are not judged at all: the
alert's state is left as it was. Observations carry numbers, rule names, terms and check
names only, never captions or URLs from the data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from shardwatch.core.blocklist import is_flag_check
from shardwatch.core.domain_sketch import DomainStat
from shardwatch.core.metrics import KEYWORD_NSFW_ROWS, ShardMetrics
from shardwatch.core.schema import SchemaDrift
from shardwatch.core.stats import drift, term_lifts
from shardwatch.core.validation import ShardValidation

Severity = Literal["warning", "critical"]
Level = Literal["shard", "dataset", "both"]
Metric = Literal[
    "nsfw_tag_rate",
    "keyword_nsfw_rate",
    "similarity_below_rate",
    "term_keyword_nsfw_rate",
    "term_tag_nsfw_rate",
    "term_keyword_lift",
    "term_tag_lift",
    "keyword_tag_disagreement",
    "unsafe_tag_disagreement",
    "similarity_psi",
    "tag_rate_drift",
    "keyword_rate_drift",
    "new_domain_keyword_nsfw_rate",
    "validation_failures",
    "validation_not_run",
    "schema_drift",
    "shard_failed",
    "blocklisted_rows",
]
DRIFT_METRICS = ("similarity_psi", "tag_rate_drift", "keyword_rate_drift")
METRICS: tuple[str, ...] = get_args(Metric)
LEVELS: tuple[str, ...] = get_args(Level)


@dataclass(frozen=True)
class Rule:
    """One alert rule: breach when the metric is above `max` or below `min`."""

    name: str
    metric: Metric
    severity: Severity = "warning"
    level: Level = "both"
    max: float | None = None
    min: float | None = None
    min_support: int = 1
    label: str = "NSFW"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        if self.severity not in ("warning", "critical"):
            raise ValueError(f"severity must be warning or critical, not {self.severity!r}")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        if self.max is None and self.min is None:
            raise ValueError("set max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.min_support < 1:
            raise ValueError("min_support must be at least 1")

    def replace(self, **changes: object) -> Rule:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def applies_to(self, level: Literal["shard", "dataset"]) -> bool:
        return self.level in (level, "both")

    def threshold(self) -> str:
        """The bound as text, e.g. `<= 0.01`."""
        if self.min is None:
            return f"<= {self.max:g}"
        if self.max is None:
            return f">= {self.min:g}"
        return f"{self.min:g}..{self.max:g}"

    def breached_by(self, value: float) -> bool:
        return (self.max is not None and value > self.max) or (
            self.min is not None and value < self.min
        )


DEFAULT_RULES: tuple[Rule, ...] = (
    # The curators' claim: under 1% of rows tagged NSFW (the audit found far more).
    Rule("nsfw-tag-rate", "nsfw_tag_rate", "critical", "both", max=0.01, min_support=1000),
    # Base rate under lexicon precise2026 (the default): 0.47% of 10,000 real LAION-400M rows
    # are keyword-NSFW; alert above 5%. (The paper's substring rule, birhane2021, flags 16.0%
    # of the same rows, mostly 'hot' in 'photo': with it, set this rule's max to 0.2.)
    Rule("keyword-nsfw-rate", "keyword_nsfw_rate", "warning", "both", max=0.05, min_support=1000),
    # The audit's Table 1: desi 34.1%, latina 28.2% keyword-NSFW among their matches. Under
    # precise2026 no term reaches 50 matches in the 10,000 real rows (mom: 1 of 16).
    Rule(
        "term-keyword-nsfw-rate",
        "term_keyword_nsfw_rate",
        "warning",
        "both",
        max=0.25,
        min_support=50,
    ),
    # LAION-400M claims every pair is at or above the 0.3 cut-off.
    Rule(
        "similarity-below-cutoff",
        "similarity_below_rate",
        "warning",
        "both",
        max=0.01,
        min_support=1000,
    ),
    # The audit's central finding: the tag called most keyword-NSFW rows UNLIKELY.
    Rule(
        "keyword-nsfw-tagged-unlikely",
        "keyword_tag_disagreement",
        "warning",
        "dataset",
        max=0.5,
        min_support=100,
        label="UNLIKELY",
    ),
    # A domain no earlier shard listed, arriving with mostly keyword-NSFW rows. Under
    # precise2026 no domain with 20+ of the 10,000 real rows exceeds 20%; the paper's rule
    # put 8 stock-photo hosts above 50% ('photo' holds 'hot').
    Rule(
        "new-high-risk-domain",
        "new_domain_keyword_nsfw_rate",
        "warning",
        "shard",
        max=0.5,
        min_support=50,
    ),
    Rule("validation", "validation_failures", "warning", "shard", max=0),
    # The suite was missing or GX crashed: the shard was not validated (not a failed check).
    Rule("validation-not-run", "validation_not_run", "critical", "shard", max=0),
    # Columns renamed, missing, retyped or unexpected: the checks could not all run.
    Rule("schema-drift", "schema_drift", "critical", "shard", max=0),
    # A shard that ended failed or quarantined (its reason in the detail); it recovers when
    # a version of it is done.
    Rule("shard-failures", "shard_failed", "warning", "shard", max=0),
    # Rows of the shard on a configured `[blocklists.<name>]` (blocklist_observation).
    Rule("blocklisted-rows", "blocklisted_rows", "critical", "shard", max=0),
)


@dataclass(frozen=True)
class AlertPlan:
    """What `ResultStore.complete` judges and where notices go: the rules, the channel
    names, the Data Docs index (links are kept relative to its folder), whether the
    pass writes a report per run (`run-N.html`, which its notices then link to), and each
    configured blocklist's severity (a list not named here is critical)."""

    rules: tuple[Rule, ...]
    channels: tuple[str, ...]
    docs_index: str | None = None
    reports: bool = False
    blocklists: tuple[tuple[str, Severity], ...] = ()


@dataclass(frozen=True)
class Observation:
    """A rule judged on one shard or dataset (and one term, for term rules)."""

    rule: Rule
    observed: float
    breaching: bool
    term: str | None = None
    count: int | None = None  # the rate's numerator
    support: int | None = None  # the rate's denominator
    detail: str | None = None  # e.g. the failing checks' names (never data values)

    def describe(self) -> str:
        """`12 of 351` for rates; the detail for other metrics."""
        if self.count is not None and self.support is not None:
            return f"{self.count} of {self.support}"
        return self.detail or ""


def judge(
    rules: Sequence[Rule],
    metrics: ShardMetrics,
    level: Literal["shard", "dataset"],
    *,
    validation_failures: int | None = None,
    failure_detail: str | None = None,
    not_run: str | None = None,
    baseline: ShardMetrics | None = None,
    new_domains: Mapping[str, DomainStat] | None = None,
    schema_drift: SchemaDrift | None = None,
    list_severity: Mapping[str, Severity] | None = None,
) -> list[Observation]:
    """Every rule of `level` that can be judged on `metrics` (and the validation count).
    Drift rules judge a shard against `baseline`, its dataset's total (shard level only).
    The new-domain rule judges `new_domains`: the shard's listed domains that no other
    current shard of its dataset lists (shard level only). Schema-drift rules judge how
    many columns drifted (shard level; None: the columns were not checked). The blocklist
    rule judges the lists checked on the shard, each at its `list_severity` (default
    critical; shard level)."""
    out: list[Observation] = []
    for rule in rules:
        if not rule.applies_to(level):
            continue
        if rule.metric == "shard_failed":
            if level == "shard":  # judged here on a done shard; failures: failure_observations
                out.append(Observation(rule, 0.0, rule.breached_by(0.0)))
            continue
        if rule.metric == "schema_drift":
            if level == "shard" and schema_drift is not None:
                value = float(schema_drift.columns)
                detail = schema_drift.describe() if schema_drift else None
                out.append(Observation(rule, value, rule.breached_by(value), detail=detail))
            continue
        if rule.metric == "blocklisted_rows":
            found = blocklist_observation(rule, metrics, list_severity or {})
            if level == "shard" and found is not None:
                out.append(found)
            continue
        if rule.metric == "new_domain_keyword_nsfw_rate":
            if level == "shard" and new_domains is not None:
                out += _new_domains(rule, new_domains)
            continue
        if rule.metric in DRIFT_METRICS:
            if level == "shard" and baseline is not None:
                out += _drift(rule, metrics, baseline)
            continue
        if rule.metric == "validation_not_run":
            if level == "shard" and (validation_failures is not None or not_run):
                value = 1.0 if not_run else 0.0
                out.append(Observation(rule, value, rule.breached_by(value), detail=not_run))
            continue
        if rule.metric == "validation_failures":
            if validation_failures is not None:
                value = float(validation_failures)
                out.append(Observation(rule, value, rule.breached_by(value), detail=failure_detail))
            continue
        if rule.metric in ("term_keyword_lift", "term_tag_lift"):
            out += _lifts(rule, metrics)
            continue
        for term, count, support in _rates(rule, metrics):
            if support < rule.min_support or support == 0:
                continue  # too little evidence: not judged
            value = count / support
            out.append(Observation(rule, value, rule.breached_by(value), term, count, support))
    return out


def failure_observations(rules: Sequence[Rule], status: str, reason: str) -> list[Observation]:
    """The `shard_failed` rules judged on a shard that ended `status` (failed or
    quarantined) for `reason`."""
    return [
        Observation(rule, 1.0, rule.breached_by(1.0), detail=f"{status}: {reason}"[:500])
        for rule in rules
        if rule.metric == "shard_failed" and rule.applies_to("shard")
    ]


def blocklist_observation(
    rule: Rule, metrics: ShardMetrics, severity: Mapping[str, Severity]
) -> Observation | None:
    """Rows on the lists checked (a row on two lists counts twice), the matching lists named
    with counts (never an entry, URL, id or domain); critical if the rule and a matching list
    are. None (not judged) when no list was checked: `missing_in` has `blocklists.<name>`."""
    lists = dict(sorted((metrics.blocklists or {}).items()))
    lists = {n: s for n, s in lists.items() if not metrics.missing_in.get(f"blocklists.{n}")}
    if not lists:
        return None
    hits = {name: stats for name, stats in lists.items() if stats.rows > 0}
    value = float(sum(stats.rows for stats in hits.values()))
    if hits and all(severity.get(name, "critical") == "warning" for name in hits):
        rule = rule.replace(severity="warning")  # a rule lowered to warning stays one
    detail = "; ".join(f"list {name}: {stats.describe()}" for name, stats in hits.items())
    detail = detail or f"no row on lists {', '.join(lists)}"
    return Observation(rule, value, rule.breached_by(value), detail=detail)


def _drift(rule: Rule, shard: ShardMetrics, total: ShardMetrics) -> list[Observation]:
    """PSI of the similarity histogram (support: the shard's values), or |z| of a
    two-proportion test of the tag or keyword rate (support: the shard's rows), against
    the rest of the dataset."""
    found = drift(shard, total, rule.label)
    if rule.metric == "similarity_psi":
        sim = shard.similarity
        if found.similarity_psi is None or sim is None or sim.count < rule.min_support:
            return []
        value = found.similarity_psi
        detail = f"PSI {value:.3f} over {sim.count:,} values"
    else:
        test = found.tag if rule.metric == "tag_rate_drift" else found.keyword
        if test is None or shard.rows < rule.min_support:
            return []
        value = abs(test.z)
        detail = (
            f"rate {100 * test.rate1:.2f}% vs {100 * test.rate2:.2f}% in the rest, z {test.z:.2f}, "
            f"p {test.p_value:.2g}"
        )
    return [Observation(rule, value, rule.breached_by(value), detail=detail)]


def _new_domains(rule: Rule, domains: Mapping[str, DomainStat]) -> list[Observation]:
    """The keyword-NSFW rate of each new domain with at least `min_support` rows (the
    domain is the observation's subject, like a term)."""
    out = []
    for domain, stat in sorted(domains.items()):
        if stat.rows < rule.min_support or stat.rows == 0:
            continue
        value = stat.keyword_nsfw / stat.rows
        breaching = rule.breached_by(value)
        out.append(Observation(rule, value, breaching, domain, stat.keyword_nsfw, stat.rows))
    return out


def _lifts(rule: Rule, m: ShardMetrics) -> list[Observation]:
    """Lift rules judge the LOWER bound of the 95% interval ("lift is above 2 with 95%
    confidence"), for terms with at least `min_support` matches."""
    kind = "keyword" if rule.metric == "term_keyword_lift" else "tag"
    out = []
    for term, lifts in term_lifts(m, rule.label).items():
        found = lifts[kind]
        stats = (m.terms or {})[term]
        tags = stats.nsfw_flag_counts or {}
        if kind == "keyword":
            count, support = stats.keyword_nsfw, stats.matches
        else:
            count, support = tags.get(rule.label, 0), sum(tags.values())
        if found is None or support < rule.min_support:
            continue
        detail = f"lift {found.text()}, {count:,} of {support:,}"
        out.append(Observation(rule, found.low, rule.breached_by(found.low), term, detail=detail))
    return out


def _rates(rule: Rule, m: ShardMetrics) -> Iterator[tuple[str | None, int, int]]:
    """(term, numerator, denominator) of the rule's rate(s); nothing if unavailable.

    Denominators count only rows that could contribute to the numerator: a tag rate is over
    the rows of shards that have the tag (the tag counts, `other` and `null` included), so a
    merged URL+TEXT-only shard does not dilute it; a keyword rate is not judged on a total
    where some shard had neither caption nor URL."""
    if rule.metric == "nsfw_tag_rate" and m.nsfw_flag_counts is not None:
        yield None, m.nsfw_flag_counts.get(rule.label, 0), sum(m.nsfw_flag_counts.values())
    elif rule.metric == "keyword_nsfw_rate" and m.keyword_nsfw_rows is not None:
        if not m.missing_in.get(KEYWORD_NSFW_ROWS):
            yield None, m.keyword_nsfw_rows, m.rows
    elif rule.metric == "keyword_tag_disagreement" and m.keyword_nsfw_by_tag is not None:
        by_tag = m.keyword_nsfw_by_tag  # keyword-NSFW rows the tag calls `label`
        yield None, by_tag.get(rule.label, 0), sum(by_tag.values())
    elif rule.metric == "unsafe_tag_disagreement" and m.unsafe_by_tag is not None:
        by_tag = m.unsafe_by_tag  # rows the second score calls unsafe, the tag calls `label`
        yield None, by_tag.get(rule.label, 0), sum(by_tag.values())
    elif rule.metric == "similarity_below_rate" and m.similarity is not None:
        yield None, m.similarity.below_threshold, m.similarity.count
    elif rule.metric == "term_keyword_nsfw_rate" and m.terms is not None:
        for term, stats in m.terms.items():
            yield term, stats.keyword_nsfw, stats.matches
    elif rule.metric == "term_tag_nsfw_rate" and m.terms is not None:
        for term, stats in m.terms.items():
            if stats.nsfw_flag_counts is not None:
                tags = stats.nsfw_flag_counts
                yield term, tags.get(rule.label, 0), sum(tags.values())


def failing_checks(validation: ShardValidation | None) -> tuple[int | None, str | None]:
    """How many checks failed or errored, and their names (expectation on column). Checks
    errored by schema drift are left to the `schema_drift` metric, a validation that could
    not run at all to `validation_not_run`, and a blocklist's flag check to
    `blocklisted_rows`: one cause, one alert."""
    if validation is None or validation.not_run:
        return None, None
    bad = [
        c
        for c in validation.checks
        if c.status != "passed"
        and not c.by_drift
        and not is_flag_check(c.expectation, c.column, c.condition)
    ]
    names = [
        f"{c.expectation}"
        + (f" on {c.column}" if c.column else "")
        + (f" if {c.condition}" if c.condition else "")
        for c in bad[:5]
    ]
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return len(bad), ("; ".join(names) + more) if bad else None
