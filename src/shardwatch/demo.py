"""Demo: write a small synthetic LAION-400M-like dataset (reused when present) to scan."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from shardwatch.synth import write_shard

DEFAULT_DEMO_DIR = Path(".shardwatch/demo")


def demo_shards(out: Path, shards: int = 3, rows: int = 200_000) -> list[Path]:
    """`shards` full LAION-like parts plus one URL+TEXT-only part (as old LAION samples are).

    Files already present are reused, so a rerun costs nothing.
    """
    paths = []
    for i in range(shards):
        path = out / f"part-{i:05d}.parquet"
        if not path.is_file():
            write_shard(path, rows, seed=1000 + i, row_group_size=max(1, rows // 2))
        paths.append(path)
    url_text = out / f"part-{shards:05d}-url-text-only.parquet"
    if not url_text.is_file():
        full = out / f".part-{shards:05d}-full.parquet"
        write_shard(full, max(1, rows // 4), seed=1000 + shards)
        tmp = url_text.with_name(url_text.name + ".tmp")
        pq.write_table(pq.read_table(full, columns=["URL", "TEXT"]), tmp)
        tmp.replace(url_text)
        full.unlink()
    paths.append(url_text)
    return paths
