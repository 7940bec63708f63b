"""Domain attribution: host parsing, the exact per-shard sketch, its merge bound, the stored
report, the new-high-risk-domain rule and `report --domains`."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from publicsuffixlist import PublicSuffixList
from support.builders import write_shard
from support.store_checks import ingest, run_shardwatch

from shardwatch.core.alerts import DEFAULT_RULES, AlertPlan, Rule, judge
from shardwatch.core.domain_sketch import DomainSketch, DomainStat
from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.domains import INVALID_HOST, NO_HOST, DomainCounter, batch_counts, domain_codes
from shardwatch.scan.engine import CompiledLexicon, scan_shard
from shardwatch.store.domain_report import domain_report
from shardwatch.store.outbox import Outbox
from shardwatch.store.repository import ResultStore

LEXICON = CompiledLexicon(BIRHANE2021)
PSL = PublicSuffixList()


@pytest.mark.unit
def test_domain_of_each_url_form() -> None:
    urls = {
        "https://cdn.shopify.com/a.jpg": "shopify.com",
        "http://user:pw@www.ephotozine.com:8080/x": "ephotozine.com",
        "//i0.wp.com/x": "wp.com",
        "https://a.b.co.uk/": "b.co.uk",
        "HTTPS://WWW.Example.COM./p?q=1": "example.com",
        "http://127.0.0.1:5432/": "127.0.0.1",
        "http://[::1]:80/x": "[::1]",
        "https://x.blogspot.com/y": "x.blogspot.com",  # a private suffix: each blog apart
        "http://<script>/x": INVALID_HOST,
        "http://" + "a" * 300 + ".com/": INVALID_HOST,
        "not a url": NO_HOST,
        "http:\\\\evil.com": NO_HOST,
        "http://localhost/": "localhost",
        # internationalised names: one form, lower-case punycode (IDNA 2003)
        "https://Bücher.de/x": "xn--bcher-kva.de",
        "https://www.xn--bcher-kva.de/": "xn--bcher-kva.de",
        "http://shop.BÜCHER.DE:8080/": "xn--bcher-kva.de",
        "http://bücher\u3002de/": "xn--bcher-kva.de",  # an ideographic full stop
        "https://x.пример.рф/": "xn--e1afmkfd.xn--p1ai",
        "http://" + "ü" * 100_000 + ".de/": INVALID_HOST,  # refused before any punycode
        "http://" + "ü" * 250 + ".de/": INVALID_HOST,  # 253 characters, too long once encoded
    }
    arr = pa.array([*urls, None], pa.large_string())
    domains, codes = domain_codes(arr)
    assert [domains[i] for i in codes] == [*urls.values(), NO_HOST]
    assert len(domains) == len(set(domains))


@pytest.mark.unit
def test_batch_counts_and_sketch_by_hand() -> None:
    urls = pa.array(
        [
            "http://a.com/1",
            "http://a.com/2",
            "http://www.a.com/3",
            "http://b.com/",
            "http://c.com/",
            "http://c.com/x",
            "http://d.org/",
            None,
        ],
        pa.large_string(),
    )
    keyword = np.array([0, 0, 0, 1, 1, 1, 0, 1], dtype=bool)
    tag = np.array([0, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
    counts = batch_counts(urls, keyword, tag).to_pylist()
    by_domain = {r["domain"]: (r["rows"], r["keyword_nsfw"], r["tag_nsfw"]) for r in counts}
    assert by_domain == {
        "a.com": (3, 0, 1),
        "b.com": (1, 1, 0),
        "c.com": (2, 2, 0),
        "d.org": (1, 0, 1),
        NO_HOST: (1, 1, 0),
    }
    counter = DomainCounter(k=1)
    counter.add(batch_counts(urls, keyword, tag))
    counter.add(batch_counts(urls, keyword, tag))  # twice: every count doubles
    sketch = counter.sketch()
    # top-1 by rows: a.com (6); by keyword: c.com (4); by tag: a.com and d.org tie at 2, the
    # name breaks the tie: a.com. Left out: b.com (2, 2, 0), d.org (2, 0, 2), no host (2, 2, 0).
    assert sketch.top == {"a.com": DomainStat(6, 0, 2), "c.com": DomainStat(4, 4, 0)}
    assert (sketch.floor_rows, sketch.floor_keyword, sketch.floor_tag) == (2, 2, 2)
    assert (sketch.rest_rows, sketch.rest_keyword, sketch.rest_tag) == (6, 4, 2)
    assert sum(s.rows for s in sketch.top.values()) + sketch.rest_rows == 16


@pytest.mark.unit
def test_merge_adds_floors_as_error_by_hand() -> None:
    a = DomainSketch(
        k=1, top={"x.com": DomainStat(10, 5, 1)}, floor_rows=3, floor_keyword=2, rest_rows=7
    )
    b = DomainSketch(
        k=1, top={"y.com": DomainStat(8, 1, 0)}, floor_rows=4, floor_keyword=1, rest_rows=4
    )
    merged = a.merge(b)
    assert merged.top == {
        "x.com": DomainStat(10, 5, 1, rows_error=4, keyword_error=1),
        "y.com": DomainStat(8, 1, 0, rows_error=3, keyword_error=2),
    }
    assert (merged.floor_rows, merged.rest_rows) == (7, 11)
    assert merged.merge(DomainSketch(k=1)).top == merged.top  # an empty side adds nothing
    assert a.merge(a).top == {"x.com": DomainStat(20, 10, 2)}


def _reference_domain(url: str | None) -> str:
    """Independent of the engine: urllib's hostname and the PSL package directly."""
    if url is None:
        return NO_HOST
    host = (urlsplit(url).hostname or "").rstrip(".")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    return (PSL.privatesuffix(host) or host) if host else NO_HOST


def _skewed_shards(directory: Path, shards: int, rows: int, seed: int) -> list[Path]:
    """Zipf-distributed domains (2,000 of them) with a per-domain keyword rate, shuffled
    differently per shard, so the top-k differs from shard to shard."""
    rng = random.Random(seed)
    names = [f"site{i}.{rng.choice(['com', 'co.uk', 'org', 'net'])}" for i in range(2000)]
    risky = {name: rng.random() ** 3 for name in names}
    paths = []
    for s in range(shards):
        weights = [1 / (rank + 1) ** 1.1 for rank in range(len(names))]
        order = names[:]
        rng.shuffle(order[:60])  # the head reorders between shards
        picks = rng.choices(order, weights=weights, k=rows)
        table = pa.table(
            {
                "URL": [f"https://img{rng.randrange(3)}.{d}/{i}.jpg" for i, d in enumerate(picks)],
                "TEXT": ["porn" if rng.random() < risky[d] else "a chair" for d in picks],
            }
        )
        paths.append(write_shard(table, directory, f"part-{s:02d}.parquet"))
    return paths


@pytest.mark.unit
def test_sketch_error_stays_within_its_bound_on_a_skewed_dataset(tmp_path: Path) -> None:
    paths = _skewed_shards(tmp_path, shards=6, rows=6000, seed=3)
    shard_metrics = [scan_shard(p, LAION400M, LEXICON, domain_top_k=25) for p in paths]
    true_rows: Counter[str] = Counter()
    true_kw: Counter[str] = Counter()
    for path, m in zip(paths, shard_metrics, strict=True):
        rows = pq.read_table(path).to_pylist()
        shard_rows = Counter(_reference_domain(r["URL"]) for r in rows)
        shard_kw = Counter(_reference_domain(r["URL"]) for r in rows if "porn" in r["TEXT"])
        true_rows += shard_rows
        true_kw += shard_kw
        sketch = m.domains
        assert sketch is not None
        for domain, stat in sketch.top.items():  # per shard: exact
            assert (stat.rows, stat.keyword_nsfw) == (shard_rows[domain], shard_kw[domain])
        unlisted = set(shard_rows) - set(sketch.top)
        assert sketch.floor_rows == max(shard_rows[d] for d in unlisted)
        assert sketch.rest_rows == sum(shard_rows[d] for d in unlisted)
    total = ShardMetrics.merge_all(shard_metrics)
    sketch = total.domains
    assert sketch is not None
    assert sum(s.rows for s in sketch.top.values()) + sketch.rest_rows == 6 * 6000
    errors = 0
    for domain in true_rows:
        top = sketch.top.get(domain)
        if top is None:
            assert true_rows[domain] <= sketch.floor_rows
            assert true_kw[domain] <= sketch.floor_keyword
            continue
        assert top.rows <= true_rows[domain] <= top.rows + top.rows_error
        assert top.keyword_nsfw <= true_kw[domain] <= top.keyword_nsfw + top.keyword_error
        errors += true_rows[domain] - top.rows
    assert errors > 0  # the dataset is skewed enough that some counts are truly partial
    heavy = [d for d, _ in true_kw.most_common(10)]
    assert all(d in sketch.top for d in heavy)  # the heavy hitters are all listed
    top_listed = [d for d, _ in sketch.ranked()[:5]]
    assert top_listed == [d for d, _ in true_kw.most_common(5)]


@pytest.mark.integration
@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_stored_domain_report_equals_the_merged_sketch(store: ResultStore, tmp_path: Path) -> None:
    paths = _skewed_shards(tmp_path, shards=4, rows=3000, seed=8)
    ingest(paths, store, domain_top_k=20)
    merged = ShardMetrics.merge_all(
        scan_shard(p, LAION400M, LEXICON, domain_top_k=20) for p in paths
    ).domains
    assert merged is not None
    for by, attr in (("keyword", "keyword_nsfw"), ("rows", "rows")):
        found = domain_report(store.engine, "laion-test", top=15, by=by)
        want = merged.ranked(attr)[:15]
        assert [row.domain for row in found.top] == [d for d, _ in want]
        for row, (_, stat) in zip(found.top, want, strict=True):
            assert (row.rows, row.keyword_nsfw, row.rows_error, row.keyword_error) == (
                stat.rows,
                stat.keyword_nsfw,
                stat.rows_error,
                stat.keyword_error,
            )
    found = domain_report(store.engine, "laion-test", top=5)
    assert (found.shards, found.rows, found.k) == (4, 12000, 20)
    assert found.keyword_nsfw == sum(
        sum(1 for t in pq.read_table(p).column("TEXT").to_pylist() if "porn" in t) for p in paths
    )
    assert found.floor_rows == merged.floor_rows


@pytest.mark.unit
def test_new_domain_rule_judges_only_new_domains_with_support() -> None:
    rule = Rule(
        "new-risky", "new_domain_keyword_nsfw_rate", "warning", "shard", max=0.5, min_support=10
    )
    new = {
        "bad.example": DomainStat(20, 15),
        "ok.example": DomainStat(30, 3),
        "tiny.example": DomainStat(5, 5),
    }
    found = judge([rule], ShardMetrics(rows=55), "shard", new_domains=new)
    assert [(o.term, o.breaching, o.count, o.support) for o in found] == [
        ("bad.example", True, 15, 20),
        ("ok.example", False, 3, 30),
    ]
    assert judge([rule], ShardMetrics(rows=55), "dataset", new_domains=new) == []
    assert judge([rule], ShardMetrics(rows=55), "shard") == []


def _domain_shard(directory: Path, name: str, spec: dict[str, tuple[int, int]]) -> Path:
    urls, texts = [], []
    for domain, (rows, nsfw) in spec.items():
        urls += [f"https://cdn.{domain}/{name}-{i}.jpg" for i in range(rows)]
        texts += ["porn star" if i < nsfw else "a red chair" for i in range(rows)]
    return write_shard(pa.table({"URL": urls, "TEXT": texts}), directory, name)


@pytest.mark.unit
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_high_risk_domain_alerts_the_first_time_it_appears(
    store: ResultStore, tmp_path: Path
) -> None:
    plan = AlertPlan(rules=DEFAULT_RULES, channels=("console",))
    first = _domain_shard(tmp_path, "a.parquet", {"shop.com": (200, 10), "risky.net": (60, 40)})
    second = _domain_shard(
        tmp_path, "b.parquet", {"shop.com": (200, 10), "risky.net": (60, 50), "new.org": (80, 70)}
    )
    ingest([first], store, alerts=plan)
    ingest([second], store, alerts=plan)
    breaching = {
        (a.rule, a.scope.rsplit("/", 1)[-1])
        for a in Outbox(store.engine).alerts()
        if a.breaching and a.rule == "new-high-risk-domain"
    }
    # risky.net is new (and risky) in the first shard only; new.org in the second.
    assert breaching == {
        ("new-high-risk-domain", "a.parquet|domain:risky.net"),
        ("new-high-risk-domain", "b.parquet|domain:new.org"),
    }


@pytest.mark.integration
def test_report_domains_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    shard = _domain_shard(
        tmp_path, "a.parquet", {"shop.com": (300, 3), "<b>.x": (5, 5), "risky.net": (60, 40)}
    )
    env: dict[str, Any] = {"SHARDWATCH_DATABASE_URL": url, "SHARDWATCH_DATASET": "d"}
    done = run_shardwatch("ingest", "--no-validate", "--no-alerts", str(shard), **env)
    assert done.returncode == 0, done.stderr
    text = run_shardwatch("report", "--domains", "--top", "2", **env)
    assert text.returncode == 0, text.stderr
    lines = [line for line in text.stdout.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in lines] == ["risky.net", "(invalid host)"]
    assert "40" in lines[0] and "66.7%" in lines[0]
    as_json = run_shardwatch("report", "--domains", "--json", "--by", "rows", **env)
    payload: dict[str, Any] = json.loads(as_json.stdout)
    assert [r["domain"] for r in payload["top"]] == ["shop.com", "risky.net", "(invalid host)"]
    assert payload["rows"] == 365 and payload["keyword_nsfw"] == 48
    bad = run_shardwatch("report", "--domains", "--by", "color", **env)
    assert bad.returncode != 0 and "--by must be" in bad.stderr


@pytest.mark.unit
def test_compaction_keeps_counts_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    import shardwatch.scan.domains as domains

    monkeypatch.setattr(domains, "_COMPACT_ROWS", 10)  # compact every few batches
    counter = DomainCounter(k=3)
    rng = random.Random(1)
    true: Counter[str] = Counter()
    for _ in range(40):
        batch = [f"s{rng.randrange(60)}.com" for _ in range(50)]
        true.update(batch)
        counter.add(batch_counts(pa.array([f"http://{d}/" for d in batch]), None, None))
    sketch = counter.sketch()
    assert {d: s.rows for d, s in sketch.top.items()} == {d: true[d] for d in sketch.top}
    assert sorted(s.rows for s in sketch.top.values()) == sorted(true.values())[-3:]
    assert sketch.rest_rows == 2000 - sum(s.rows for s in sketch.top.values())


@pytest.mark.integration
def test_report_domains_shows_bounds_where_a_count_is_not_exact(tmp_path: Path) -> None:
    """A domain listed by one shard (1 keyword-NSFW row of 1) but left out of another shard's
    top-1 (7 clean rows): the truth is 1 of 8 (12.5%). The old rate column showed 100%."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    a = _domain_shard(tmp_path, "a.parquet", {"big.com": (5, 0), "d.com": (1, 1)})
    b = _domain_shard(
        tmp_path, "b.parquet", {"d.com": (7, 0), "other.com": (20, 0), "kw.org": (2, 2)}
    )
    env: dict[str, Any] = {"SHARDWATCH_DATABASE_URL": url, "SHARDWATCH_DATASET": "d",
           "SHARDWATCH_DOMAIN_TOP_K": "1"}  # fmt: skip
    done = run_shardwatch("ingest", "--no-validate", "--no-alerts", str(a), str(b), **env)
    assert done.returncode == 0, done.stderr
    truth: Counter[str] = Counter()
    kw: Counter[str] = Counter()
    for path in (a, b):  # counted independently, row by row
        table = pq.read_table(path)
        columns = (table.column("URL").to_pylist(), table.column("TEXT").to_pylist())
        for u, t in zip(*columns, strict=True):
            truth[_reference_domain(u)] += 1
            kw[_reference_domain(u)] += t == "porn star"
    assert kw["d.com"] / truth["d.com"] == 0.125
    payload = json.loads(run_shardwatch("report", "--domains", "--json", **env).stdout)
    row = next(r for r in payload["top"] if r["domain"] == "d.com")
    assert row["rows"] == 1 and row["rows_error"] > 0 and not row["exact"]  # the set-up
    low, high = row["keyword_rate"]["low"], row["keyword_rate"]["high"]
    assert low <= 0.125 <= high  # sharp: b may hold no d.com row as far as its sketch says
    text = run_shardwatch("report", "--domains", **env).stdout
    line = next(x for x in text.splitlines() if "d.com" in x)
    assert f"{low:.1%}-{high:.1%}" in line and "exact" not in line  # no lone 100.0%
    kw_line = next(x for x in text.splitlines() if "kw.org" in x)
    kw_row = next(r for r in payload["top"] if r["domain"] == "kw.org")
    assert ("exact" in kw_line) == kw_row["exact"]
