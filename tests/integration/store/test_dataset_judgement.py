"""Dataset-level alert rules, judged once per pass (`ResultStore.judge_dataset`, under the
dataset lock), on SQLite and PostgreSQL.

What is judged is exact: after new shards, a replaced shard version (and content
A -> B -> A, which makes the older version current again), a quarantined twin and a forced
re-ingest, every dataset observation equals the rules judged on an independent total (each
current file scanned on its own, the scans merged), and the report's total equals it too. It
does not depend on how the shards are split into passes. A dataset breach fires once and
recovers once. (The store deletes no shard version: there is no deletion to test.)"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.builders import adversarial_table, tagged_table, write_shard
from support.store_checks import DATASET, LEXICON, ingest

from shardwatch.core.alerts import AlertPlan, Rule, judge
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.pipeline.ingest import IngestJob, ingest_file, judge_dataset
from shardwatch.scan.engine import scan_shard
from shardwatch.store import models as t
from shardwatch.store.notices import scope_key
from shardwatch.store.outbox import Outbox
from shardwatch.store.report import dataset_report
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

RULES = (
    Rule("tag", "nsfw_tag_rate", "warning", "dataset", max=0.05, min_support=10),
    Rule("keyword", "keyword_nsfw_rate", "warning", "dataset", max=0.02, min_support=10),
    Rule("term", "term_keyword_nsfw_rate", "warning", "dataset", max=0.3, min_support=2),
    Rule("similarity", "similarity_below_rate", "warning", "dataset", max=0.2, min_support=10),
    Rule("disagree", "keyword_tag_disagreement", "warning", "dataset", max=0.5, label="UNLIKELY"),
)
PLAN = AlertPlan(RULES, ("slack",))


def dataset_alerts(store: ResultStore) -> dict[str, tuple[bool, float | None, str | None]]:
    """Every dataset-scope alert key: (breaching, observed, detail)."""
    a = t.Alert
    query = select(a.scope, a.rule, a.breaching, a.observed, a.detail).where(
        a.scope.startswith("dataset")
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {f"{r.rule} {r.scope}": (r.breaching, r.observed, r.detail) for r in rows}


def reference(paths: list[Path]) -> ShardMetrics:
    """The independent total: each current file scanned alone, the scans merged."""
    return ShardMetrics.merge_all(scan_shard(p, LAION400M, LEXICON, workers=1) for p in paths)


def expected(total: ShardMetrics) -> dict[str, tuple[bool, float | None, str | None]]:
    return {
        f"{o.rule.name} {scope_key('dataset', None, o.term, 'term')}": (
            o.breaching,
            o.observed,
            o.describe() or None,
        )
        for o in judge(RULES, total, "dataset")
    }


def assert_exact(store: ResultStore, current: list[Path]) -> None:
    total = reference(current)
    want = expected(total)
    got = dataset_alerts(store)
    assert len(want) >= len(RULES)  # every rule has support, and some term does
    assert any(breaching for breaching, _, _ in want.values())
    for key, value in want.items():
        if key not in got:  # a key is stored once it first breaches
            assert not value[0], key
            continue
        assert got[key][0] == value[0] and got[key][2] == value[2], key
        assert got[key][1] == pytest.approx(value[1], rel=1e-12), key
    assert_reported(store, total)
    assert store.verify_total(DATASET)  # the pass kept these sums, and they are current


def assert_reported(store: ResultStore, total: ShardMetrics) -> None:
    report = dataset_report(store, DATASET).total
    assert (report.rows, report.shards) == (total.rows, total.shards)
    assert report.nsfw_flag_counts == total.nsfw_flag_counts
    assert report.keyword_nsfw_rows == total.keyword_nsfw_rows
    assert report.similarity is not None and total.similarity is not None
    assert report.similarity.histogram == total.similarity.histogram
    assert report.terms == total.terms
    assert report.domains == total.domains


def shards(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write_shard(adversarial_table(120, seed), directory, f"part-{seed}.parquet")
        for seed in range(3)
    ]


def test_the_judged_total_is_exact_through_versions_twins_and_forced_reingests(
    store: ResultStore, tmp_path: Path
) -> None:
    a, b, c = shards(tmp_path / "s")
    ingest([a, b], store, alerts=PLAN)
    assert_exact(store, [a, b])
    ingest([c], store, alerts=PLAN)
    assert_exact(store, [a, b, c])

    first = tmp_path / "b-v1.parquet"
    shutil.copyfile(b, first)
    write_shard(adversarial_table(90, 7), tmp_path / "s", b.name)  # b's version 2 replaces v1
    (replaced,) = ingest([b], store, alerts=PLAN)
    assert (replaced.outcome, replaced.version) == ("done", 2)
    assert_exact(store, [a, b, c])

    shutil.copyfile(first, b)  # content A -> B -> A: version 1 is current again, unscanned
    (again,) = ingest([b], store, alerts=PLAN)
    assert (again.outcome, again.version) == ("skipped", 1)
    assert_exact(store, [a, first, c])
    write_shard(adversarial_table(90, 7), tmp_path / "s", b.name)  # and back to version 2
    assert [r.outcome for r in ingest([b], store, alerts=PLAN)] == ["skipped"]
    assert_exact(store, [a, b, c])

    twin = tmp_path / "s" / "copy-of-c.parquet"
    shutil.copyfile(c, twin)  # the same content under another name: counted once
    (copied,) = ingest([twin], store, alerts=PLAN)
    assert copied.outcome == "quarantined"
    assert_exact(store, [a, b, c])

    (forced,) = ingest([a], store, alerts=PLAN, force=True)  # stored again: not twice
    assert forced.outcome == "done"
    assert_exact(store, [a, b, c])


def test_the_judgement_does_not_depend_on_how_shards_are_split_into_passes(
    store: ResultStore, tmp_path: Path
) -> None:
    paths = shards(tmp_path / "s")
    ingest(paths, store, alerts=PLAN)  # one pass
    one_pass = dataset_alerts(store)
    other = "split"
    for path in paths:  # the same shards, one pass each, into another dataset
        ingest([path], store, alerts=PLAN, dataset=other)
    a = t.Alert
    with store.engine.connect() as conn:
        ids = dict(conn.execute(select(t.Dataset.name, t.Dataset.id)).all())
        rows = conn.execute(
            select(a.rule, a.scope, a.breaching, a.observed, a.detail).where(
                a.dataset_id == ids[other], a.scope.startswith("dataset")
            )
        ).all()
    split = {f"{r.rule} {r.scope}": (r.breaching, r.observed, r.detail) for r in rows}
    # The same breaches, and the same values wherever both stored a key (a key that breached
    # after an earlier pass and cleared since is stored only in the split run: not breaching).
    assert {k for k, v in split.items() if v[0]} == {k for k, v in one_pass.items() if v[0]}
    assert set(one_pass) <= set(split)
    assert {k: split[k] for k in one_pass} == one_pass
    assert not any(split[k][0] for k in set(split) - set(one_pass))
    assert_exact(store, paths)


def test_a_dataset_breach_fires_once_and_recovers_once(
    store: ResultStore, tmp_path: Path
) -> None:
    rule = Rule("tag", "nsfw_tag_rate", "critical", "dataset", max=0.05, min_support=100)
    plan = AlertPlan((rule,), ("mail", "slack"))
    d = tmp_path / "s"
    d.mkdir()
    clean = write_shard(tagged_table(100, 1, seed=1), d, "clean.parquet")
    dirty = write_shard(tagged_table(100, 30, seed=2), d, "dirty.parquet")
    more = write_shard(tagged_table(100, 20, seed=3), d, "more.parquet")

    def kinds(**where: Any) -> list[tuple[str, str]]:
        o = t.AlertOutbox
        with store.engine.connect() as conn:
            return sorted(
                (r.kind, r.channel)
                for r in conn.execute(select(o.kind, o.channel).filter_by(**where)).all()
            )

    ingest([clean], store, alerts=plan)  # 1 of 100: no key until it breaches
    assert dataset_alerts(store) == {}
    ingest([dirty], store, alerts=plan)  # 31 of 200: breach, one notice per channel
    assert kinds() == [("breach", "mail"), ("breach", "slack")]
    outbox = Outbox(store.engine)
    claimed = outbox.claim("relay", timedelta(seconds=30), t.utcnow())
    outbox.sent([n.id for n in claimed], "relay", t.utcnow())
    ingest([more], store, alerts=plan)  # 51 of 300: persists, nothing more
    ingest([dirty], store, alerts=plan, force=True)  # the same total judged again
    assert dataset_alerts(store) == {"tag dataset": (True, 51 / 300, "51 of 300")}
    assert len(kinds()) == 2
    write_shard(tagged_table(100, 0, seed=4), d, dirty.name)  # dirty's v2: 21 of 300
    write_shard(tagged_table(100, 0, seed=5), d, more.name)  # more's v2: 1 of 300
    ingest([dirty, more], store, alerts=plan)
    assert dataset_alerts(store) == {"tag dataset": (False, 1 / 300, "1 of 300")}
    assert kinds(state="pending") == [("recovery", "mail"), ("recovery", "slack")]
    ingest([clean], store, alerts=plan, force=True)  # recovered stays recovered
    assert len(kinds()) == 4


def test_kept_sums_that_no_longer_cover_the_latest_versions_are_not_reported(
    store: ResultStore, tmp_path: Path
) -> None:
    a, b, _ = shards(tmp_path / "s")
    ingest([a, b], store, alerts=PLAN)
    assert store.verify_total(DATASET)
    (version,) = ingest([b], store, force=True)
    assert version.outcome == "done" and version.shard_id is not None
    assert store.verify_total(DATASET)  # a forced re-ingest keeps its sums again
    # b claimed again and not finished (a worker died): only a is counted now, and the
    # sums kept before cover b too, so the report sums the stored rows instead.
    assert store.claim(version.shard_id, "other", 600, force=True)
    assert not store.verify_total(DATASET)
    assert_reported(store, reference([a]))
    assert not store.verify_total(DATASET, rebuild=True)
    assert store.verify_total(DATASET)
    assert_reported(store, reference([a]))


def test_a_judgement_owed_by_a_dead_pass_is_made_by_the_next_even_with_nothing_new(
    store: ResultStore, tmp_path: Path
) -> None:
    """A pass that committed its shards and died before judging (OOM, SIGKILL) leaves a
    judgement owed; the next pass makes it although it finds nothing new to ingest, and a
    pass after that, owing nothing, does not judge again."""
    rule = Rule("tag", "nsfw_tag_rate", "critical", "dataset", max=0.05, min_support=100)
    d = tmp_path / "s"
    d.mkdir()
    dirty = write_shard(tagged_table(200, 60, seed=2), d, "dirty.parquet")
    job = IngestJob(
        store=store, dataset=DATASET, profile=LAION400M, lexicon=LEXICON, lease_seconds=30.0,
        workers=1, max_attempts=None, alerts=AlertPlan((rule,), ("slack",)),
    )  # fmt: skip
    assert ingest_file(job, dirty).outcome == "done"  # committed; the pass dies here
    assert dataset_alerts(store) == {} and not store.judged_current(DATASET)

    judge_dataset(job, [])  # the next pass: every shard unchanged, no outcome
    assert dataset_alerts(store) == {"tag dataset": (True, 60 / 200, "60 of 200")}
    assert store.judged_current(DATASET)

    def kept_at() -> Any:
        with store.engine.connect() as conn:
            return conn.execute(select(t.DatasetTotal.computed_at)).scalar_one()

    first = kept_at()
    judge_dataset(job, [])  # owing nothing: not judged again
    assert kept_at() == first
