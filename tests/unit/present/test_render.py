"""present/render.py's blocklist lines beside Table 1 (text, Markdown) and in the HTML page's
overall section: kind, entries, rows and entries matched, counts only."""

from __future__ import annotations

import hashlib

import pytest
from rich.console import Console

from shardwatch.core.blocklist import BlocklistStats, entry_id
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.passes import PassSummary
from shardwatch.present.render import blocklist_facts, overall_facts, report_markdown, summary
from shardwatch.present.report_html import report_page

pytestmark = pytest.mark.unit

URL = "https://blocked.example/<b>1</b>.jpg"
ENTRY = entry_id("url", hashlib.sha256(URL.encode()).digest())


def metrics() -> ShardMetrics:
    hashed = BlocklistStats("url_sha256", 2_000_000, 7, frozenset({ENTRY}), {"a" * 64: 1})
    domains = BlocklistStats("domain", 3, 0, frozenset(), {"b" * 64: 1})
    one = ShardMetrics(rows=1000, blocklists={"hashed": hashed, "domains": domains})
    two = ShardMetrics(
        rows=1000,
        blocklists={
            "hashed": BlocklistStats("url_sha256", 2_100_000, 3, frozenset({ENTRY}), {"c" * 64: 1})
        },
    )
    return ShardMetrics.merge_all([one, two, ShardMetrics(rows=500)])


def test_one_line_per_list_with_its_counts() -> None:
    assert blocklist_facts(metrics()) == [
        "blocklist domains (domain, 3 entries): 0 rows matched (0.0%), 0 entries matched; "
        "checked in 1 of 3 shards",
        "blocklist hashed (url_sha256, 2 versions, the largest 2,100,000 entries): 10 rows "
        "matched (0.4%), 1 entries matched; checked in 2 of 3 shards",
    ]
    assert blocklist_facts(ShardMetrics(rows=5)) == []
    single = ShardMetrics(
        rows=4, blocklists={"x": BlocklistStats("id", 1, 0, versions={"d" * 64: 1})}
    )
    assert blocklist_facts(single) == [
        "blocklist x (id, 1 entries): 0 rows matched (0.0%), 0 entries matched"
    ]
    assert set(blocklist_facts(metrics())) <= set(overall_facts(metrics()))


def test_text_markdown_and_html_show_counts_never_an_entry() -> None:
    m = metrics()
    console = Console(width=300, record=True)
    console.print(summary(m, (), "total"))
    text = console.export_text()
    markdown = report_markdown(m, (), "ds")
    page = report_page("ds", PassSummary(1, (), 0, (), "alerts: none"), m, (), (), None)
    assert "blocklist hashed (url_sha256, 2 versions" in text
    assert "blocklist hashed (url\\_sha256, 2 versions" in markdown
    assert "<li>blocklist hashed (url_sha256, 2 versions, the largest 2,100,000 entries)" in page
    for out in (text, markdown, page):
        assert "10 rows matched" in out and "1 entries matched" in out
        assert ENTRY.hex() not in out and "blocked.example" not in out
