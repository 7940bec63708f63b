"""The configured lists, compiled once per content version; an http(s) list downloaded once
per pass (the `run` command's check hands its download to the pass)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shardwatch.pipeline.blocklists import compiled_blocklists
from shardwatch.settings.base import ConfigError
from shardwatch.settings.config import load_settings

pytestmark = pytest.mark.unit

LINES = [hashlib.sha256(f"https://h{i}.test/".encode()).hexdigest() for i in range(3)]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback server publishing tmp_path/published/; the paths it was asked for."""
    root = tmp_path / "published"
    root.mkdir()
    (root / "hashes.txt").write_text("\n".join(LINES) + "\n")
    asked: list[str] = []

    class Counting(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            asked.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_remote_list_is_downloaded_once_per_pass_and_compiled_once(
    tmp_path: Path, served: tuple[str, list[str]]
) -> None:
    base, asked = served
    config = tmp_path / "shardwatch.toml"
    name = f"remote-{tmp_path.name[-20:]}".replace(".", "-")  # one per test: a fresh cache
    config.write_text(f'[blocklists.{name}]\nkind = "url_sha256"\npath = "{base}/hashes.txt"\n')
    settings = load_settings(config)
    (checked,) = compiled_blocklists(settings, hand_over=True)  # `run`'s check
    (in_pass,) = compiled_blocklists(settings)  # the pass: no second download
    assert len(asked) == 1 and in_pass is checked and checked.entries == 3
    (next_pass,) = compiled_blocklists(settings)  # downloaded again: a new file, same content
    assert len(asked) == 2 and next_pass is checked  # not compiled again
    (tmp_path / "published" / "hashes.txt").write_text("\n".join(LINES[:2]) + "\n")
    (replaced,) = compiled_blocklists(settings)
    assert len(asked) == 3 and replaced is not checked and replaced.entries == 2
    assert replaced.version != checked.version


def test_a_local_list_is_compiled_again_only_when_its_content_changes(tmp_path: Path) -> None:
    listed = tmp_path / "hashes.txt"
    listed.write_text("\n".join(LINES) + "\n")
    config = tmp_path / "shardwatch.toml"
    name = f"local-{tmp_path.name[-20:]}".replace(".", "-")
    config.write_text(f'[blocklists.{name}]\nkind = "url_sha256"\npath = "hashes.txt"\n')
    settings = load_settings(config)
    (first,) = compiled_blocklists(settings)
    listed.unlink()
    listed.write_text("\n".join(LINES) + "\n")  # a new file (new inode and time), same bytes
    (again,) = compiled_blocklists(settings)
    assert again is first
    listed.unlink()
    listed.mkdir()
    with pytest.raises(ConfigError, match=f"blocklist '{name}': not a regular file"):
        compiled_blocklists(settings)
