"""`export-flagged --rule blocklist:<name>`: the exported rows (shard, row, id, URL) are
exactly the rows a plain-Python reference (hashlib, set membership) finds on the list, for
URL-hash, domain and id lists on adversarial rows, and their count is the scan's `rows` for
the list; a rule naming an unknown list is a usage error naming it, and nothing printed holds
a URL, id or domain."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from support.builders import write_shard
from support.store_checks import run_shardwatch

from shardwatch.core.lexicon import PRECISE2026
from shardwatch.core.profiles import LAION400M
from shardwatch.export.flagged import ExportError, ExportRequest, export_flagged
from shardwatch.pipeline.ingest import IngestJob, ingest_shards
from shardwatch.scan.blocklists import CompiledBlocklist, compile_blocklist
from shardwatch.scan.engine import CompiledLexicon
from shardwatch.settings.config import Settings
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

DATASET = "blocklist-export"
HOSTS = (
    "example.org",
    "a.example.org",
    "notexample.org",
    "example.org.evil.test",
    "B.Example.ORG",
    "xn--bcher-kva.example",
    "other.test",
)


def shard_table(seed: int, rows: int = 400) -> pa.Table:
    """LAION columns with adversarial URLs (hosts around `example.org`, nulls, repeats) and
    float ids (some null)."""
    urls: list[str | None] = []
    ids: list[float | None] = []
    for i in range(rows):
        k = (i * 7 + seed) % 97
        urls.append(None if k == 13 else f"https://{HOSTS[k % len(HOSTS)]}/img/{k}.jpg")
        ids.append(None if k == 29 else float(1000 * seed + k))
    return pa.table(
        {
            "SAMPLE_ID": pa.array(ids, pa.float64()),
            "URL": pa.array(urls, pa.string()),
            "TEXT": pa.array([f"a photo {i}" for i in range(rows)], pa.string()),
        }
    )


def sha(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


LISTED_URLS = [f"https://{HOSTS[k % len(HOSTS)]}/img/{k}.jpg" for k in (0, 5, 40, 41, 90)]


def write_lists(folder: Path) -> dict[str, tuple[str, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    hashes = folder / "hashes.txt"
    hashes.write_text(
        "# published remove-list\n\n"
        + "\n".join(sha(u).upper() if i % 2 else sha(u) for i, u in enumerate(LISTED_URLS))
        + f"\n{sha(LISTED_URLS[0])}\n"  # a duplicate
        + f"{sha('https://absent.test/x.jpg')}\n"  # not in the data
    )
    domains = folder / "domains.txt"
    domains.write_text("example.org\n# comment\nbücher.example\n")
    ids = folder / "ids.txt"
    ids.write_text("1005\n2040.0\n1029\n99999\n")
    return {"hashes": ("url_sha256", hashes), "domains": ("domain", domains), "ids": ("id", ids)}


def reference(table: pa.Table, kind: str, path: Path) -> list[int]:
    """Rows of `table` on the list, by plain Python."""
    lines = [x.strip() for x in path.read_text().splitlines()]
    entries = {x for x in lines if x and not x.startswith("#")}
    out = []
    for i, (url, sample_id) in enumerate(
        zip(table.column("URL").to_pylist(), table.column("SAMPLE_ID").to_pylist(), strict=True)
    ):
        if kind == "url_sha256":
            hit = url is not None and sha(url) in {e.lower() for e in entries}
        elif kind == "domain":
            host = None if url is None else url.split("/")[2].lower().encode("idna").decode()
            wanted = {e.encode("idna").decode() for e in entries}
            hit = host is not None and any(host == d or host.endswith("." + d) for d in wanted)
        else:
            hit = sample_id is not None and str(int(sample_id)) in {canonical(e) for e in entries}
        if hit:
            out.append(i)
    return out


def canonical(entry: str) -> str:
    """An id entry's text; an integral number as its digits (`2040.0` is `2040`)."""
    try:
        number = float(entry)
    except ValueError:
        return entry
    return str(int(number)) if number.is_integer() else entry


def ingest(
    store: ResultStore,
    folder: Path,
    tables: dict[str, pa.Table],
    lists: dict[str, CompiledBlocklist] | None = None,
) -> dict[str, pa.Table]:
    """Ingest `tables` (scanned against `lists`, whose results the store keeps)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_shard(t, folder, name) for name, t in tables.items()]
    job = IngestJob(
        store=store,
        dataset=DATASET,
        profile=LAION400M,
        lexicon=CompiledLexicon(PRECISE2026),
        lease_seconds=60,
        workers=1,
        max_attempts=None,
        blocklists=tuple((lists or {}).values()),
    )
    assert [r.outcome for r in ingest_shards(job, paths)] == ["done"] * len(paths)
    return {str(p.resolve()): tables[p.name] for p in paths}


def run_export(
    store: ResultStore, lists: dict[str, CompiledBlocklist], rule: str, out: Path
) -> Any:
    def blocklist(name: str) -> CompiledBlocklist:
        if name not in lists:
            raise ExportError(
                f"no blocklist {name!r} is configured; configured: " + ", ".join(sorted(lists))
            )
        return lists[name]

    request = ExportRequest(DATASET, rule, out, batch_size=61)
    return export_flagged(
        store.engine,
        Settings(),
        request,
        download_policy=lambda: pytest.fail("no download"),
        blocklist=blocklist,
    )


def test_each_list_exports_exactly_the_reference_rows(store: ResultStore, tmp_path: Path) -> None:
    files = write_lists(tmp_path / "lists")
    lists = {n: compile_blocklist(n, kind, path) for n, (kind, path) in files.items()}
    shards = ingest(
        store, tmp_path / "shards", {f"part-{s}.parquet": shard_table(s) for s in (1, 2)}, lists
    )
    with store.engine.connect() as conn:
        stored = {
            (name, uri): rows
            for name, uri, rows in conn.execute(
                text(
                    "SELECT b.name, s.uri, b.rows FROM shard_blocklists b"
                    " JOIN shards s ON s.id = b.shard_id"
                )
            )
        }
    assert len(stored) == len(files) * len(shards)
    for name, (kind, path) in files.items():
        out = tmp_path / f"{name}.parquet"
        summary = run_export(store, lists, f"blocklist:{name}", out)
        got = pq.read_table(out).to_pylist()
        want = [(uri, i) for uri, table in shards.items() for i in reference(table, kind, path)]
        assert sorted((r["shard"], r["row"]) for r in got) == sorted(want), name
        assert want and summary.rows == len(want)
        for uri in shards:  # each shard's rows in the export = its stored count for the list
            assert sum(r["shard"] == uri for r in got) == stored[(name, uri)], (name, uri)
        for r in got:
            table = shards[r["shard"]]
            assert r["url"] == table.column("URL")[r["row"]].as_py()
            sample_id = table.column("SAMPLE_ID")[r["row"]].as_py()
            assert r["id"] == (None if sample_id is None else str(int(sample_id)))
            assert f"blocklist:{name}" in r["reasons"]
        assert f"blocklist:{name} {len(want):,}" in summary.line()
        assert summary.blocklist.version == lists[name].version
        assert summary.blocklist.other_version == summary.blocklist.unchecked == ()
        assert "applied as configured now" not in summary.line()
        assert "example.org" not in summary.line() and "img/" not in summary.line()


def test_a_replaced_list_is_applied_and_shards_checked_against_another_version_named(
    store: ResultStore, tmp_path: Path
) -> None:
    """The list is replaced after two shards were ingested: the export applies the current
    list to every shard (a curator removes what it names now), and names the two shards as
    checked against another version, and a shard stored before the list was configured as
    never checked; a shard checked against the current version exports its stored count."""
    files = write_lists(tmp_path / "lists")
    old = compile_blocklist("hashes", *files["hashes"])
    first = ingest(
        store,
        tmp_path / "s1",
        {f"part-{s}.parquet": shard_table(s) for s in (1, 2)},
        {"hashes": old},
    )
    replaced = tmp_path / "lists" / "hashes-v2.txt"  # 40, 41 and 90 removed; 60 added
    replaced.write_text(
        "".join(f"{sha(u)}\n" for u in (*LISTED_URLS[:2], f"https://{HOSTS[4]}/img/60.jpg"))
    )
    new = compile_blocklist("hashes", "url_sha256", replaced)
    assert new.version != old.version
    current = ingest(store, tmp_path / "s2", {"part-3.parquet": shard_table(3)}, {"hashes": new})
    unchecked = ingest(store, tmp_path / "s3", {"part-4.parquet": shard_table(4)})
    shards = {**first, **current, **unchecked}
    with store.engine.connect() as conn:
        stored: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT s.uri, b.rows FROM shard_blocklists b"
                    " JOIN shards s ON s.id = b.shard_id"
                )
            ).all()
        )

    out = tmp_path / "out.parquet"
    summary = run_export(store, {"hashes": new}, "blocklist:hashes", out)
    got = pq.read_table(out).to_pylist()
    want = [
        (uri, i) for uri, table in shards.items() for i in reference(table, "url_sha256", replaced)
    ]
    assert sorted((r["shard"], r["row"]) for r in got) == sorted(want)
    per_shard = {uri: sum(r["shard"] == uri for r in got) for uri in shards}
    (now,) = current
    assert per_shard[now] == stored[now]  # checked against the current version: equal
    assert any(per_shard[uri] != stored[uri] for uri in first)  # why the note matters

    assert summary.blocklist.name == "hashes" and summary.blocklist.version == new.version
    assert summary.blocklist.other_version == tuple(sorted(first))
    assert summary.blocklist.unchecked == tuple(unchecked)
    notes = summary.blocklist.notes()
    assert notes == [
        *(
            f"{uri} was checked against another version of blocklist hashes; its rows are "
            "exported by the current version of blocklist hashes"
            for uri in sorted(first)
        ),
        *(
            f"{uri} was never checked against blocklist hashes; its rows are exported by the "
            "current version of blocklist hashes"
            for uri in unchecked
        ),
    ]
    line = summary.line()
    assert (
        "blocklist hashes applied as configured now: 2 shard(s) checked against another "
        "version, 1 never checked" in line
    )
    footer = json.loads(pq.read_metadata(out).metadata[b"shardwatch.export.result"])
    assert footer["blocklist"] == {
        "name": "hashes",
        "version": new.version,
        "checked_against_other_version": sorted(first),
        "never_checked": list(unchecked),
    }
    shown = line + "\n".join(notes)
    for secret in ("example", "img/", "xn--", *(sha(u) for u in LISTED_URLS)):
        assert secret not in shown


def test_an_unknown_list_is_a_usage_error_naming_it(store: ResultStore, tmp_path: Path) -> None:
    files = write_lists(tmp_path / "lists")
    lists = {n: compile_blocklist(n, kind, path) for n, (kind, path) in files.items()}
    ingest(store, tmp_path / "shards", {"part-1.parquet": shard_table(1)})
    out = tmp_path / "out.parquet"
    with pytest.raises(ExportError, match="no blocklist 'nope' is configured"):
        run_export(store, lists, "blocklist:nope", out)
    assert not out.exists()


def test_the_cli_names_an_unknown_list_and_prints_no_url(tmp_path: Path) -> None:
    files = write_lists(tmp_path / "lists")
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(
        f'dataset = "{DATASET}"\nprofile = "laion400m"\n'
        f'database_url = "sqlite:///{tmp_path / "store.sqlite"}"\n'
        "[validation]\nenabled = false\n[alerts]\nenabled = false\n"
        '[blocklists.domains]\nkind = "domain"\npath = "lists/domains.txt"\n'
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    upgrade(engine)
    shards = ingest(ResultStore(engine), tmp_path / "shards", {"p.parquet": shard_table(3)})
    engine.dispose()
    out = tmp_path / "out.parquet"

    proc = run_shardwatch(
        "export-flagged",
        "--config",
        str(cfg),
        "--rule",
        "blocklist:nope",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "no blocklist 'nope' is configured ([blocklists.nope]); configured: domains" in (
        proc.stderr
    )
    assert not out.exists()

    proc = run_shardwatch(
        "export-flagged",
        "--config",
        str(cfg),
        "--rule",
        "blocklist:domains",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (table,) = shards.values()
    want = reference(table, *files["domains"])
    assert f"wrote {len(want)} rows flagged by blocklist:domains" in proc.stdout
    (uri,) = shards  # ingested before the list was configured
    assert f"note: {uri} was never checked against blocklist domains;" in proc.stderr
    assert "0 shard(s) checked against another version, 1 never checked" in proc.stdout
    assert pq.read_table(out).column("row").to_pylist() == want
    for secret in ("example", "img/", "xn--"):
        assert secret not in proc.stdout + proc.stderr

    helped = run_shardwatch("export-flagged", "--help")
    assert "This export holds URLs" in " ".join(helped.stdout.split())
    assert "blocklist:N" in helped.stdout
