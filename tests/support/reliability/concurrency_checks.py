"""Helpers of the concurrency and soak scenarios (7 and 10): shards of varied sizes, worker
processes (concurrency_worker.py) writing their JSON lines to files, and the independent
counts the stored results are compared with."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import Engine, text

from support.builders import adversarial_table, write_shard
from support.store_checks import subprocess_env

WORKER = Path(__file__).resolve().parent / "concurrency_worker.py"


def write_small_shards(
    directory: Path, n: int, *, rows: tuple[int, int], seed: int = 0
) -> list[Path]:
    """`n` distinct LAION-style shards of `rows[0]`..`rows[1]` rows each."""
    directory.mkdir(parents=True, exist_ok=True)
    sizes = random.Random(seed)
    return [
        write_shard(
            adversarial_table(sizes.randint(*rows), seed + i), directory, f"part-{i:05d}.parquet"
        )
        for i in range(n)
    ]


def file_rows(paths: list[Path]) -> dict[str, int]:
    """Rows per shard URI, counted by decoding each file with pyarrow (not the engine)."""
    return {str(p.resolve()): pq.read_table(p).num_rows for p in paths}


def stored_rows(engine: Engine) -> dict[str, list[int]]:
    """The `rows` of every stored result set, per shard URI (a list: duplicates would show)."""
    query = text("SELECT s.uri, m.rows FROM shards s JOIN shard_metrics m ON m.shard_id = s.id")
    out: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for uri, rows in conn.execute(query):
            out.setdefault(uri, []).append(int(rows))
    return out


@dataclass
class Worker:
    """One concurrency_worker.py process; its stdout and stderr go to files (never a pipe
    that could fill up while the test is busy elsewhere)."""

    owner: str
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    ready: Path

    @classmethod
    def start(cls, url: str, owner: str, paths: list[Path], folder: Path, *options: str) -> Worker:
        command = [sys.executable, str(WORKER), "--url", url, "--owner", owner]
        out, err, ready = (folder / f"{owner}.{kind}" for kind in ("out", "err", "ready"))
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [*command, "--ready", str(ready), *options, *(str(p) for p in paths)],
                stdout=stdout,
                stderr=stderr,
                env=subprocess_env(),
            )
        return cls(owner, proc, out, err, ready)

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The complete JSON lines of one kind (a killed worker may leave half a line)."""
        found = []
        for line in self.out.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("event") == kind:
                found.append(record)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
