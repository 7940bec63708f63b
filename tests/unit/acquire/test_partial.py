"""Partial downloads: the meta file read back as untrusted input, validators, and the
collection of orphaned partial files (shardwatch.acquire.partial)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from shardwatch.acquire.partial import (
    PartMeta,
    Validator,
    change_validator,
    collect,
    meta_path,
    read_meta,
    resume_validator,
    usage,
    write_meta,
)

pytestmark = pytest.mark.unit

URL = "http://127.0.0.1:8000/data/a.parquet"
OURS = "0123456789abcdef-a.parquet"


def test_meta_round_trip_and_refusals(tmp_path: Path) -> None:
    part = tmp_path / (OURS + ".part")
    meta = PartMeta.of(URL, Validator("etag", '"v1"'), 10)
    write_meta(part, meta)
    assert read_meta(part) == meta
    assert [p.name for p in tmp_path.iterdir()] == [OURS + ".part.meta"]  # no temporary left
    for body in (
        '{"version": 1, "url": "%s", "kind": "etag", "value": "W/\\"v1\\"", "total": 10}',
        '{"version": 1, "url": "%s", "kind": "etag", "value": "\\"a\\nb\\"", "total": 10}',
        '{"version": 1, "url": "%s", "kind": "last-modified", "value": "yesterday", "total": 1}',
        '{"version": 1, "url": "%s", "kind": "etag", "value": "\\"v1\\"", "total": -1}',
        '{"version": 1, "url": "%s", "kind": "etag", "value": "\\"v1\\"", "total": true}',
        '{"version": 2, "url": "%s", "kind": "etag", "value": "\\"v1\\"", "total": 1}',
    ):
        meta_path(part).write_text(body % meta.url_hash)
        assert read_meta(part) is None, body  # weak, forged line, bad date, bad total, version


def test_validators_from_headers() -> None:
    date = "Tue, 14 Nov 2023 22:13:20 GMT"
    assert resume_validator({"ETag": 'W/"x"', "Last-Modified": date}) == Validator(
        "last-modified", date
    )  # a weak ETag may not be sent in If-Range
    assert change_validator({"ETag": 'W/"x"'}) == Validator("etag", 'W/"x"')
    assert resume_validator({"ETag": '"x\x85y"'}) is None  # not visible ASCII
    assert Validator.parse(Validator("last-modified", date).text()) == Validator(
        "last-modified", date
    )
    assert Validator.parse("0" * 40) is None  # a Hub oid is not a validator


def test_collect_removes_orphans_and_old_parts_only(tmp_path: Path) -> None:
    owned, orphan, old = (f"{i:016x}-s{i}.parquet" for i in (1, 2, 3))
    for name in (owned, orphan, old):
        (tmp_path / (name + ".part")).write_bytes(b"x" * 10)
        (tmp_path / (name + ".part.meta")).write_bytes(b"{}")
    (tmp_path / "notes.part").write_bytes(b"mine")  # not a download's name: never touched
    (tmp_path / owned).write_bytes(b"done")  # a complete cache file: not a partial one
    stale = time.time() - 7200
    for suffix in (".part", ".part.meta"):
        os.utime(tmp_path / (old + suffix), (stale, stale))

    removed = collect(tmp_path, {owned, old}, max_age=3600)

    assert sorted(removed) == sorted(
        f"{n}{s}" for n in (orphan, old) for s in (".part", ".part.meta")
    )
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([owned, owned + ".part", owned + ".part.meta", "notes.part"])
    assert collect(tmp_path, None, max_age=3600) == []  # owners unknown: by age only
    assert usage(tmp_path, besides=tmp_path / (owned + ".part")) == 4 + 4  # notes + done
