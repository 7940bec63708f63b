"""Blocklists end to end, on SQLite and PostgreSQL: shards scanned with the real matcher
(scan/blocklists.py) and stored, and `shardwatch ingest` then `report --json`, give scan's
`total.blocklists` over the same files and lists, with the list version of each shard."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from support import builders
from support.builders import adversarial_table, table_with_columns, write_shard
from support.store_checks import run_shardwatch

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.metrics import ShardMetrics
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.blocklists import CompiledBlocklist, compile_blocklist
from shardwatch.scan.engine import scan_shard
from shardwatch.store.report import dataset_report
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration


def store_shard(store: ResultStore, dataset: str, uri: str, m: ShardMetrics) -> None:
    """Register, claim and complete `uri` holding `m`, as ingest does."""
    sv = store.register(dataset, uri, hashlib.sha256(uri.encode()).hexdigest())
    assert store.claim(sv.id, "w", lease_seconds=60)
    assert store.complete(sv.id, "w", m, profile="laion400m", lexicon="birhane2021")


def test_report_equals_scan_with_the_real_matcher(store: ResultStore, tmp_path: Path) -> None:
    """End to end: shards scanned with compiled lists (scan/blocklists.py), stored as ingest
    stores them, report the same `blocklists` (and which lists were unavailable) as the merge
    of the scans; the last shard with lists was checked against a newer version of a list
    (the newest: the one the most recently stored shard was checked against), one had no URL
    column, one no list at all."""
    folder = tmp_path / "lists"
    folder.mkdir()

    def compiled(name: str, kind: str, lines: Sequence[str], file: str = "") -> CompiledBlocklist:
        path = folder / (file or f"{name}.txt")
        path.write_text("# a remove-list\n" + "\n".join(lines) + "\n")
        return compile_blocklist(name, kind, path)

    row_urls = [u for u in builders.URLS if u]  # the shards' shared URLs
    hashes = [hashlib.sha256(u.encode()).hexdigest() for u in row_urls[:2]]
    lists = [
        compiled("hashes", "url_sha256", [hashes[0].upper(), hashes[1], "0" * 64]),
        compiled("urls", "url", [row_urls[2], "https://absent.test/x.jpg"]),
        compiled("domains", "domain", ["img3.example.net", "IMG7.example.net."]),
        compiled("ids", "id", ["3", "7.0", "11", "12"]),
    ]
    newer_urls = compiled("urls", "url", [row_urls[2], row_urls[3]], "urls-v2.txt")
    plan = [
        (write_shard(adversarial_table(300, 1), tmp_path, "a.parquet"), lists),
        (write_shard(adversarial_table(300, 2, int_ids=True), tmp_path, "b.parquet"), lists),
        (write_shard(table_with_columns(("TEXT",)), tmp_path, "d-no-url.parquet"), lists),
        (write_shard(adversarial_table(300, 3), tmp_path, "c.parquet"), [*lists[:1], newer_urls]),
        (write_shard(adversarial_table(100, 4), tmp_path, "e-unchecked.parquet"), []),
    ]
    scans = {}
    for path, checked in plan:
        scans[path.name] = scan_shard(path, LAION400M, BIRHANE2021, blocklists=checked)
        store_shard(store, "e2e", path.name, scans[path.name])

    report = dataset_report(store, "e2e")
    got, want = report.total.to_dict(), ShardMetrics.merge_all(scans.values()).to_dict()
    for key in ("rows", "blocklists", "unavailable", "partially_available"):
        assert got.get(key) == want.get(key), key
    totals = report.total.blocklists or {}
    assert all(totals[n].matched_entries > 0 for n in ("hashes", "urls", "domains", "ids"))
    per_shard = sum(
        (m.blocklists or {})["hashes"].matched_entries for m in scans.values() if m.blocklists
    )
    assert per_shard > totals["hashes"].matched_entries  # entries matched in several shards
    assert report.total.partially_available["blocklists.urls"] == 1  # the shard without URLs
    checks = report.blocklists["urls"]
    assert checks.newest == newer_urls.version and checks.unchecked == 1
    assert checks.older == {lists[1].version: ("a.parquet", "b.parquet", "d-no-url.parquet")}
    assert report.blocklists["ids"].unchecked == 2  # c (not given the list) and e


CLI_LISTS = """
[blocklists.hashes]
kind = "url_sha256"
path = "lists/hashes.txt"

[blocklists.domains]
kind = "domain"
path = "lists/domains.txt"
severity = "warning"

[blocklists.ids]
kind = "id"
path = "lists/ids.txt"
"""


def test_report_json_equals_scan_json(database_url: str, tmp_path: Path) -> None:
    """`shardwatch ingest` then `report --json` give scan's `total.blocklists` over the same
    files and lists, and each shard's list versions; the text report prints counts only."""
    row_urls = [u for u in builders.URLS if u]
    (tmp_path / "lists").mkdir()
    hashes = [hashlib.sha256(u.encode()).hexdigest() for u in row_urls[:3]]
    (tmp_path / "lists" / "hashes.txt").write_text("\n".join([hashes[0].upper(), *hashes[1:]]))
    (tmp_path / "lists" / "domains.txt").write_text("img5.example.net\nexample.com\n")
    (tmp_path / "lists" / "ids.txt").write_text("5\n7\n12.0\n")
    config = tmp_path / "shardwatch.toml"
    config.write_text(CLI_LISTS)
    shards = tmp_path / "shards"
    shards.mkdir()
    paths = [
        str(
            write_shard(adversarial_table(400, seed, int_ids=seed == 2), shards, f"p{seed}.parquet")
        )
        for seed in (1, 2, 3)
    ]

    def run(*args: str) -> str:
        proc = run_shardwatch(
            *args, "--config", str(config), cwd=tmp_path, SHARDWATCH_DATABASE_URL=database_url
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    run("ingest", *paths, "--dataset", "cli", "--no-validate")
    scanned = json.loads(run("scan", *paths, "--json"))
    reported = json.loads(run("report", "--dataset", "cli", "--json"))
    assert reported["total"]["blocklists"] == scanned["total"]["blocklists"]
    lists = scanned["total"]["blocklists"]
    assert set(lists) == {"hashes", "domains", "ids"}
    assert all(lists[n]["rows"] > 0 and lists[n]["shards"] == 3 for n in lists)
    versions = {n: next(iter(lists[n]["versions"])) for n in lists}
    assert [s["blocklists"] for s in reported["shards"]] == [versions] * 3
    assert all(c["older"] == {} and c["unchecked"] == 0 for c in reported["blocklists"].values())
    text = run("report", "--dataset", "cli")
    assert f"{lists['hashes']['matched_entries']:,} entries matched" in text
    for secret in [*row_urls[:3], "img5.example.net", "example.com/"]:
        assert secret not in text
