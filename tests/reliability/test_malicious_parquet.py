"""Scenario 1, malicious parquet (issue 8; docs/reliability.md).

- A shard whose stored Arrow schema declares `arrow.py_extension_type` with a pickle that
  writes a sentinel file (CVE-2023-47248): every reading path of shardwatch processes it and
  the sentinel never appears; the very bytes stored in the file do write it when unpickled.
- Fuzzed shards: hypothesis mutates the bytes of valid shards (footer-heavy) and each goes
  through the real ingest path in a child process under RLIMIT_AS and a per-input timeout.
  Each is done, quarantined (refused before decoding) or failed with a one-line reason; the
  child never dies, hangs or lets an exception escape. SHARDWATCH_FUZZ_EXAMPLES sets the
  count (default 300; 3,000 with SHARDWATCH_SLOW=1, which also varies the seed). Inputs
  that once crashed are kept in tests/support/reliability/malparquet_corpus/ and replayed.
- A zstd decompression bomb (~2,800x), a 100,000-column schema and nested schemas (40 and 200
  levels) are refused by the footer check, in a child process whose peak RSS is reported. The
  1 GiB bomb is checked against a 512 MiB cap (the opt-in slow test builds a 17 GiB one for
  the default 16 GiB cap); a copy with every data byte scrambled gets the same verdict, so no
  page was read.
- A mix of all of them and a good shard through `shardwatch ingest --validate` on SQLite and
  PostgreSQL (canary password): the good shards are done, each bad one is quarantined or
  failed with its reason, and the run goes on.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.builders import adversarial_table
from support.reliability import FOLDER
from support.reliability.leaks import Canaries, LeakWatch
from support.reliability.malparquet_shards import (
    PY_EXTENSION,
    declared_extensions,
    declared_uncompressed,
    deep_shard,
    payload,
    pickled_extension_shard,
    scrambled,
    zstd_bomb,
)
from support.store_checks import ingest, shards, subprocess_env, write_shards

from shardwatch.acquire.footer import FooterInfo, FooterLimits, check_footer
from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import LAION400M
from shardwatch.scan.engine import scan_shard
from shardwatch.scan.reader import ShardReader
from shardwatch.store.database import make_engine, upgrade
from shardwatch.store.repository import ResultStore

pytestmark = pytest.mark.integration

Figure = Callable[[str, str, object], None]
SCENARIO = "1 malicious parquet"
WORKER = FOLDER / "malparquet_worker.py"
SLOW = os.environ.get("SHARDWATCH_SLOW") == "1"
FUZZ_EXAMPLES = int(os.environ.get("SHARDWATCH_FUZZ_EXAMPLES", "3000" if SLOW else "300"))
FUZZ_TIMEOUT = 60.0  # seconds one input may take (loaded 2-core CI); inputs take ~0.05 s
FUZZ_AS_BYTES = 3 * 1024**3  # RLIMIT_AS of the fuzz worker (it maps ~1.3 GiB at rest)
MiB = 1024**2
BOMB_BYTES = 1024 * MiB
BOMB_CAP = 512 * MiB  # a deployment's download.max_uncompressed_bytes
RSS_BOUND_MB = 400  # generous: the checker idles at ~70 MB; decoding the bomb needs 1 GiB


def child(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), *map(str, args)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=timeout,
        check=False,
    )


def check_in_child(path: Path, max_uncompressed: int | None = None) -> dict[str, Any]:
    """The footer check in a fresh process: its verdict and peak RSS (MB)."""
    extra = [] if max_uncompressed is None else [str(max_uncompressed)]
    proc = child("check", path, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    verdict: dict[str, Any] = json.loads(proc.stdout)
    return verdict


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bomb (and its scrambled copy), the 100k-column and the deeply nested files."""
    folder = tmp_path_factory.mktemp("hostile")
    bomb = zstd_bomb(folder / "bomb.parquet", BOMB_BYTES)
    wide = folder / "wide.parquet"
    proc = child("wide", wide, "100000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        "bomb": bomb,
        "scrambled bomb": scrambled(bomb, folder / "bomb-scrambled.parquet"),
        "100k columns": wide,
        "40-level nesting": deep_shard(folder / "deep-40.parquet", 40),
        "200-level nesting": deep_shard(folder / "deep-200.parquet", 200),
    }


# -- the pickled extension type -----------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    return tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in text.split(".")[:3])


def test_a_pickled_extension_type_is_never_unpickled(
    tmp_path: Path, leaks: LeakWatch, figure: Figure
) -> None:
    assert _version(pa.__version__) >= (14, 0, 1), f"pyarrow {pa.__version__} < 14.0.1"
    figure(SCENARIO, "pyarrow version (>= 14.0.1 asserted)", pa.__version__)

    sentinel = tmp_path / "SENTINEL-written-by-the-shard"
    path = pickled_extension_shard(tmp_path, sentinel)
    # Honest file: the stored schema declares the extension with the live pickle as metadata.
    stored = (PY_EXTENSION.encode(), payload(sentinel))
    assert declared_extensions(path) == {"TEXT": stored, "extra": stored}
    probe = tmp_path / "probe" / "written-by-the-same-payload"
    probe.parent.mkdir()
    pickle.loads(payload(probe))  # live: loading it writes a file
    assert probe.read_text().startswith("unpickled")

    # Every way shardwatch reads a shard: footer check, reader, engine, ingest and store.
    info = check_footer(path, FooterLimits())
    assert isinstance(info, FooterInfo) and info.rows == 80
    with ShardReader(path, LAION400M) as reader:
        assert reader.schema.field("TEXT").type == pa.string()  # storage type, not pickled
        assert sum(b.num_rows for b in reader.iter_batches(16)) == 80
    assert scan_shard(path, LAION400M, BIRHANE2021).rows == 80
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        upgrade(engine)
        (result,) = ingest([path], ResultStore(engine))
    finally:
        engine.dispose()
    assert result.outcome == "done", result.reason
    assert pq.read_table(path).schema.field("extra").type == pa.string()
    scan = subprocess.run(
        [sys.executable, "-m", "shardwatch", "scan", "--json", str(path)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert scan.returncode == 0, scan.stderr[-3000:]
    assert json.loads(scan.stdout)["total"]["rows"] == 80
    assert not sentinel.exists(), "reading the shard unpickled its extension type"

    # The exact bytes stored in the file write the sentinel once something unpickles them.
    live = child("unpickle", path, "TEXT")
    assert live.returncode == 0, live.stderr[-3000:]
    assert sentinel.read_text().startswith("unpickled")
    leaks.texts("pickled extension: scan output", [scan.stdout, scan.stderr, result.outcome])


# -- fuzzing --------------------------------------------------------------------------------


def _fuzz_bases(folder: Path) -> list[bytes]:
    """Small valid shards written four ways (codecs, page versions, dictionary, page index)."""
    options: list[dict[str, Any]] = [
        {"compression": "zstd", "row_group_size": 25},
        {"compression": "snappy", "data_page_version": "2.0", "write_page_index": True},
        {"compression": "none", "use_dictionary": False, "row_group_size": 40},
        {"compression": "gzip", "write_statistics": False},
    ]
    bases = []
    for i, opts in enumerate(options):
        path = folder / f"base-{i}.parquet"
        pq.write_table(adversarial_table(60, 900 + i), path, **opts)
        bases.append(path.read_bytes())
    return bases


class FuzzWorker:
    """tests/support/reliability/malparquet_worker.py `ingest`: one long-lived child under
    RLIMIT_AS, fed paths."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.err_path = folder / "worker-stderr.txt"
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.ready: dict[str, Any] = {}

    def _start(self) -> None:
        with self.err_path.open("a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), "ingest", self.url, str(FUZZ_AS_BYTES)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=subprocess_env(),
            )
        self.lines = queue.Queue()
        threading.Thread(
            target=self._pump, args=(self.proc.stdout, self.lines), daemon=True
        ).start()
        self.ready = self._read(120.0, "start")

    @staticmethod
    def _pump(out: IO[str], lines: queue.Queue[str | None]) -> None:
        for line in out:
            lines.put(line)
        lines.put(None)

    def _read(self, timeout: float, what: str) -> dict[str, Any]:
        assert self.proc is not None
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"the worker hung on {what} (> {timeout} s)") from None
        if line is None:
            code = self.proc.wait(timeout=10)
            self.stop()
            tail = self.err_path.read_text()[-3000:]
            raise AssertionError(f"the worker died on {what}: exit status {code}\n{tail}")
        result: dict[str, Any] = json.loads(line)
        return result

    def ingest(self, path: Path) -> dict[str, Any]:
        if self.proc is None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        return self._read(FUZZ_TIMEOUT, path.name)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc = None


def _mutate(data: st.DataObject, base: bytes) -> bytes:
    """1-6 byte mutations, half of them inside the footer (where parsing starts)."""
    buf = bytearray(base)
    footer_start = len(base) - 8 - int.from_bytes(base[-8:-4], "little")
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        if not buf:
            break
        region = data.draw(st.sampled_from(["footer", "anywhere"]))
        low = min(footer_start, len(buf) - 1) if region == "footer" else 0
        pos = data.draw(st.integers(low, len(buf) - 1))
        kind = data.draw(st.sampled_from(["flip", "set", "overwrite", "insert", "delete", "cut"]))
        if kind == "flip":
            buf[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "set":
            buf[pos] = data.draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        elif kind == "overwrite":
            chunk = data.draw(st.binary(min_size=1, max_size=16))
            buf[pos : pos + len(chunk)] = chunk
        elif kind == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 16))]
        else:
            del buf[pos:]
    return bytes(buf)


def test_fuzzed_shards_are_done_or_refused_and_the_worker_never_crashes(
    tmp_path: Path, leaks: LeakWatch, figure: Figure
) -> None:
    bases = _fuzz_bases(tmp_path)
    folder = tmp_path / "inputs"
    folder.mkdir()
    url = f"sqlite:///{tmp_path / 'fuzz.sqlite'}"
    worker = FuzzWorker(url, tmp_path)
    tried: Counter[str] = Counter()
    slowest = [0.0, 0.0]  # seconds, peak RSS MB of the worker
    reasons: list[str] = []

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not SLOW,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one_input(data: st.DataObject) -> None:
        base = data.draw(st.integers(0, len(bases) - 1), label="base")
        path = folder / f"input-{sum(tried.values()):05d}.parquet"
        path.write_bytes(_mutate(data, bases[base]))
        result = worker.ingest(path)
        path.unlink()
        outcome, reason = result["outcome"], result["reason"]
        tried[outcome] += 1
        slowest[0] = max(slowest[0], result["seconds"])
        slowest[1] = max(slowest[1], result["peak_mb"])
        assert outcome != "escaped", f"an exception escaped ingest_file:\n{reason}"
        assert outcome in ("done", "skipped", "quarantined", "failed"), result
        if outcome == "done":  # what was stored equals a plain read of the file
            assert result["stored"]["metrics"] == result["reference"], result
            assert result["stored"]["rows"]["shard_metrics"] == 1, result
        if outcome in ("quarantined", "failed"):  # a refused file stores no result at all
            assert not any(result["stored"]["rows"].values()), result
            assert result["stored"]["metrics"] is None, result
            assert reason and reason.strip() == reason and "\n" not in reason, result
            assert "Traceback" not in reason and len(reason) < 600, result
            reasons.append(reason)
        if outcome == "quarantined":
            refusals = (
                "refused before decoding: ",
                "refused while decoding: ",
                "quarantined earlier",
                "identical content to ",  # a mutation that repeats an earlier input's bytes
            )
            assert reason.startswith(refusals), result

    started = time.perf_counter()
    try:
        one_input()
    finally:
        worker.stop()
    elapsed = time.perf_counter() - started
    total = sum(tried.values())
    assert total >= FUZZ_EXAMPLES // 2, tried  # hypothesis may stop early on duplicates only
    assert tried["quarantined"] and tried["done"], tried  # the mutations reach both ends
    figure(SCENARIO, "fuzzed inputs tried", total)
    figure(SCENARIO, "fuzz outcomes", ", ".join(f"{n} {k}" for k, n in sorted(tried.items())))
    figure(SCENARIO, "fuzz: slowest input (s)", slowest[0])
    figure(SCENARIO, "fuzz: worker peak RSS (MB)", slowest[1])
    figure(
        SCENARIO, "fuzz: worker address space at rest (MB; RLIMIT_AS 3 GiB)", worker.ready["vm_mb"]
    )
    figure(SCENARIO, "fuzz: inputs per second", total / elapsed)
    leaks.texts("fuzz reasons", reasons)
    leaks.text("fuzz worker stderr", worker.err_path.read_text())
    leaks.database("fuzz store", url)


CORPUS = FOLDER / "malparquet_corpus"


def test_inputs_that_once_crashed_are_now_refused_cleanly(tmp_path: Path, leaks: LeakWatch) -> None:
    """Fuzzing finds kept as files. def-level-histogram-abort.parquet: one footer byte
    changed; pyarrow's RowGroupMetaData.column() threw an uncaught C++ exception on it and
    the footer check died with SIGABRT (fixed: footer_thrift.py reads the sizes)."""
    corpus = sorted(CORPUS.glob("*.parquet"))
    assert corpus
    url = f"sqlite:///{tmp_path / 'corpus.sqlite'}"
    worker = FuzzWorker(url, tmp_path)
    try:
        results = {path.name: worker.ingest(path) for path in corpus}
    finally:
        worker.stop()
    for name, result in results.items():
        assert result["outcome"] in ("done", "quarantined", "failed"), (name, result)
        assert result["outcome"] == "done" or result["reason"], (name, result)
    assert "histogram" in results["def-level-histogram-abort.parquet"]["reason"]
    leaks.texts("corpus reasons", [str(r["reason"]) for r in results.values()])


# -- bombs, wide and deep schemas -----------------------------------------------------------

EXPECTED = {
    "bomb": "uncompressed bytes, above the cap of 536,870,912",
    "scrambled bomb": "uncompressed bytes, above the cap of 536,870,912",
    "100k columns": "declares 100,001 schema elements (columns and groups), above the cap",
    "40-level nesting": "declares a schema nested 41 levels deep, above the cap of 32",
    "200-level nesting": "nested deeper than pyarrow reads",
}


def test_bombs_and_hostile_schemas_are_refused_before_decoding(
    hostile: dict[str, Path], leaks: LeakWatch, figure: Figure
) -> None:
    declared = declared_uncompressed(hostile["bomb"])
    ratio = declared / hostile["bomb"].stat().st_size
    assert declared >= BOMB_BYTES and ratio > 900
    figure(
        SCENARIO,
        "zstd bomb: declared bytes / file bytes",
        f"{declared:,} / {hostile['bomb'].stat().st_size:,} ({ratio:,.0f}x)",
    )
    verdicts = {}
    for name, path in hostile.items():
        verdict = check_in_child(path, BOMB_CAP if "bomb" in name else None)
        verdicts[name] = verdict
        assert verdict["rejected"], (name, verdict)
        assert EXPECTED[name] in verdict["reason"], (name, verdict["reason"])
        assert verdict["peak_mb"] < RSS_BOUND_MB, (name, verdict)
        figure(SCENARIO, f"peak RSS of the check: {name} (MB)", verdict["peak_mb"])
    # No page was read: scrambling every data byte of the bomb changes nothing.
    assert verdicts["scrambled bomb"]["reason"] == verdicts["bomb"]["reason"]
    assert verdicts["bomb"]["peak_mb"] * MiB < declared / 2
    leaks.texts("hostile verdicts", [v["reason"] for v in verdicts.values()])


@pytest.mark.slow
def test_a_17_gib_bomb_is_refused_by_the_default_cap(
    tmp_path: Path, leaks: LeakWatch, figure: Figure
) -> None:
    # 64-byte values: 285M rows, under the 2-billion row cap, so the bytes cap decides.
    bomb = zstd_bomb(tmp_path / "bomb-17g.parquet", 17 * 1024**3, value_bytes=64)
    verdict = check_in_child(bomb)  # FooterLimits(): 16 GiB
    assert verdict["rejected"] and "above the cap of 17,179,869,184" in verdict["reason"]
    assert verdict["peak_mb"] < RSS_BOUND_MB
    figure(SCENARIO, "17 GiB bomb: file bytes", bomb.stat().st_size)
    figure(SCENARIO, "peak RSS of the check: 17 GiB bomb (MB)", verdict["peak_mb"])
    leaks.text("17 GiB bomb verdict", verdict["reason"])


# -- one run over all of them ---------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path, hostile: dict[str, Path]) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A folder of bad shards and two good ones; the sentinel path; name -> expected end."""
    folder = tmp_path / "shards"
    good = write_shards(folder, 1, seed=70)[0]
    sentinel = tmp_path / "SENTINEL-written-by-the-shard"
    pickled_extension_shard(folder, sentinel)
    for name in ("bomb", "100k columns", "40-level nesting", "200-level nesting"):
        shutil.copyfile(hostile[name], folder / (name.replace(" ", "-") + ".parquet"))
    data = good.read_bytes()
    (folder / "truncated.parquet").write_bytes(data[: len(data) // 2])
    corrupt = write_shards(tmp_path / "tmp", 1, seed=71)[0]
    scrambled(corrupt, folder / "data-pages-scrambled.parquet")
    expected = {
        good.name: "done",
        "pickled-extension.parquet": "done",
        "bomb.parquet": "quarantined: " + EXPECTED["bomb"],
        "100k-columns.parquet": "quarantined: " + EXPECTED["100k columns"],
        "40-level-nesting.parquet": "quarantined: " + EXPECTED["40-level nesting"],
        "200-level-nesting.parquet": "quarantined: " + EXPECTED["200-level nesting"],
        "truncated.parquet": "quarantined: not a parquet file",
        "data-pages-scrambled.parquet": "quarantined: unreadable page header",
    }
    yield folder, sentinel, expected


def test_one_run_over_malicious_shards_and_good_ones(
    tmp_path: Path,
    database_url: str,
    canaries: Canaries,
    mixed: tuple[Path, Path, dict[str, str]],
    leaks: LeakWatch,
    figure: Figure,
) -> None:
    folder, sentinel, expected = mixed
    url = (
        canaries.postgres_url(database_url) if database_url.startswith("postgres") else database_url
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "shardwatch",
            "ingest",
            "--json",
            "--validate",
            "--no-alerts",
            "--dataset",
            "hostile",
            str(folder),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=subprocess_env(
            SHARDWATCH_DATABASE_URL=url,
            SHARDWATCH_DOWNLOAD__MAX_UNCOMPRESSED_BYTES=str(BOMB_CAP),
        ),
        timeout=600,
        check=False,
    )
    seconds = time.perf_counter() - started
    assert proc.returncode == 3, proc.stderr[-3000:]  # some shards could not be read
    results = {Path(r["uri"]).name: r for r in json.loads(proc.stdout)["results"]}
    assert set(results) == set(expected)
    engine = make_engine(url)
    try:
        stored = {Path(row["uri"]).name: row for row in shards(engine)}
    finally:
        engine.dispose()
    for name, want in expected.items():
        outcome, _, fragment = want.partition(": ")
        result, row = results[name], stored[name]
        assert (result["outcome"], row["status"]) == (outcome, outcome), (name, result)
        if outcome == "done":
            assert row["reason"] is None
            continue
        assert row["reason"] == result["reason"] and fragment in row["reason"], (name, row)
        if outcome == "quarantined":
            assert row["reason"].startswith("refused before decoding: "), row
    assert not sentinel.exists(), "ingesting the shard unpickled its extension type"
    figure(
        SCENARIO,
        f"ingest of {len(expected)} mixed shards with GX ({url.split(':')[0]}) (s)",
        seconds,
    )
    leaks.text("mixed ingest stdout", proc.stdout)
    leaks.text("mixed ingest stderr", proc.stderr)
    leaks.tree("mixed ingest .shardwatch", tmp_path / ".shardwatch")
    leaks.database("mixed ingest store", url)
