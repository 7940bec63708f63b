"""Blocklist matching against a plain-Python reference (hashlib, set membership, string
suffix checks) on adversarial rows, in every list format; and the bad-list errors."""

from __future__ import annotations

import csv
import gzip
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.blocklist_reference import (
    entries_of,
    expected_domains,
    expected_ids,
    expected_urls,
    sha,
)

from shardwatch.scan import blocklist_lines
from shardwatch.scan.blocklists import BlocklistError, CompiledBlocklist, compile_blocklist

pytestmark = pytest.mark.unit

URLS: list[str | None] = [
    "https://example.org/a.jpg",
    "https://a.example.org/b.jpg",
    "https://A.B.Example.ORG./c.jpg",
    "https://notexample.org/d.jpg",
    "https://example.org.evil.test/e.jpg",
    "https://user:pw@deep.example.org:8080/f.jpg",
    "http://bücher.de/g.jpg",
    "http://shop.BÜCHER.de/h.jpg",
    "http://xn--bcher-kva.de/i.jpg",
    "http://buecher.de/j.jpg",
    "https://cdn.other.test/k.jpg?x=https://example.org/",
    "http://10.0.0.1/l.jpg",
    "http://110.0.0.1/m.jpg",
    None,
    "",
    "not a url",
    "https://example.org/a.jpg",  # a repeat of row 0
    "https://example.org/a.jpg ",  # not the same URL
    "https://EXAMPLE.org/a.jpg",  # nor this one (a URL list is exact)
    "https://ünïcode.test/päth/ß.jpg",
]


def write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def write_csv(path: Path, values: list[str], header: str | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if header is not None:
            writer.writerow([header])
        for v in values:
            writer.writerow([v])
    return path


def write_parquet(path: Path, values: Sequence[object], type_: pa.DataType | None = None) -> Path:
    pq.write_table(pa.table({"entry": pa.array(values, type_)}), path)
    return path


def check(
    blocklist: CompiledBlocklist,
    urls: pa.Array | None,
    ids: pa.Array | None,
    rows: list[bool],
    matched: set[bytes],
) -> None:
    got = blocklist.match(urls, ids)
    assert got.rows.tolist() == rows
    assert got.entries == matched
    assert got.count == sum(rows)


URL_LINES = [
    "# hashes of a remove-list, upper and lower case",
    "",
    sha(URLS[0] or "").upper(),
    "   " + sha(URLS[7] or "") + "\t",
    sha(URLS[19] or ""),
    sha(URLS[19] or "").upper(),  # a duplicate in the other case
    sha("https://absent.test/never.jpg"),  # absent from the shard
    "  # an indented comment",
    sha(URLS[3] or ""),
    sha(URLS[3] or ""),
]


@pytest.mark.parametrize("fmt", ["text", "csv", "csv-header", "parquet", "gzip"])
def test_url_sha256_list_matches_the_reference(tmp_path: Path, fmt: str) -> None:
    writers: dict[str, Callable[[], Path]] = {
        "text": lambda: write_text(tmp_path / "list.txt", URL_LINES),
        "csv": lambda: write_csv(tmp_path / "list.csv", URL_LINES),
        "csv-header": lambda: write_csv(tmp_path / "list.csv", URL_LINES, header="url_sha256"),
        "parquet": lambda: write_parquet(tmp_path / "list.parquet", [*URL_LINES, None]),
        "gzip": lambda: _gzip(write_text(tmp_path / "list.txt", URL_LINES)),
    }
    path = writers[fmt]()
    blocklist = compile_blocklist("hashes", "url_sha256", path, "critical")
    rows, matched, entries = expected_urls("url_sha256", URL_LINES, URLS)
    assert entries == 5 and blocklist.entries == entries
    assert sum(rows) == 5  # rows 0, 3, 7, 16 and 19: repeats count, near-misses do not
    assert blocklist.version == hashlib.sha256(path.read_bytes()).hexdigest()
    check(blocklist, pa.array(URLS, pa.string()), None, rows, matched)
    check(blocklist, pa.array(URLS, pa.large_string()).dictionary_encode(), None, rows, matched)


def _gzip(path: Path) -> Path:
    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes()))
    return out


def test_url_list_and_its_hash_list_are_the_same_entries(tmp_path: Path) -> None:
    lines = [
        "# exact URLs",
        URLS[1] or "",
        "  " + (URLS[6] or ""),
        URLS[6] or "",
        "https://x.test/",
    ]
    by_url = compile_blocklist("urls", "url", write_text(tmp_path / "u.txt", lines))
    hashed = [sha(e) for e in entries_of(lines)]
    by_hash = compile_blocklist("hashes", "url_sha256", write_text(tmp_path / "h.txt", hashed))
    rows, matched, entries = expected_urls("url", lines, URLS)
    assert by_url.entries == entries == by_hash.entries == 3
    for blocklist in (by_url, by_hash):
        check(blocklist, pa.array(URLS), None, rows, matched)
    assert sum(rows) == 2


DOMAIN_LINES = [
    "# domains",
    "Example.ORG.",
    "bücher.de",
    "xn--bcher-kva.de",  # the same entry as the line above
    "10.0.0.1",
    "absent.test",
    "",
    "evil",
]


@pytest.mark.parametrize("fmt", ["text", "csv", "parquet"])
def test_domain_list_matches_hosts_and_subdomains_only(tmp_path: Path, fmt: str) -> None:
    if fmt == "text":
        path = write_text(tmp_path / "d.txt", DOMAIN_LINES)
    elif fmt == "csv":
        path = write_csv(tmp_path / "d.csv", DOMAIN_LINES, header="domain")
    else:
        path = write_parquet(tmp_path / "d.parquet", DOMAIN_LINES, pa.large_string())
    blocklist = compile_blocklist("domains", "domain", path, "warning")
    assert blocklist.entries == 5 and blocklist.severity == "warning"
    rows, matched = expected_domains(DOMAIN_LINES, URLS)
    assert rows[:10] == [True, True, True, False, False, True, True, True, True, False]
    assert rows[10:13] == [False, True, False]  # a URL in the query string does not count
    check(blocklist, pa.array(URLS), None, rows, matched)
    # The cache of authorities gives the same answer the second time, batch by batch.
    check(blocklist, pa.array(URLS[::-1]), None, rows[::-1], matched)


def test_a_tld_entry_matches_its_whole_tld(tmp_path: Path) -> None:
    blocklist = compile_blocklist("tld", "domain", write_text(tmp_path / "d.txt", ["TEST"]))
    rows, matched = expected_domains(["test"], URLS)
    check(blocklist, pa.array(URLS), None, rows, matched)
    assert sum(rows) == 3


ID_LINES = ["# ids", "123", "0042.0", "+7", "-0", "abc", "  x y  ", "9" * 25, "123"]
ID_ROWS: list[list[object]] = [
    [123, 42, 7, 0, None, 124, -42, 10**18],
    [123.0, 42.0, 7.0, -0.0, None, float("nan"), float("inf"), 1.5],
    ["123", "042", "+7.00", "-0", "abc", "x y", " x y", "9" * 25, None, "ABC", ""],
]


@pytest.mark.parametrize("fmt", ["text", "csv", "parquet"])
@pytest.mark.parametrize("column", range(len(ID_ROWS)))
def test_id_list_compares_integral_numbers_as_integers(
    tmp_path: Path, fmt: str, column: int
) -> None:
    if fmt == "text":
        path = write_text(tmp_path / "i.txt", ID_LINES)
    elif fmt == "csv":
        path = write_csv(tmp_path / "i.csv", ID_LINES, header="id")
    else:
        path = write_parquet(tmp_path / "i.parquet", ID_LINES)
    blocklist = compile_blocklist("ids", "id", path)
    ids = ID_ROWS[column]
    rows, matched, entries = expected_ids(ID_LINES, ids)
    assert blocklist.entries == entries == 7
    assert sum(rows) >= 4
    check(blocklist, None, pa.array(ids), rows, matched)


def test_id_entries_from_numeric_parquet_columns(tmp_path: Path) -> None:
    ints = compile_blocklist("ints", "id", write_parquet(tmp_path / "i.parquet", [5, 6, 6, None]))
    floats = compile_blocklist("f", "id", write_parquet(tmp_path / "f.parquet", [5.0, 6.0, 0.5]))
    assert (ints.entries, floats.entries) == (2, 3)
    values: list[object] = ["5", 6, 6.0, 0.5, "0.5", None]
    for blocklist, lines in ((ints, ["5", "6"]), (floats, ["5", "6", "0.5"])):
        for ids in (pa.array([5, 6, None]), pa.array([5.0, 6.0, 0.5]), pa.array(["5", "6", "0.5"])):
            rows, matched, _ = expected_ids(lines, ids.to_pylist())
            check(blocklist, None, ids, rows, matched)
    assert values  # the mixed list documents the cases above


def test_a_list_needs_its_column(tmp_path: Path) -> None:
    ids = compile_blocklist("ids", "id", write_text(tmp_path / "i.txt", ["1"]))
    got = ids.match(pa.array(["https://x.test/"]), None)
    assert got.rows.tolist() == [False] and not got.entries
    with pytest.raises(ValueError):
        ids.match(None, None)


def test_large_batches_match_exactly(tmp_path: Path) -> None:
    urls = [f"https://h{i % 97}.test/{i}.jpg" for i in range(50_000)]
    listed = urls[::7] + [f"https://absent.test/{i}" for i in range(20_000)]
    lines = [sha(u) for u in listed]
    blocklist = compile_blocklist("big", "url_sha256", write_text(tmp_path / "b.txt", lines))
    rows, matched, entries = expected_urls("url_sha256", lines, list(urls))
    assert blocklist.entries == entries
    got = blocklist.match(pa.array(urls), None)
    assert np.array_equal(got.rows, np.array(rows)) and got.entries == matched


def bad_lists(tmp_path: Path) -> list[tuple[str, str, Path, str]]:
    """(kind, name, path, what the message says) for lists that cannot be used."""
    secret = "https://secret.example/x.jpg"
    two = tmp_path / "two.parquet"
    pq.write_table(pa.table({"a": ["x"], "b": ["y"]}), two)
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet " + secret.encode())
    return [
        ("url", "missing", tmp_path / "nowhere.txt", "cannot be read"),
        ("url", "folder", folder, "not a regular file"),
        ("url_sha256", "malformed", write_text(tmp_path / "m.txt", [sha("a"), secret]), "line 2"),
        ("url_sha256", "short", write_text(tmp_path / "s.txt", ["#", sha("a")[:63]]), "line 2"),
        ("url_sha256", "columns", two, "2 columns"),
        ("url", "csvcols", write_text(tmp_path / "c.csv", [secret, f"{secret},y"]), "line 2"),
        ("url", "garbage", garbage, "parquet"),
        ("url", "empty", write_text(tmp_path / "e.txt", ["# nothing", ""]), "no entries"),
        ("domain", "urls", write_text(tmp_path / "d.txt", ["a.test", secret]), "line 2"),
        ("nonsense", "kind", write_text(tmp_path / "k.txt", ["a"]), "unknown kind"),
        ("url", "gz", _bad_gzip(tmp_path / "z.txt.gz"), "cannot be read"),
        ("url", "utf8", _latin1(tmp_path / "l.txt"), "line 2: not UTF-8"),
    ]


def _bad_gzip(path: Path) -> Path:
    path.write_bytes(b"not gzip at all")
    return path


def _latin1(path: Path) -> Path:
    path.write_bytes(b"https://ok.test/\nhttps://b\xe4d.test/\n")
    return path


def test_bad_lists_raise_an_error_naming_the_list_never_the_entry(tmp_path: Path) -> None:
    for kind, name, path, says in bad_lists(tmp_path):
        with pytest.raises(BlocklistError) as caught:
            compile_blocklist(name, kind, path)
        message = str(caught.value)
        assert message.startswith(f"blocklist '{name}': "), message
        assert says in message, message
        assert "secret" not in message and caught.value.name == name


@pytest.mark.parametrize("block", [7, 64, 65, 200, 1 << 24])
def test_text_blocks_keep_line_numbers_and_endings(
    tmp_path: Path, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines split across read blocks, CRLF endings, a last line without a newline."""
    monkeypatch.setattr(blocklist_lines, "BLOCK_BYTES", block)
    urls = [u for u in URLS if u]
    lines = ["# list", *[sha(u) for u in urls[:6]], "", f"  {sha(urls[6]).upper()}\r"]
    path = tmp_path / "crlf.txt"
    path.write_bytes("\r\n".join(lines).encode() + b"\r\n" + sha(urls[7]).encode())
    blocklist = compile_blocklist("crlf", "url_sha256", path)
    rows, matched, entries = expected_urls("url_sha256", [*lines, sha(urls[7])], URLS)
    assert blocklist.entries == entries == 8
    check(blocklist, pa.array(URLS), None, rows, matched)
    path.write_bytes("\n".join([*lines, "0" * 63 + "g", sha("x")]).encode())
    with pytest.raises(BlocklistError, match="'crlf': line 10: not a SHA-256"):
        compile_blocklist("crlf", "url_sha256", path)
    path.write_bytes("\n".join([*lines, "https://ok.test/"]).encode() + b"\n\xff\n")
    with pytest.raises(BlocklistError, match="'crlf': line 11: not UTF-8"):
        compile_blocklist("crlf", "url", path)
