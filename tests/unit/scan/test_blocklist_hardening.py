"""Blocklist list reading under hostile or unusual files: non-regular files, long lines,
gzip bombs, entry caps, byte-order marks, CSV headers and comments, `\\r` line ends, leading
dots on domains, binary URL columns, huge float ids and hostile parquet types."""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.blocklist_reference import expected_domains, expected_ids, expected_urls, sha

from shardwatch.scan import blocklist_lines, blocklist_read
from shardwatch.scan.blocklists import BlocklistError, CompiledBlocklist, compile_blocklist

pytestmark = pytest.mark.unit

URL = "https://bad.example.org/x.jpg"
OTHER = "https://ok.test/y.jpg"


def compiled_within(seconds: float, *args: object) -> CompiledBlocklist | BaseException:
    """compile_blocklist(*args) in a thread that must finish within `seconds`."""
    out: list[CompiledBlocklist | BaseException] = []

    def run() -> None:
        try:
            out.append(compile_blocklist(*args))  # type: ignore[arg-type]
        except BaseException as exc:
            out.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert out, f"compiling {args[2]} did not end within {seconds} s"
    return out[0]


@pytest.mark.parametrize("special", ["fifo", "dev-zero"])
def test_a_list_that_is_no_regular_file_is_refused_at_once(tmp_path: Path, special: str) -> None:
    if special == "fifo":
        path = tmp_path / "list.txt"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    got = compiled_within(10, "odd", "url", path)
    assert isinstance(got, BlocklistError)
    assert str(got) == "blocklist 'odd': not a regular file"


@pytest.mark.parametrize("block", [1 << 10, 1 << 24])
@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_a_line_longer_than_the_cap_is_an_error(
    tmp_path: Path, block: int, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocklist_lines, "BLOCK_BYTES", block)
    path = tmp_path / f"long{suffix}"
    path.write_bytes(f"{URL}\nhttps://x.test/{'a' * 70_000}\n{OTHER}\n".encode())
    with pytest.raises(BlocklistError, match="'long': line 2: longer than 65536 bytes"):
        compile_blocklist("long", "url", path)
    path.write_bytes(f"{URL}\nhttps://x.test/{'a' * 65_000}\n".encode())  # under the cap
    assert compile_blocklist("long", "url", path).entries == 2


def test_a_gzip_bomb_stops_at_the_text_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocklist_lines, "MAX_TEXT_BYTES", 1 << 20)
    monkeypatch.setattr(blocklist_lines, "BLOCK_BYTES", 1 << 16)
    path = tmp_path / "bomb.txt.gz"
    path.write_bytes(gzip.compress(b"\n".join([URL.encode()] * 100_000)))
    with pytest.raises(BlocklistError, match="'bomb': holds more than 1,048,576 bytes of text"):
        compile_blocklist("bomb", "url", path)


def test_a_list_with_too_many_entries_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocklist_read, "MAX_ENTRIES", 3)
    path = tmp_path / "many.txt"
    path.write_text("".join(f"https://h{i}.test/\n" for i in range(4)))
    with pytest.raises(BlocklistError, match="'many': has more than 3 entries"):
        compile_blocklist("many", "url", path)
    path.write_text("".join(f"https://h{i}.test/\n" for i in range(3)))
    assert compile_blocklist("many", "url", path).entries == 3


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".csv.gz"])
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_bom_and_every_line_ending_keep_every_entry(
    tmp_path: Path, suffix: str, ending: str
) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark; old Mac files end lines with `\\r`."""
    lines = [URL, "# a comment", OTHER, "https://third.test/z.jpg"]
    data = ("\ufeff" + ending.join(lines) + ending).encode()
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    blocklist = compile_blocklist("bom", "url", path)
    assert blocklist.version == hashlib.sha256(path.read_bytes()).hexdigest()
    urls: list[str | None] = [URL, OTHER, "https://third.test/z.jpg", "https://no.test/"]
    rows, matched, entries = expected_urls("url", lines, urls)
    assert blocklist.entries == entries == 3
    got = blocklist.match(pa.array(urls), None)
    assert got.rows.tolist() == rows == [True, True, True, False] and got.entries == matched


def test_csv_header_only_when_it_is_a_known_name(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    # A malformed first hash is an error, not a header to skip.
    path.write_text(f"{sha(URL)[:-1]}\n{sha(OTHER)}\n")
    with pytest.raises(BlocklistError, match="'h': line 1: not a SHA-256"):
        compile_blocklist("h", "url_sha256", path)
    # A comment before the header, a BOM and padding around it: still a header.
    path.write_bytes(f"\ufeff# published list\n  SHA256 \n{sha(URL)}\n".encode())
    assert compile_blocklist("h", "url_sha256", path).entries == 1
    path.write_text(f"# published list, with a comma\nurl\n{URL}\n")
    blocklist = compile_blocklist("h", "url", path)
    assert blocklist.entries == 1  # "url" is the header, not an entry
    assert blocklist.match(pa.array(["url", URL]), None).rows.tolist() == [False, True]
    # A first row that is no header name is an entry.
    path.write_text(f"{URL}\n{OTHER}\n")
    assert compile_blocklist("h", "url", path).entries == 2


def test_csv_decode_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(("".join(f"https://h{i}.test/\n" for i in range(5000))).encode() + b"\xff\n")
    with pytest.raises(BlocklistError, match="'bad': line 5001: not UTF-8 text"):
        compile_blocklist("bad", "url", path)


def test_a_leading_dot_on_a_domain_is_dropped(tmp_path: Path) -> None:
    lines = [".example.org", "*.other.test", ".BÜCHER.de"]
    path = tmp_path / "d.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    blocklist = compile_blocklist("d", "domain", path)
    urls: list[str | None] = [
        "https://example.org/",
        "https://a.example.org/",
        "https://notexample.org/",
        "https://other.test/",
        "http://xn--bcher-kva.de/",
    ]
    rows, matched = expected_domains(lines, urls)
    assert rows == [True, True, False, True, True]
    got = blocklist.match(pa.array(urls), None)
    assert blocklist.entries == 3 and got.rows.tolist() == rows and got.entries == matched


def test_a_binary_url_column_is_hashed_as_its_raw_bytes(tmp_path: Path) -> None:
    raw = [b"https://x.test/\xff.jpg", b"https://x.test/\xfe.jpg", URL.encode(), None]
    path = tmp_path / "h.txt"
    path.write_text(f"{hashlib.sha256(raw[0] or b'').hexdigest()}\n{sha(URL)}\n")
    blocklist = compile_blocklist("h", "url_sha256", path)
    for column in (pa.array(raw, pa.binary()), pa.array(raw, pa.large_binary())):
        got = blocklist.match(column, None)
        assert got.rows.tolist() == [True, False, True, False]  # \xfe does not collapse
        assert got.entries == {hashlib.sha256(raw[i] or b"").digest()[:16] for i in (0, 2)}


def test_integral_floats_beyond_int64_are_exact(tmp_path: Path) -> None:
    big = [1e19, -1e19, 2.0**63, 2.0**70, 1e300]
    path = tmp_path / "i.txt"
    lines = [str(int(x)) for x in big]
    path.write_text("\n".join(lines) + "\n")
    by_text = compile_blocklist("i", "id", path)
    floats = tmp_path / "f.parquet"
    pq.write_table(pa.table({"id": pa.array(big, pa.float64())}), floats)
    by_float = compile_blocklist("f", "id", floats)
    ids: list[object] = [*big, 10**19, 2**63, 1e18, 12345678901234567890.5]
    rows, _, entries = expected_ids(lines, ids)
    assert rows == [True] * 7 + [False, False]  # the last is 12345678901234567168.0
    for blocklist in (by_text, by_float):
        assert blocklist.entries == entries == 5
        for column in (pa.array(big, pa.float64()), pa.array(big, pa.float32())):
            float_rows = expected_ids(lines, column.to_pylist())[0]
            assert blocklist.match(None, column).rows.tolist() == float_rows
        for column, want in (
            (pa.array([10**19, 2**63, 7], pa.uint64()), [True, True, False]),
            (pa.array(ids[:5]), rows[:5]),
        ):
            assert blocklist.match(None, column).rows.tolist() == want


def test_a_parquet_type_in_an_error_is_bounded(tmp_path: Path) -> None:
    hostile = "field_" + "x" * 500
    path = tmp_path / "t.parquet"
    column = pa.array([{hostile: 1}], pa.struct([(hostile, pa.int64())]))
    pq.write_table(pa.table({"entry": column}), path)
    for kind in ("url", "id"):
        with pytest.raises(BlocklistError) as caught:
            compile_blocklist("t", kind, path)
        message = str(caught.value)
        assert "must be" in message and "x" * 100 not in message and len(message) < 200


@pytest.mark.parametrize("type_", [pa.string_view(), pa.binary_view()])
def test_view_columns_are_text(tmp_path: Path, type_: pa.DataType) -> None:
    path = tmp_path / "v.parquet"
    pq.write_table(pa.table({"entry": pa.array([URL, OTHER]).cast(type_)}), path)
    blocklist = compile_blocklist("v", "url", path)
    assert blocklist.match(pa.array([URL, "x"]), None).rows.tolist() == [True, False]
