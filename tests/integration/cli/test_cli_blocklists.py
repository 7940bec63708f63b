"""`[blocklists.<name>]` through the CLI: `scan --json` gives `total.blocklists.<name>` and the
same per shard, counts only (no URL, id or domain printed), for local and http(s) lists; a bad
list is a configuration error naming the list (exit 2) and nothing is scanned or stored."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.blocklist_reference import expected, sha
from support.store_checks import run_shardwatch

pytestmark = pytest.mark.integration

SECRET = "https://s3cr3t.blocked.test/img.jpg"
URLS = [SECRET, "https://ok.test/a.jpg", None, "https://cdn.s3cr3t.blocked.test/b.jpg", SECRET]
IDS = [1.0, 2.0, 3.0, 4.0, 5.0]
HASH_LINES = ["# a published list", sha(SECRET).upper(), sha("https://absent.test/")]
DOMAIN_LINES = ["s3cr3t.blocked.test"]
ID_LINES = ["2", "5.0", "77"]


def write_shards(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (start, stop) in enumerate(((0, 3), (3, 5))):
        table = pa.table(
            {
                "SAMPLE_ID": pa.array(IDS[start:stop], pa.float64()),
                "URL": pa.array(URLS[start:stop], pa.string()),
                "TEXT": pa.array(["a photo"] * (stop - start), pa.string()),
            }
        )
        path = folder / f"part-{i}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


def write_config(folder: Path, lists: str) -> Path:
    (folder / "lists").mkdir(parents=True, exist_ok=True)
    (folder / "lists" / "hashes.txt").write_text("\n".join(HASH_LINES) + "\n")
    (folder / "lists" / "domains.csv").write_text("domain\n" + "\n".join(DOMAIN_LINES) + "\n")
    pq.write_table(pa.table({"id": ID_LINES}), folder / "lists" / "ids.parquet")
    config = folder / "shardwatch.toml"
    config.write_text(lists)
    return config


LOCAL_LISTS = """
[blocklists.relaion]
kind = "url_sha256"
path = "lists/hashes.txt"

[blocklists.domains]
kind = "domain"
path = "lists/domains.csv"
severity = "warning"

[blocklists.ids]
kind = "id"
path = "lists/ids.parquet"
"""


def check_counts(doc: dict[str, object], lists: dict[str, tuple[str, list[str]]]) -> None:
    shards = doc["shards"]
    assert isinstance(shards, list) and len(shards) == 2
    ranges = ((0, 3), (3, 5))
    for shard, (start, stop) in zip(shards, ranges, strict=True):
        for name, (kind, lines) in lists.items():
            rows, matched = expected(kind, lines, URLS[start:stop], list(IDS[start:stop]))
            got = shard["blocklists"][name]
            assert (got["kind"], got["rows"], got["matched_entries"]) == (
                kind,
                sum(rows),
                len(matched),
            )
    total = doc["total"]
    assert isinstance(total, dict)
    for name, (kind, lines) in lists.items():
        rows, matched = expected(kind, lines, URLS, list(IDS))
        got = total["blocklists"][name]
        assert {k: got[k] for k in ("kind", "rows", "matched_entries", "shards")} == {
            "kind": kind,
            "rows": sum(rows),
            "matched_entries": len(matched),
            "shards": 2,
        }
        assert len(got["versions"]) == 1 and list(got["versions"].values()) == [2]


def test_scan_json_gives_counts_per_list_and_never_a_matched_url(tmp_path: Path) -> None:
    config = write_config(tmp_path / "conf", LOCAL_LISTS)
    shards = write_shards(tmp_path / "data")
    result = run_shardwatch("scan", "--json", "--config", str(config), *map(str, shards))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    lists = {
        "relaion": ("url_sha256", HASH_LINES),
        "domains": ("domain", DOMAIN_LINES),
        "ids": ("id", ID_LINES),
    }
    check_counts(doc, lists)
    assert doc["total"]["blocklists"]["relaion"]["rows"] == 2
    assert doc["total"]["blocklists"]["relaion"]["entries"] == 2
    assert "s3cr3t" not in result.stdout + result.stderr
    human = run_shardwatch("scan", "--config", str(config), *map(str, shards))
    assert human.returncode == 0 and "s3cr3t" not in human.stdout + human.stderr


@pytest.fixture
def list_server(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server publishing tmp_path/published/."""
    root = tmp_path / "published"
    root.mkdir()
    (root / "hashes.txt").write_text("\n".join(HASH_LINES) + "\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_http_list_is_downloaded_into_the_cache(tmp_path: Path, list_server: str) -> None:
    lists = f'[blocklists.remote]\nkind = "url_sha256"\npath = "{list_server}/hashes.txt"\n'
    config = write_config(tmp_path / "conf", lists)
    shards = write_shards(tmp_path / "data")
    result = run_shardwatch("scan", "--json", "--config", str(config), *map(str, shards))
    assert result.returncode == 0, result.stderr
    check_counts(json.loads(result.stdout), {"remote": ("url_sha256", HASH_LINES)})
    cached = list((tmp_path / "conf" / ".shardwatch" / "cache" / "blocklists").glob("remote-*"))
    assert len(cached) == 1 and cached[0].suffix == ".txt"

    missing = f'[blocklists.remote]\nkind = "url"\npath = "{list_server}/nowhere.txt"\n'
    config.write_text(missing)
    result = run_shardwatch("scan", "--json", "--config", str(config), *map(str, shards))
    assert result.returncode == 2 and result.stdout == ""
    assert "blocklist 'remote'" in result.stderr


BAD = [
    ('[blocklists.broken]\nkind = "url_sha256"\npath = "lists/bad.txt"\n', "line 3"),
    ('[blocklists.broken]\nkind = "url"\npath = "lists/none.txt"\n', "cannot be read"),
    ('[blocklists.broken]\nkind = "sha1"\npath = "lists/hashes.txt"\n', "blocklists.broken.kind"),
    ('[blocklists.broken]\nkind = "url"\npath = "lists/two.parquet"\n', "2 columns"),
]


@pytest.mark.parametrize(("lists", "says"), BAD)
def test_a_bad_list_is_exit_2_naming_it_and_nothing_is_scanned(
    tmp_path: Path, lists: str, says: str
) -> None:
    config = write_config(tmp_path / "conf", LOCAL_LISTS + lists)
    (tmp_path / "conf" / "lists" / "bad.txt").write_text(f"# ok\n{sha('a')}\n{SECRET}\n")
    pq.write_table(
        pa.table({"a": [SECRET], "b": ["x"]}), tmp_path / "conf" / "lists" / "two.parquet"
    )
    shards = write_shards(tmp_path / "data")
    for command in (["scan", "--json"], ["ingest", "--no-validate", "--no-alerts", "--json"]):
        result = run_shardwatch(*command, "--config", str(config), *map(str, shards))
        assert result.returncode == 2, (command, result.stderr)
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "broken" in lines[0] and says in lines[0], lines
        assert "s3cr3t" not in result.stderr
    assert not (tmp_path / "conf" / ".shardwatch" / "shardwatch.sqlite").exists()


def test_run_checks_the_lists_before_any_shard(tmp_path: Path) -> None:
    body = LOCAL_LISTS + BAD[0][0] + '\n[sources.files]\ntype = "local"\npath = "../data"\n'
    config = write_config(tmp_path / "conf", body)
    (tmp_path / "conf" / "lists" / "bad.txt").write_text(f"# ok\n{sha('a')}\n{SECRET}\n")
    write_shards(tmp_path / "data")
    result = run_shardwatch("run", "--local", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert "blocklist 'broken': line 3" in result.stderr and "s3cr3t" not in result.stderr
    assert not (tmp_path / "conf" / ".shardwatch" / "shardwatch.sqlite").exists()
