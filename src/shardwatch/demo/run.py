"""Demo: a small synthetic LAION-400M-like dataset (reused when present), with a corrupt
shard and a manifest, served over loopback HTTP for the monitor flow."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from shardwatch.demo.synth import write_shard

DEFAULT_DEMO_DIR = Path(".shardwatch/demo")
DEMO_PORT = 18_931  # fixed when free, so shard URLs (their identity) stay the same across runs


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


def corrupt_shard(out: Path, source: Path) -> Path:
    """A shard cut short in transit: the first 60% of a real one (no footer), so the
    monitor must refuse it before decoding and carry on."""
    path = out / "part-corrupt.parquet"
    if not path.is_file():
        data = source.read_bytes()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data[: len(data) * 6 // 10])
        tmp.replace(path)
    return path


def write_manifest(out: Path, paths: list[Path]) -> Path:
    """`manifest.json` beside the shards: relative URLs with size and SHA-256, so the same
    manifest works on any host and port."""
    entries = []
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entries.append({"url": path.name, "size": path.stat().st_size, "sha256": digest})
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps({"shards": entries}, indent=1) + "\n", encoding="utf-8")
    return manifest


@contextmanager
def serve_folder(folder: Path, port: int = DEMO_PORT) -> Iterator[str]:
    """Serve `folder` over HTTP on loopback (`port`, else any free one); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:  # the port is taken: any free one
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def demo_config(path: Path, manifest_url: str, state_dir: Path) -> Path:
    """The demo's shardwatch.toml: the loopback HTTP source, console and file alerts
    (`<state_dir>/alerts.jsonl`), everything written below `state_dir`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'dataset = "demo"\nstate_dir = {json.dumps(str(state_dir))}\n\n'
        f'[sources.demo]\ntype = "http"\nmanifest = "{manifest_url}"\n\n'
        '[alerts.channels.console]\ntype = "console"\n\n'
        '[alerts.channels.file]\ntype = "file"\n',
        encoding="utf-8",
    )
    return path
