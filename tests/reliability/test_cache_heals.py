"""Scenario 17, a bounded cache that heals (issue 17, item 8; docs/reliability.md).

The download cache is a 2 MiB tmpfs (a real full disk: ENOSPC), or, where mounting is not
possible, a 2 MiB `download.cache_max_bytes` budget. A 3 MiB shard fills it and fails, alone:
its partial file is removed, and a 26 KB shard in the same pass is done. A killed process
then leaves the big shard's partial file (1.9 MiB) behind: in the next pass the big shard
fails again and a new small shard is still done; once the big shard has left the manifest,
its orphaned partial file (and meta) is collected at the start of the pass, with no hand."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.builders import tagged_table
from support.reliability.leaks import Canaries, LeakWatch
from support.reliability.versioned_server import VersionedServer
from support.store_checks import SUITES

from shardwatch.acquire.partial import PartMeta, Validator, write_meta
from shardwatch.acquire.sources import RemoteShard, cache_name
from shardwatch.pipeline.monitor import discover, process, start
from shardwatch.pipeline.resources import Resources
from shardwatch.settings.config import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_proxy")]

S = "12 cache heals"
MiB = 1024 * 1024
BIG = random.Random(3).randbytes(3 * MiB)


def small(seed: int) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(tagged_table(400, 2, seed=seed), sink)
    return bytes(sink.getvalue().to_pybytes())



@pytest.fixture
def srv() -> Iterator[VersionedServer]:
    server = VersionedServer("etag")
    yield server
    server.close()


def mount_tmpfs(folder: Path) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.mark.parametrize("disk", ["tmpfs", "budget"])
def test_a_full_cache_fails_only_the_big_shard_and_heals(
    srv: VersionedServer,
    figure: Any,
    canaries: Canaries,
    leaks: LeakWatch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    disk: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    if disk == "tmpfs" and not mount_tmpfs(cache):
        pytest.skip("cannot mount a tmpfs here (not root?); the budget variant covers it")
    try:
        reasons = run_scenario(srv, figure, canaries, tmp_path, cache, disk)
    finally:
        if disk == "tmpfs":
            subprocess.run(["umount", str(cache)], check=False)
    leaks.text("outcomes", reasons)
    leaks.tree("store", tmp_path / "store.sqlite")


def run_scenario(
    srv: VersionedServer, figure: Any, canaries: Canaries, tmp_path: Path, cache: Path, disk: str
) -> str:
    """The three passes; returns their outcomes and reasons, to be searched for canaries."""
    files = {"a-big": BIG, **{f"s{i}-small": small(80 + i) for i in range(1, 4)}}
    for name, body in files.items():
        srv.put(f"/data/{name}.parquet", body)
    budget = f"cache_max_bytes = {2 * MiB}" if disk == "budget" else ""
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(f"""
dataset = "heals"
database_url = "sqlite:///{tmp_path / "store.sqlite"}"
state_dir = "{tmp_path / ".shardwatch"}"
[validation]
suites_dir = "{SUITES}"
[alerts]
enabled = false
[download]
cache_dir = "{cache}"
attempts = 2
backoff = 0.05
connect_timeout = 1
read_timeout = 2
{budget}
[sources.web]
type = "http"
manifest = "{srv.url("/data/manifest.json")}?sig={canaries.webhook}"
""")
    settings = load_settings(cfg)
    res = Resources(settings)

    def one_pass(names: list[str]) -> dict[str, tuple[str, str | None]]:
        manifest = [
            {
                "url": f"{n}.parquet",
                "size": len(files[n]),
                "sha256": hashlib.sha256(files[n]).hexdigest(),
            }
            for n in names
        ]
        srv.put("/data/manifest.json", json.dumps(manifest).encode())
        run = start(res)
        found = discover(res)
        assert found.errors == ()
        got = [process(res, s, run) for s in found.new]
        return {
            o.uri.rsplit("/", 1)[1].removesuffix(".parquet"): (o.outcome, o.reason) for o in got
        }

    big_url = srv.url("/data/a-big.parquet")
    big_part = cache / (
        cache_name(RemoteShard("web", big_url, "a-big.parquet", len(BIG), None, None)) + ".part"
    )

    def killed_download() -> None:
        """What a process killed mid-download leaves: 1.9 MiB of the big shard, resumable."""
        big_part.write_bytes(BIG[: 19 * MiB // 10])
        write_meta(big_part, PartMeta.of(big_url, Validator("etag", '"v1"'), len(BIG)))

    first = one_pass(["a-big", "s1-small"])
    assert first["a-big"][0] == "failed" and "cache is full" in (first["a-big"][1] or "")
    assert first["s1-small"] == ("done", None)
    assert list(cache.iterdir()) == []  # the failed shard's partial file is gone

    killed_download()
    second = one_pass(["a-big", "s1-small", "s2-small"])
    assert second["a-big"][0] == "failed" and "s1-small" not in second  # s1: unchanged
    assert second["s2-small"] == ("done", None)
    assert list(cache.iterdir()) == []

    killed_download()
    third = one_pass(["s1-small", "s2-small", "s3-small"])  # the big shard left the manifest
    assert third == {"s3-small": ("done", None)}
    assert list(cache.iterdir()) == []  # its orphaned partial file and meta were collected

    passes = (first, second, third)
    done = sum(o == ("done", None) for p in passes for n, o in p.items() if n != "a-big")
    figure(S, f"small shards done of 3, beside the big one filling the cache ({disk})", done)
    figure(S, f"big shard's reason ({disk})", (first["a-big"][1] or "")[:80])
    figure(S, f"files left in the cache after 3 passes ({disk})", len(list(cache.iterdir())))
    return repr(passes)
