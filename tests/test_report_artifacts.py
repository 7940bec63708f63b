"""The pass report: Table 1, three SVG charts and the failures, with every untrusted name
(dataset, shard URI, reason) escaped in the HTML page and in the Markdown artifact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from builders import tagged_table, write_shard
from store_checks import ingest

from shardwatch.config import load_settings
from shardwatch.monitor import PassSummary, ShardOutcome
from shardwatch.report_artifacts import build_report
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore

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
    md, page, written = build_report(settings, summary)
    assert written is not None and written.read_text() == page
    assert written == tmp_path / ".shardwatch" / "reports" / "run-7.html"  # beside the config
    assert page.count("<svg") == 3 and "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "default-src 'none'" in page
    assert not re.search(r"(?<!\\)[<>]", md)  # every angle bracket is escaped in Markdown
    assert "\\<script\\>" in md
    assert "| desi |" in md and "quarantined" in md
