"""The pass report: Table 1, three SVG charts and the failures, with every untrusted name
(dataset, shard URI, reason) escaped in the HTML page and in the Markdown artifact."""

from __future__ import annotations

import re
from html import escape, unescape
from pathlib import Path

import pytest
from support.builders import tagged_table, write_shard
from support.store_checks import ingest

from shardwatch.pipeline.monitor import PassSummary, ShardOutcome
from shardwatch.pipeline.resources import Resources
from shardwatch.present.artifacts import build_report
from shardwatch.present.charts import MAX_NAME, short_name
from shardwatch.settings.config import load_settings
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.unit

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="alert(1)">'


def test_report_page_and_markdown_escape_untrusted_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    path = write_shard(tagged_table(100, 7), tmp_path, "a.parquet")
    ingest([path], ResultStore(engine), dataset=HOSTILE)
    engine.dispose()
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f"database_url = '{url}'\n")
    settings = load_settings(cfg, dataset=HOSTILE)
    bad = ShardOutcome("web", f"http://x/{HOSTILE}.parquet", "quarantined", reason=HOSTILE)
    summary = PassSummary(7, (bad,), 0, (), "alerts: " + HOSTILE, None, {"quarantined": 1})
    md, page, written = build_report(settings, summary, Resources(settings).store)
    assert written is not None and written.read_text() == page
    assert written == tmp_path / ".shardwatch" / "reports" / "run-7.html"  # beside the config
    assert page.count("<svg") == 3 and "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "default-src 'none'" in page
    assert not re.search(r"(?<!\\)[<>]", md)  # every angle bracket is escaped in Markdown
    assert "\\<script\\>" in md
    assert "| desi |" in md and "quarantined" in md


HOSTILE_TERM = "<b>x&y</b>"
LONG_NAME = "<i>shard&amp;-of-a-very-long-dataset-name-0007.parquet"  # no "/" in a file name


def _cells(html: str, tag: str) -> list[str]:
    """The text of every `tag` cell of Table 1 (HTML entities decoded)."""
    table = re.search(r'<table class="table1">.*?</table>', html, re.S)
    assert table, "no Table 1 <table> in the page"
    return [unescape(c) for c in re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", table[0], re.S)]


def test_report_page_has_table1_as_html_labelled_charts_and_no_local_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa

    from shardwatch.core.lexicon import Lexicon, Pattern
    from shardwatch.scan.engine import CompiledLexicon

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    n = 2400
    base = tagged_table(n, 9, keyword=40)
    texts = base.column("TEXT").to_pylist()
    for i in range(40, 52):
        texts[i] = f"a {HOSTILE_TERM} thing"
    source = base.set_column(base.schema.get_field_index("TEXT"), "TEXT", pa.array(texts))
    lexicon = Lexicon(
        "hostile",
        (Pattern(HOSTILE_TERM, "word"), Pattern("tree", "word")),
        (Pattern("xxx", "substring"),),
    )
    paths = [
        write_shard(source, tmp_path, LONG_NAME),
        write_shard(tagged_table(300, 1, seed=1), tmp_path, "b.parquet"),
    ]
    ingest(paths, ResultStore(engine), dataset=HOSTILE, lexicon=CompiledLexicon(lexicon))
    engine.dispose()
    (tmp_path / "shardwatch.toml").write_text(f"database_url = '{url}'\n")
    settings = load_settings(tmp_path / "shardwatch.toml", dataset=HOSTILE)
    docs = tmp_path / ".shardwatch" / "docs" / "index.html"
    bad = ShardOutcome("local", str(paths[1]), "failed", reason="1 check(s) failed")
    summary = PassSummary(3, (bad,), 0, (), "alerts: none", str(docs), {"failed": 1})
    _, page, written = build_report(settings, summary, Resources(settings).store)
    assert written is not None

    # Table 1: a real table, the hostile term escaped, numbers formatted (expected: the rows)
    head = _cells(page, "th")
    assert head[:3] == ["term", "mode", "matches"] and "lift [95% CI]" in head
    cells = _cells(page, "td")
    width = len(head)
    rows = {cells[i]: cells[i : i + width] for i in range(0, len(cells), width)}
    tree = sum(" tree " in f" {t} " for t in texts) + 300  # shard b: all tree captions
    hostile = sum(HOSTILE_TERM in t for t in texts)
    assert rows["tree"][2] == f"{tree:,}" and "," in rows["tree"][2]
    assert rows[HOSTILE_TERM][2] == f"{hostile:,}"
    assert HOSTILE_TERM not in page and escape(HOSTILE_TERM) in page
    assert re.fullmatch(r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]", rows["tree"][5]), rows["tree"]
    assert "\\" not in "".join(cells) and "<pre>" not in page

    # Charts: axis titles, and each shard named (escaped, shortened) under its bar
    bars = [c for c in re.findall(r"<svg.*?</svg>", page, re.S) if "per shard" in c]
    assert len(bars) == 2
    for chart in bars:
        assert '<text class="axis"' in chart and ">shard</text>" in chart
        assert ">share of rows</text>" in chart
        names = [unescape(t) for t in re.findall(r'<text class="shard"[^>]*>([^<]*)', chart)]
        assert names == [short_name(LONG_NAME), "b.parquet"]
        assert len(names[0]) == MAX_NAME
        assert names[0].startswith("<i>shard") and names[0].endswith("007.parquet")
        assert "<i>" not in chart
    similarity = re.search(r"<svg.*?</svg>", page, re.S)
    assert similarity and ">caption-image similarity</text>" in similarity[0]

    # No local path: links are relative, the failed shard by its name only.
    assert str(tmp_path) not in page and "file:" not in page
    assert not re.search(r'(?:href|src)="(?:/|[A-Za-z]:)', page)
    assert re.findall(r'href="([^"]*)"', page) == ["../docs/index.html"]
    assert "<code>b.parquet</code> failed" in page
