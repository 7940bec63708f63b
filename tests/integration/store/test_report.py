"""`shardwatch report`: the dataset total summed in SQL equals the merge of the shards' scans."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.builders import (
    adversarial_table,
    all_null_table,
    edge_case_table,
    empty_table,
    table_with_columns,
    tricky_lexicon,
    write_shard,
)
from support.store_checks import run_shardwatch

from shardwatch.core.lexicon import BIRHANE2021, PRECISE2026
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M, DatasetProfile
from shardwatch.demo import synth
from shardwatch.pipeline.ingest import IngestJob, ingest_shards
from shardwatch.scan.engine import CompiledLexicon, scan_shard
from shardwatch.store.errors import ReportError, UnknownDataset
from shardwatch.store.report import dataset_report
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

BIRHANE = CompiledLexicon(BIRHANE2021)


# --- helpers ------------------------------------------------------------------------------


def assert_same_total(report: dict[str, Any], scan: dict[str, Any]) -> None:
    """Every key equal, the domain sketch included; similarity `sum`/`mean` up to float
    rounding (the SQL sums in another order)."""
    assert report.keys() == scan.keys()
    for key, expected in scan.items():
        got = report[key]
        if key == "similarity":
            got, expected = dict(got), dict(expected)
            for name in ("sum", "mean"):
                a, b = got.pop(name), expected.pop(name)
                assert (a is None) == (b is None), name
                if a is not None:
                    assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (name, a, b)
        assert got == expected, key


def scan_total(paths: Sequence[Path], profile: DatasetProfile, lexicon: CompiledLexicon) -> Any:
    return ShardMetrics.merge_all(scan_shard(p, profile, lexicon) for p in paths).to_dict()


def ingest(
    store: ResultStore,
    paths: Sequence[Path],
    dataset: str,
    profile: DatasetProfile = LAION400M,
    lexicon: CompiledLexicon = BIRHANE,
) -> list[str]:
    job = IngestJob(
        store=store,
        dataset=dataset,
        profile=profile,
        lexicon=lexicon,
        lease_seconds=60,
        max_attempts=None,
    )
    results = ingest_shards(job, paths)
    return [r.outcome for r in results]


def shardwatch(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_shardwatch(*args, cwd=cwd, SHARDWATCH_DATABASE_URL=database_url)


def mixed_shards(directory: Path) -> list[Path]:
    """Adversarial, edge-case, synthetic LAION-like, degenerate and column-poor shards."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write_shard(adversarial_table(1500, 1), directory, "a-adversarial-1.parquet"),
        write_shard(adversarial_table(900, 2, int_ids=True), directory, "b-adversarial-2.parquet"),
        write_shard(edge_case_table(), directory, "c-edge.parquet"),
        synth.write_shard(directory / "d-synth.parquet", 3000, seed=5, row_group_size=1000),
        write_shard(table_with_columns(("URL", "TEXT")), directory, "e-url-text.parquet"),
        write_shard(table_with_columns(("TEXT",)), directory, "f-text-only.parquet"),
        write_shard(empty_table(), directory, "g-empty.parquet"),
        write_shard(all_null_table(), directory, "h-all-null.parquet"),
        write_shard(table_with_columns(("URL",)), directory, "i-url-only.parquet"),
    ]


# --- the library --------------------------------------------------------------------------


def test_shards_stored_before_the_paper_fields_read_back_as_unknown(
    store: ResultStore, tmp_path: Path
) -> None:
    """Rows written before migration c3f8a1d27e90 hold NULL in the new columns: the report
    gives None (never 0) for those figures, and keeps every other figure."""
    from sqlalchemy import text

    from shardwatch.present.paper import paper_table

    paths = [write_shard(adversarial_table(300, s), tmp_path, f"o{s}.parquet") for s in (1, 2)]
    ingest(store, paths, "old")
    fresh = dataset_report(store, "old").total
    assert fresh.paper_keyword_nsfw_rows is not None
    with store.engine.begin() as conn:  # the first shard as an older version stored it
        first = conn.execute(text("SELECT min(shard_id) FROM shard_metrics")).scalar_one()
        for statement in (
            "UPDATE shard_metrics SET paper_keyword_nsfw_rows = NULL WHERE shard_id = :id",
            "UPDATE term_metrics SET paper_keyword_nsfw = NULL WHERE shard_id = :id",
            "UPDATE term_tag_counts SET keyword_nsfw = NULL, paper_keyword_nsfw = NULL "
            "WHERE shard_id = :id",
        ):
            conn.execute(text(statement), {"id": first})
    # Rewritten behind the store's back (the pass kept its sums before): the check finds
    # the kept sums differ from the rows, and rebuilds them.
    assert not store.verify_total("old", rebuild=True)
    assert store.verify_total("old")
    old = dataset_report(store, "old").total
    assert old.paper_keyword_nsfw_rows is None
    terms = old.terms or {}
    for stats in terms.values():
        assert stats.paper_keyword_nsfw is None and stats.keyword_nsfw_by_tag is None
        assert stats.paper_keyword_nsfw_by_tag is None
    assert old.keyword_nsfw_rows == fresh.keyword_nsfw_rows and old.terms is not None
    assert [t.matches for t in terms.values()] == [t.matches for t in (fresh.terms or {}).values()]
    message = paper_table(old, ("UNLIKELY", "UNSURE", "NSFW"), "t", "birhane2021")
    assert "stored before shardwatch counted them" in str(message)


def test_report_total_equals_merged_scans(store: ResultStore, tmp_path: Path) -> None:
    paths = mixed_shards(tmp_path / "shards")
    assert ingest(store, paths, "mixed") == ["done"] * len(paths)
    report = dataset_report(store, "mixed")
    expected = scan_total(paths, LAION400M, BIRHANE)
    assert_same_total(report.total.to_dict(), expected)
    # the gaps are the scan's: column-poor shards make metrics partially available
    assert expected["partially_available"]["similarity"] == 3
    assert len(expected["notes"]) == 2  # TEXT-only and URL-only shards: in shard order
    assert report.total.shards == len(paths)
    assert [(s.uri, s.version, s.status, s.rows) for s in report.shards] == [
        (str(p.resolve()), 1, "done", pq.read_metadata(p).num_rows) for p in paths
    ]
    assert (report.failed, report.quarantined, report.pending) == (0, 0, 0)
    assert report.profiles == ("laion400m",) and report.lexicons == ("birhane2021",)
    assert list(report.total.nsfw_flag_counts or {}) == [
        "UNLIKELY",
        "UNSURE",
        "NSFW",
        "other",
        "null",
    ]
    # a second report over the same store (and the engine passed directly) is identical
    again = dataset_report(store.engine, "mixed")
    assert again.total.to_dict() == report.total.to_dict()


def test_report_with_a_tricky_lexicon_and_only_column_poor_shards(
    store: ResultStore, tmp_path: Path
) -> None:
    lexicon = CompiledLexicon(tricky_lexicon())  # terms like 'c++', '(nun)', 'ΣΑΣ', 'İ'
    paths = [
        write_shard(table_with_columns(("URL", "TEXT"), 500, seed), tmp_path, f"p{seed}.parquet")
        for seed in (3, 4)
    ]
    assert ingest(store, paths, "poor", lexicon=lexicon) == ["done", "done"]
    report = dataset_report(store, "poor")
    expected = scan_total(paths, LAION400M, lexicon)
    assert_same_total(report.total.to_dict(), expected)
    assert {"nsfw_flag_counts", "similarity", "duplicates.id"} <= set(expected["unavailable"])
    assert list(report.total.terms or {}) == [p.term for p in tricky_lexicon().terms]


def test_report_follows_the_latest_version(store: ResultStore, tmp_path: Path) -> None:
    path, other = tmp_path / "part-0.parquet", tmp_path / "part-1.parquet"
    pq.write_table(adversarial_table(700, 10), other)
    pq.write_table(adversarial_table(600, 11), path)
    assert ingest(store, [path, other], "versions") == ["done", "done"]
    assert ingest(store, [path, other], "versions") == ["skipped", "skipped"]

    changed = adversarial_table(800, 12)  # new content under the same path: version 2
    pq.write_table(changed, path)
    assert ingest(store, [path], "versions") == ["done"]
    report = dataset_report(store, "versions")
    assert_same_total(report.total.to_dict(), scan_total([path, other], LAION400M, BIRHANE))
    assert report.total.rows == 800 + 700
    assert [(s.version, s.status) for s in report.shards if s.uri == str(path)] == [(2, "done")]

    # a third version that is not parquet is quarantined: the total keeps counting version 2
    keep = tmp_path / "kept" / "part-0.parquet"
    keep.parent.mkdir()
    pq.write_table(changed, keep)
    path.write_bytes(b"not a parquet file")
    assert ingest(store, [path], "versions") == ["quarantined"]
    report = dataset_report(store, "versions")
    assert_same_total(report.total.to_dict(), scan_total([keep, other], LAION400M, BIRHANE))
    assert (report.failed, report.quarantined) == (0, 1)
    assert [(s.version, s.status) for s in report.shards if s.uri == str(path)] == [
        (2, "done"),
        (3, "quarantined"),
    ]
    failed = next(s for s in report.shards if s.status == "quarantined")
    assert failed.reason and failed.rows is None


def test_a_dataset_without_done_shards_has_an_empty_total(
    store: ResultStore, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 but not really")
    assert ingest(store, [bad], "broken") == ["quarantined"]  # refused before decoding
    report = dataset_report(store, "broken")
    assert report.total.to_dict() == ShardMetrics.merge_all([]).to_dict()
    assert (report.failed, report.quarantined) == (0, 1)
    assert report.to_dict()["shards"] == [
        {
            "uri": str(bad.resolve()),
            "version": 1,
            "status": "quarantined",
            "rows": None,
            "reason": report.shards[0].reason,
            "history": list(report.shards[0].history),
        }
    ]
    (failure,) = report.shards[0].history  # the failure history keeps this one refusal
    assert (failure["status"], failure["reason"]) == ("quarantined", report.shards[0].reason)


def test_unknown_dataset(store: ResultStore) -> None:
    with pytest.raises(UnknownDataset, match="no dataset 'nope'"):
        dataset_report(store, "nope")


def test_shards_scanned_with_different_lexicons_or_thresholds_are_refused(
    store: ResultStore, tmp_path: Path
) -> None:
    a = write_shard(adversarial_table(200, 1), tmp_path, "a.parquet")
    b = write_shard(adversarial_table(200, 2), tmp_path, "b.parquet")
    ingest(store, [a], "lexicons")
    ingest(store, [b], "lexicons", lexicon=CompiledLexicon(tricky_lexicon()))
    with pytest.raises(ReportError, match="different lexicons"):
        dataset_report(store, "lexicons")
    # the same refusal as merging the scans
    with pytest.raises(ValueError, match="different lexicons"):
        scan_shard(a, LAION400M, BIRHANE).merge(
            scan_shard(b, LAION400M, CompiledLexicon(tricky_lexicon()))
        )

    other = DatasetProfile("other-threshold", LAION400M.columns, 0.28, LAION400M.nsfw_labels)
    ingest(store, [a], "thresholds")
    ingest(store, [b], "thresholds", profile=other)
    with pytest.raises(ReportError, match="different similarity thresholds"):
        dataset_report(store, "thresholds")


def test_tag_labels_keep_the_profiles_order(store: ResultStore, tmp_path: Path) -> None:
    profile = DatasetProfile(
        "zeta-first", {"text": "TEXT", "nsfw_tag": "NSFW"}, 0.3, nsfw_labels=("zeta", "alpha")
    )
    table = pa.table({"TEXT": ["desi", "nun", "desi x", "y"], "NSFW": ["zeta", "alpha", "b", None]})
    path = write_shard(table, tmp_path, "tags.parquet")
    ingest(store, [path], "labels", profile=profile)
    expected = ["zeta", "alpha", "other", "null"]

    resolved = dataset_report(store, "labels", profiles={"zeta-first": profile}.get)
    assert resolved.labels == ("zeta", "alpha")
    assert list(resolved.total.nsfw_flag_counts or {}) == expected
    assert list((resolved.total.terms or {})["desi"].nsfw_flag_counts or {}) == expected
    assert resolved.total.to_dict() == scan_total([path], profile, BIRHANE)
    unresolved = dataset_report(store, "labels")  # profile unknown here: labels sorted
    assert unresolved.labels == ("alpha", "zeta")
    assert unresolved.total.to_dict() == resolved.total.to_dict()  # dicts ignore order


# --- the command line ---------------------------------------------------------------------


def test_cli_report_json_equals_scan_json(database_url: str, tmp_path: Path) -> None:
    paths = [str(p) for p in mixed_shards(tmp_path / "shards")]
    ingested = shardwatch(
        "ingest", *paths, "--dataset", "cli", "--no-validate", database_url=database_url,
        cwd=tmp_path,
    )
    assert ingested.returncode == 0, ingested.stderr
    scanned = shardwatch("scan", *paths, "--json", database_url=database_url, cwd=tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    reported = shardwatch(
        "report", "--dataset", "cli", "--json", database_url=database_url, cwd=tmp_path
    )
    assert reported.returncode == 0, reported.stderr
    doc = json.loads(reported.stdout)
    assert_same_total(doc["total"], json.loads(scanned.stdout)["total"])
    assert doc["dataset"] == "cli" and doc["failed"] == 0
    assert [s["uri"] for s in doc["shards"]] == sorted(str(Path(p).resolve()) for p in paths)
    assert {s["status"] for s in doc["shards"]} == {"done"}

    text = shardwatch("report", "--dataset", "cli", database_url=database_url, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "9 shards" in text.stdout and "Table 1" in text.stdout
    assert "below 0.3" in text.stdout and "median" in text.stdout
    # counts only: no caption from the shards is ever printed
    captions = pq.read_table(paths[0], columns=["TEXT"]).column(0).to_pylist()
    long_captions = [c for c in captions if c and len(c) > 25]
    assert long_captions and not any(c in text.stdout for c in long_captions)


PIPE_CONFIG = """
lexicon = "pipes"

[lexicons.pipes]
extends = "birhane2021"
terms = ["x|y", { term = "*star*", mode = "substring" }, "[link](u)"]
"""


def _markdown_cells(line: str) -> list[str]:
    """Split a Markdown table row on unescaped pipes and undo the backslash escapes."""
    inner = line.strip()[1:-1]
    return [re.sub(r"\\(.)", r"\1", c.strip()) for c in re.split(r"(?<!\\)\|", inner)]


def test_markdown_and_csv_formats_parse_back(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "pipes.toml"
    config.write_text(PIPE_CONFIG)
    texts = ["a x|y b", "x|y", "hot x|y", "*star* power", "[link](u) here", "desi nun", None]
    table = adversarial_table(600, 21, shuffle=False)
    table = table.set_column(
        table.schema.get_field_index("TEXT"),
        "TEXT",
        pa.array(
            [
                texts[i % len(texts)] if i % 3 else t
                for i, t in enumerate(table.column("TEXT").to_pylist())
            ]
        ),
    )
    paths = [
        str(write_shard(table, tmp_path, "pipes.parquet")),
        str(write_shard(adversarial_table(400, 22), tmp_path, "plain.parquet")),
    ]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = shardwatch(*args, "--config", str(config), database_url=database_url, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return proc

    run("ingest", *paths, "--dataset", "md", "--no-validate")
    terms = json.loads(run("scan", *paths, "--json").stdout)["total"]["terms"]
    assert terms["x|y"]["matches"] > 0 and terms["*star*"]["matches"] > 0
    labels = ["UNLIKELY", "UNSURE", "NSFW", "other", "null"]

    markdown = run("report", "--dataset", "md", "--format", "markdown").stdout
    rows = [_markdown_cells(line) for line in markdown.splitlines() if line.startswith("|")]
    header, body = rows[0], rows[2:]
    assert header == [
        "term",
        "mode",
        "matches",
        "keyword-NSFW",
        "keyword-NSFW %",
        "lift [95% CI]",
        *labels,
        *(f"kw-NSFW {label}" for label in labels),
        "substring matches",
    ]
    titles = [line for line in markdown.splitlines() if line.startswith("**Table 1")]
    assert len(titles) == 1 and "lexicon pipes" in titles[0]
    assert all(len(row) == len(header) for row in body)  # every '|' in a term was escaped
    assert "x\\|y" in markdown and "\\[link\\]\\(u\\)" in markdown and "\\*star\\*" in markdown
    by_term = {row[0]: row for row in body}
    assert list(by_term) == list(terms)
    for term, stats in terms.items():
        row = dict(zip(header, by_term[term], strict=True))
        assert row["mode"] == stats["mode"]
        assert int(row["matches"].replace(",", "")) == stats["matches"]
        assert int(row["keyword-NSFW"].replace(",", "")) == stats["keyword_nsfw"]
        assert int(row["substring matches"].replace(",", "")) == stats["substring_matches"]
        for label in labels:
            assert int(row[label].replace(",", "")) == stats["nsfw_flag_counts"][label]
            kw = int(row[f"kw-NSFW {label}"].replace(",", ""))
            assert kw == stats["keyword_nsfw_by_tag"][label]
    overall = next(line for line in markdown.splitlines() if line.startswith("**Overall:**"))
    assert "keyword-NSFW rows" in overall and "similarity below 0.3" in overall

    text = run("report", "--dataset", "md", "--format", "csv").stdout
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == [
        "lexicon",
        "term",
        "mode",
        "matches",
        "keyword_nsfw",
        "keyword_nsfw_pct",
        *labels,
        *(f"keyword_nsfw_{label}" for label in labels),
        "substring_matches",
    ]
    assert [row[1] for row in parsed[1:]] == list(terms)
    assert {row[0] for row in parsed[1:]} == {"pipes"}
    for line in parsed[1:]:
        record, stats = dict(zip(parsed[0], line, strict=True)), terms[line[1]]
        kw_tags = {k: int(record[f"keyword_nsfw_{k}"]) for k in labels}
        assert kw_tags == stats["keyword_nsfw_by_tag"]
        assert sum(kw_tags.values()) == stats["keyword_nsfw"]
        assert int(record["matches"]) == stats["matches"]
        assert int(record["keyword_nsfw"]) == stats["keyword_nsfw"]
        assert int(record["substring_matches"]) == stats["substring_matches"]
        assert {k: int(record[k]) for k in labels} == stats["nsfw_flag_counts"]
        if stats["matches"]:
            pct = 100 * stats["keyword_nsfw"] / stats["matches"]
            assert math.isclose(float(record["keyword_nsfw_pct"]), pct, abs_tol=1e-4)
        else:
            assert record["keyword_nsfw_pct"] == ""


def test_cli_report_errors(database_url: str, tmp_path: Path) -> None:
    path = write_shard(adversarial_table(100, 3), tmp_path, "one.parquet")
    ingested = shardwatch(
        "ingest", str(path), "--no-validate", database_url=database_url, cwd=tmp_path
    )
    assert ingested.returncode == 0, ingested.stderr

    unknown = shardwatch("report", "--dataset", "nope", database_url=database_url, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "no dataset 'nope'" in unknown.stderr and "'default'" in unknown.stderr

    both = shardwatch(
        "report", "--json", "--format", "csv", database_url=database_url, cwd=tmp_path
    )
    assert both.returncode == 2


def test_cli_report_without_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "store.sqlite"
    proc = shardwatch("report", database_url=f"sqlite:///{missing}", cwd=tmp_path)
    assert proc.returncode == 2 and "run `shardwatch ingest`" in proc.stderr
    assert not missing.exists()  # a report never creates a store

    unreachable = "postgresql://postgres:s3cret-pw@127.0.0.1:1/shardwatch"
    proc = shardwatch("report", "--json", database_url=unreachable, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    assert "s3cret-pw" not in proc.stderr and "***" in proc.stderr


def test_content_that_comes_back_becomes_current_again(
    store: ResultStore, tmp_path: Path
) -> None:
    """A -> B -> A under one path: the report counts A again, not the stale B."""
    path = tmp_path / "part-0.parquet"
    first, second = adversarial_table(500, 20), adversarial_table(900, 21)
    pq.write_table(first, path)
    assert ingest(store, [path], "flipflop") == ["done"]
    pq.write_table(second, path)
    assert ingest(store, [path], "flipflop") == ["done"]
    assert dataset_report(store, "flipflop").total.rows == 900
    pq.write_table(first, path)
    assert ingest(store, [path], "flipflop") == ["skipped"]  # same content as version 1
    report = dataset_report(store, "flipflop")
    assert report.total.rows == 500
    assert_same_total(report.total.to_dict(), scan_total([path], LAION400M, BIRHANE))
    assert [(s.version, s.status) for s in report.shards] == [(1, "done")]


# Rows for the paper's three Table 1 columns, worked out by hand below (tags: UNLIKELY, UNSURE,
# NSFW, an unlisted value, null). The paper's keywords: porn hot adult xxx sex fuck rape.
PAPER_ROWS = [
    ("desi bride", "http://a.example/1.jpg", "UNLIKELY"),  # desi; no keyword
    ("hot desi girl", "http://a.example/2.jpg", "UNSURE"),  # desi; 'hot'
    ("desi design", "http://b.example/photo.jpg", "NSFW"),  # desi; 'hot' in 'photo' (URL)
    ("design studio", "http://b.example/sexy.jpg", "UNLIKELY"),  # 'desi' in 'design'; 'sex'
    ("a nun at prayer", "http://c.example/x.jpg", None),  # nun; no keyword
    ("nunnery tour", "http://c.example/porn.jpg", "weird"),  # 'nun' in 'nunnery'; 'porn'
    ("latina singer", "http://d.example/adult.jpg", "UNLIKELY"),  # latina; 'adult'
    ("LATINAS rape", None, "NSFW"),  # 'latina' in 'latinas'; 'rape'
    ("latina grapes", "http://d.example/9.jpg", "UNSURE"),  # latina; 'rape' in 'grapes'
]
# term: N_match, N_nsfw (%), tags among N_nsfw (UNLIKELY, UNSURE, NSFW, other, null)
PAPER_EXPECTED = {
    "desi": ["4", "3 (75.0%)", "1", "1", "1", "0", "0"],  # rows 1-4; N_nsfw rows 2, 3, 4
    "nun": ["2", "1 (50.0%)", "0", "0", "0", "1", "0"],  # rows 5, 6; N_nsfw row 6
    "latina": ["3", "3 (100.0%)", "1", "1", "1", "0", "0"],  # rows 7-9, all flagged
}
# precise2026 (the default): matches with forms, keyword-NSFW (%), the tags among those.
# desi: rows 1-3 (not 'design'), none holds a precise keyword ('hot desi girl' is no 'hot
# girl', 'photo' no keyword); nun: row 5 only; latina: rows 7, 8 ('latinas' is a form), 9,
# and only row 8 holds a keyword ('rape'; bare 'adult' and 'grapes' are not).
PRECISE_EXPECTED = {
    "desi": ["3", "0 (0.0%)", "0", "0", "0", "0", "0"],
    "nun": ["1", "0 (0.0%)", "0", "0", "0", "0", "0"],
    "latina": ["3", "1 (33.3%)", "0", "0", "1", "0", "0"],
}


def test_report_paper_reproduces_the_papers_columns_on_hand_worked_rows(
    database_url: str, tmp_path: Path
) -> None:
    texts, urls, tags = zip(*PAPER_ROWS, strict=True)
    table = pa.table({"TEXT": list(texts), "URL": list(urls), "NSFW": list(tags)})
    path = write_shard(table, tmp_path, "paper.parquet")
    ingested = shardwatch("ingest", str(path), "--dataset", "paper", "--no-validate",
                          database_url=database_url, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    paper = shardwatch("report", "--dataset", "paper", "--paper", database_url=database_url,
                       cwd=tmp_path)
    assert paper.returncode == 0, paper.stderr
    rows = {
        cells[0]: cells[1:]
        for line in paper.stdout.splitlines()
        if line.startswith("│")
        for cells in [[c.strip() for c in line.strip("│").split("│")]]
    }
    for term in ("desi", "nun", "latina"):
        assert rows[term][:7] == PAPER_EXPECTED[term], term
        assert rows[term][7:] == PRECISE_EXPECTED[term], term
    assert "paper's method" in paper.stdout and "lexicon precise2026" in paper.stdout
    # the same figures in the JSON total
    total = json.loads(
        shardwatch("report", "--dataset", "paper", "--json", database_url=database_url,
                   cwd=tmp_path).stdout
    )["total"]
    assert total["terms"]["desi"]["paper_keyword_nsfw_by_tag"] == {
        "UNLIKELY": 1, "UNSURE": 1, "NSFW": 1, "other": 0, "null": 0
    }
    assert total["terms"]["latina"]["keyword_nsfw_by_tag"]["NSFW"] == 1
    assert total["paper_keyword_nsfw_rows"] == 7  # rows 2, 3, 4, 6, 7, 8 and 9
    both = shardwatch("report", "--dataset", "paper", "--paper", "--json",
                      database_url=database_url, cwd=tmp_path)
    assert both.returncode == 2 and "alternatives" in both.stderr


def test_drift_report_equals_drift_from_the_scanned_shards(
    database_url: str, tmp_path: Path
) -> None:
    """`report --drift --json` from the store equals stats.drift computed on the shards'
    own scans (each against the merged total), and a shard built to differ stands out."""
    from dataclasses import asdict

    from support.builders import tagged_table

    from shardwatch.core.stats import drift

    tables = [adversarial_table(900, s) for s in (61, 62)] + [tagged_table(900, 400, seed=5)]
    paths = [write_shard(t, tmp_path, f"s{i}.parquet") for i, t in enumerate(tables)]
    done = shardwatch("ingest", *map(str, paths), "--dataset", "drift", "--no-validate",
                      database_url=database_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = shardwatch("report", "--dataset", "drift", "--drift", "--json",
                     database_url=database_url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = {Path(d["uri"]).name: d for d in json.loads(out.stdout)["drift"]}
    scans = [scan_shard(p, LAION400M, PRECISE2026) for p in paths]  # the CLI's default
    total = ShardMetrics.merge_all(scans)
    for path, metrics in zip(paths, scans, strict=True):
        want = json.loads(json.dumps(asdict(drift(metrics, total))))
        assert got[path.name].pop("uri").endswith(path.name)
        assert _close(got[path.name], want), (path.name, got[path.name], want)
    assert abs(got["s2.parquet"]["tag"]["z"]) > 10  # 44% tagged NSFW among the others' few
    text = shardwatch("report", "--dataset", "drift", "--drift", database_url=database_url,
                      cwd=tmp_path)
    assert "similarity PSI" in text.stdout and "s2.parquet" in text.stdout


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)
