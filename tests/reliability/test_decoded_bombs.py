"""Scenario 11: decompression bombs bounded by what is decoded, not by what the footer declares.

Each bomb goes through the real ingest path (footer check, page scan, scan, store) in a
fresh child process with `max_uncompressed_bytes` = 50 MB, which reports the outcome and
its peak RSS. The files:

- honest: 400 captions of 1 MiB each, plain-encoded, zstd (~18 KB on disk, 419 MB decoded);
  its footer says so;
- lying footer: the same file with every declared uncompressed size rewritten to 1,000
  bytes (tests/support/reliability/thrift_rewrite.py); its page headers are untouched;
- lying footer under the cap: 40 such captions (42 MB, under the cap), declared as 1,000
  bytes: refused for the lie itself;
- lying pages: the footer and every page header understate the sizes: the decompressor
  refuses a page that does not inflate to its declared size;
- dictionary bomb: one 1 MiB dictionary entry repeated by 400 run-length indices; its footer
  and pages honestly declare ~1 MB, yet the rows decode to 419 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.reliability import FOLDER
from support.reliability.leaks import LeakWatch
from support.reliability.malparquet_shards import declared_uncompressed
from support.reliability.thrift_rewrite import rewrite_struct, understate_sizes
from support.store_checks import subprocess_env

pytestmark = pytest.mark.integration

WORKER = FOLDER / "malparquet_worker.py"
CAP = 50_000_000
MIB = 1024**2
ROWS = 400
# Peak RSS of the child may exceed its idle RSS by this much (the cap plus one batch of
# margin): the unfixed code decoded the whole 419 MB, at ~1 GB peak.
PEAK_ALLOWANCE_MB = 4 * CAP / 1e6


def _captions(path: Path, rows: int, *, dictionary: bool) -> Path:
    """`rows` captions of 1 MiB ('a' * 1 MiB), a row group of 80 (84 MB, above the cap)
    at a time, written from one reused array."""
    value = "a" * MIB
    step = min(rows, 80)
    table = pa.table({"URL": ["http://x.example/a"] * step, "TEXT": [value] * step})
    with pq.ParquetWriter(
        path,
        table.schema,
        compression="zstd",
        use_dictionary=["TEXT"] if dictionary else False,
        dictionary_pagesize_limit=4 * MIB,
        write_statistics=False,
    ) as writer:
        for _ in range(rows // step):
            writer.write_table(table, row_group_size=rows)
    return path


def _lying_pages(path: Path) -> None:
    """Every page header of the file also understates its uncompressed size (1,000 bytes)."""
    data = bytearray(path.read_bytes())
    md = pq.read_metadata(path)
    out = bytearray(data[:4])
    pos = 4
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            chunk = md.row_group(g).column(c)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            assert start == pos, "chunks are contiguous in this writer's output"
            end = start + chunk.total_compressed_size
            while pos < end:
                sizes: dict[int, int] = {}

                def lie(field: tuple[int, ...], value: int, sizes: dict[int, int] = sizes) -> int:
                    sizes[field[0]] = value
                    return 1000 if field == (2,) else value

                header, used = rewrite_struct(bytes(data[pos : pos + 4096]), lie)
                out += header + data[pos + used : pos + used + sizes[3]]
                pos += used + sizes[3]
    # Offsets moved with the shorter headers: a lying file need not be consistent, but keep
    # it readable so the decompressor is what refuses it.
    out += data[pos:]
    path.write_bytes(bytes(out))


def _ingest(db: Path, path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(WORKER), "capped", f"sqlite:///{db}", str(CAP), str(path)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    verdict: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return verdict


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("decoded-bombs")
    honest = _captions(folder / "honest.parquet", ROWS, dictionary=False)
    lying = folder / "lying-footer.parquet"
    lying.write_bytes(honest.read_bytes())
    understate_sizes(lying)
    small = _captions(folder / "lying-under-cap.parquet", 40, dictionary=False)
    understate_sizes(small)
    pages = _captions(folder / "lying-pages.parquet", 40, dictionary=False)
    _lying_pages(pages)
    understate_sizes(pages)
    dictionary = _captions(folder / "dictionary.parquet", ROWS, dictionary=True)
    return {
        "honest": honest,
        "lying": lying,
        "small": small,
        "pages": pages,
        "dictionary": dictionary,
    }


def test_the_bombs_are_what_they_claim(bombs: dict[str, Path]) -> None:
    """The premise: each file is small on disk, decodes far above the cap, and the lying
    footers declare 1,000 bytes a chunk."""
    honest, lying = bombs["honest"], bombs["lying"]
    assert honest.stat().st_size < 100_000
    assert declared_uncompressed(honest) > 400 * MIB
    md = pq.read_metadata(lying)
    assert {md.row_group(0).column(j).total_uncompressed_size for j in range(2)} == {1000}
    assert declared_uncompressed(bombs["dictionary"]) < 25 * MIB < CAP
    assert md.num_rows == ROWS
    column = pq.ParquetFile(lying).read_row_group(0, columns=["TEXT"]).column("TEXT")
    assert len(column[0].as_py()) == MIB  # the lie is in the footer only


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("honest", "refused before decoding: declares"),
        ("lying", "its pages hold more than the cap of 50,000,000 uncompressed bytes"),
        ("small", "its pages hold more than its footer declares: column chunk 1 of row"),
        ("dictionary", "refused while decoding: decoded more than the cap of 50,000,000"),
    ],
)
def test_a_bomb_is_quarantined_with_its_reason_and_memory_stays_near_the_cap(
    bombs: dict[str, Path],
    tmp_path: Path,
    name: str,
    reason: str,
    figure: Callable[[str, str, object], None],
    leaks: LeakWatch,
) -> None:
    verdict = _ingest(tmp_path / "store.db", bombs[name])
    leaks.text(f"decoded bomb {name} verdict", json.dumps(verdict))
    leaks.database(f"decoded bomb {name} store", f"sqlite:///{tmp_path / 'store.db'}")
    grown = verdict["peak_mb"] - verdict["rss_before_mb"]
    figure("decoded bombs", f"{name}: outcome", verdict["outcome"])
    figure("decoded bombs", f"{name}: peak RSS growth MB", round(grown, 1))
    figure("decoded bombs", f"{name}: seconds", round(verdict["seconds"], 2))
    assert verdict["outcome"] == "quarantined", verdict
    assert reason in verdict["reason"], verdict["reason"]
    assert grown < PEAK_ALLOWANCE_MB, verdict


def test_pages_that_understate_their_size_are_refused_by_the_decompressor(
    bombs: dict[str, Path], tmp_path: Path, figure: Callable[[str, str, object], None]
) -> None:
    """Footer and page headers both lie: the page scan sees small pages, and the decoder
    refuses each page that inflates past its declared size; nothing is stored."""
    verdict = _ingest(tmp_path / "store.db", bombs["pages"])
    grown = verdict["peak_mb"] - verdict["rss_before_mb"]
    figure("decoded bombs", "lying pages: outcome", verdict["outcome"])
    figure("decoded bombs", "lying pages: peak RSS growth MB", round(grown, 1))
    assert verdict["outcome"] in ("failed", "quarantined"), verdict
    assert grown < PEAK_ALLOWANCE_MB, verdict


def test_an_honest_file_decodes_as_before(
    tmp_path: Path, figure: Callable[[str, str, object], None]
) -> None:
    """The guard refuses nothing honest: 40 dictionary-encoded captions of 1 MiB (42 MB
    decoded, under the 50 MB cap) are done, in batches of at most cap / 4 bytes."""
    path = _captions(tmp_path / "fine.parquet", 40, dictionary=True)
    verdict = _ingest(tmp_path / "store.db", path)
    grown = verdict["peak_mb"] - verdict["rss_before_mb"]
    figure("decoded bombs", "honest 42 MB dictionary file: peak RSS growth MB", round(grown, 1))
    assert verdict["outcome"] == "done", verdict
