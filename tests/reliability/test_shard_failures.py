"""Scenario 15: failed shards are visible: an alert, a retry budget, a history.

A shard whose page data is corrupt (its snappy pages fail to decompress; footer and page
headers are fine) is ingested again and again with `max_attempts = 3` and a file alert
channel: it ends failed, failed, then quarantined "retry budget spent: failed 3 times"
with its three failures kept; the `shard-failures` rule sends one breach for it across all
the runs (exactly once through the outbox); when a good file replaces it under the same
path, the new version is done and one recovery follows. Before the fix a failing shard was
retried forever, and nothing alerted anyone. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import run_shardwatch, write_shards

pytestmark = pytest.mark.integration

Figure = Callable[[str, str, object], None]


def _corrupt_shard(folder: Path, seed: int) -> Path:
    """A valid shard whose TEXT pages are snappy data flipped after their headers."""
    good = write_shards(folder / "tmp", 1, rows=2000, seed=seed)[0]
    path = folder / "bad.parquet"
    pq.write_table(
        pq.read_table(good),
        path,
        compression="snappy",
        write_statistics=False,
        use_dictionary=False,
    )
    md = pq.read_metadata(path)
    names = [md.schema.column(j).name for j in range(md.num_columns)]
    chunk = md.row_group(0).column(names.index("TEXT"))
    data = bytearray(path.read_bytes())
    for k in range(chunk.data_page_offset + 60, chunk.data_page_offset + 400):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def _ingest(cfg: Path, path: Path) -> dict[str, Any]:
    proc = run_shardwatch("ingest", "--json", "--no-validate", "--config", str(cfg), str(path))
    assert proc.returncode in (0, 3), proc.stderr[-2000:]
    (result,) = json.loads(proc.stdout)["results"]
    assert isinstance(result, dict)
    return result


def _notices(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    items = [json.loads(line) for line in log.read_text().splitlines()]  # one per notice
    return [item for item in items if item.get("rule") == "shard-failures"]


def test_a_failing_shard_alerts_once_spends_its_budget_and_recovers(
    database_url: str,
    tmp_path: Path,
    figure: Figure,
    canaries: Canaries,
    leaks: LeakWatch,
) -> None:
    if database_url.startswith("postgres"):  # the canary password (trust auth ignores it)
        database_url = canaries.postgres_url(database_url)
    folder = tmp_path / "shards"
    bad = _corrupt_shard(folder, seed=41)
    log = tmp_path / "alerts.jsonl"
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f"""
dataset = "failing"
database_url = "{database_url}"
max_attempts = 3
[alerts.channels.log]
type = "file"
path = "{log}"
""")
    outcomes = [_ingest(cfg, bad) for _ in range(4)]
    kinds = [o["outcome"] for o in outcomes]
    figure("shard failures", f"{database_url.split(':')[0]}: outcomes of 4 runs", kinds)
    assert kinds[:2] == ["failed", "failed"]
    assert kinds[2:] == ["quarantined", "quarantined"]
    assert outcomes[0]["reason"].startswith("failed while reading (Corrupt snappy")
    assert outcomes[2]["reason"].startswith("retry budget spent: failed 3 times; last: failed")
    assert outcomes[3]["reason"].startswith("quarantined earlier")  # not tried a 4th time

    report = run_shardwatch("report", "--json", "--config", str(cfg))
    assert report.returncode == 0, report.stderr[-2000:]
    (entry,) = [s for s in json.loads(report.stdout)["shards"] if s["status"] != "done"]
    assert [h["status"] for h in entry["history"]] == ["failed", "failed", "quarantined"]
    assert entry["reason"] == outcomes[2]["reason"]

    breaches = [n for n in _notices(log) if n.get("kind") == "breach"]
    figure("shard failures", f"{database_url.split(':')[0]}: breach notices", len(breaches))
    assert len(breaches) == 1, _notices(log)
    assert "failed while reading" in json.dumps(breaches[0])

    write_shards(tmp_path / "good", 1, rows=50, seed=42)[0].replace(bad)  # fixed upstream
    assert _ingest(cfg, bad)["outcome"] == "done"
    assert _ingest(cfg, bad)["outcome"] == "skipped"
    kinds_sent = [n.get("kind") for n in _notices(log)]
    figure("shard failures", f"{database_url.split(':')[0]}: notices", kinds_sent)
    assert kinds_sent == ["breach", "recovery"]
    leaks.texts("shard failures outputs", [json.dumps(outcomes), report.stdout, report.stderr])
    leaks.tree("shard failures alerts", log)
    leaks.database("shard failures store", database_url)
