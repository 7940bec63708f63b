"""Validation settings: `[validation]`, Great Expectations checks of each shard."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shardwatch.settings.base import StrictModel


class ValidationSettings(StrictModel):
    """Great Expectations validation of each shard's feature table, and its Data Docs."""

    enabled: bool = Field(default=True, description="Validate every ingested shard.")
    suite: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Suite name: `<suite>.json` in suites_dir, else the packaged default "
        "(default: the profile's name).",
    )
    suites_dir: Path | None = Field(
        default=None,
        description="Your folder of GX suite JSON files; a suite found there overrides the "
        "packaged default of the same name (default: the packaged suites only).",
    )
    gx_dir: Path = Field(
        default=Path(".shardwatch/gx"),
        description="Private GX project (stores, checkpoints); default `<state_dir>/gx`.",
    )
    docs_dir: Path = Field(
        default=Path(".shardwatch/docs"),
        description="Where the Data Docs site is built; default `<state_dir>/docs`.",
    )
    keep_results: int = Field(
        default=500, ge=1, description="Newest validation results kept in Data Docs; older pruned."
    )
    max_rows: int = Field(
        default=4_000_000,
        ge=1,
        description="Rows per GX run: larger shards are validated in parts (split by id) and "
        "the checks merged exactly, to bound memory.",
    )
    partial_unexpected: int = Field(
        default=10,
        ge=0,
        le=100,
        description="Unexpected values sampled per check (ids, codes and numbers only).",
    )
