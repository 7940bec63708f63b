"""Download settings: `[download]`, how shards are fetched into the cache and the limits a
shard's footer and a source's listing must keep."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shardwatch.core.bounded_json import ListingLimits
from shardwatch.settings.base import StrictModel


class DownloadSettings(StrictModel):
    """How shards are fetched into the cache and checked before they are decoded."""

    cache_dir: Path = Field(
        default=Path(".shardwatch/cache"),
        description="Download cache; default `<state_dir>/cache`.",
    )
    keep_cache: bool = Field(
        default=False,
        description="Keep downloaded shards after they are processed (default: delete them; "
        "an interrupted download's partial file is always kept, to resume).",
    )
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    min_speed: int = Field(
        default=1024,
        ge=1,
        description="Bytes/s: a transfer slower than this over `speed_window` seconds (headers "
        "included) is cut off and retried, so a slow drip cannot hold a worker.",
    )
    speed_window: float = Field(default=60.0, gt=0, description="Seconds of the speed check.")
    allow_private_addresses: bool | None = Field(
        default=None,
        description="May downloads connect to loopback or private addresses? Default: only "
        "when a source is itself on one (its URL names such an address or localhost). "
        "Link-local addresses (cloud metadata) are always refused.",
    )
    attempts: int = Field(default=4, ge=1, le=20, description="Tries per download, bounded.")
    backoff: float = Field(default=1.0, gt=0, description="First retry wait; doubles.")
    backoff_cap: float = Field(default=30.0, gt=0, description="Longest wait (Retry-After too).")
    max_bytes: int = Field(default=8 * 1024**3, ge=1, description="Largest shard file.")
    cache_max_bytes: int = Field(
        default=32 * 1024**3,
        ge=1,
        description="Budget of the download cache folder, partial downloads included: a "
        "download that would take the folder over it fails alone (its partial file removed) "
        "and is retried on the next pass.",
    )
    partial_max_age_hours: float = Field(
        default=168.0,
        gt=0,
        description="A partial download older than this, or that no listed shard owns, is "
        "removed at the start of a pass.",
    )
    max_uncompressed_bytes: int = Field(
        default=16 * 1024**3,
        ge=1,
        description="Refuse a shard whose footer declares more uncompressed data than this.",
    )
    max_rows: int = Field(default=2_000_000_000, ge=1, description="Largest declared row count.")
    max_footer_bytes: int = Field(default=64 * 1024**2, ge=1, description="Largest footer.")
    max_columns: int = Field(default=10_000, ge=1, description="Most leaf columns declared.")
    max_schema_elements: int = Field(
        default=40_000,
        ge=1,
        description="Most schema elements (columns and groups), counted before the footer is "
        "parsed.",
    )
    max_nesting_depth: int = Field(
        default=32, ge=1, description="Deepest struct/list/map nesting of a column, plus its leaf."
    )
    max_listing_bytes: int = Field(
        default=16 * 1024**2, ge=1, description="Largest manifest, or Hub tree page."
    )
    max_listing_depth: int = Field(
        default=64, ge=1, le=512, description="Deepest JSON nesting of a manifest or Hub page."
    )
    max_listing_entries: int = Field(
        default=1_000_000,
        ge=1,
        description="Most JSON values in one manifest or Hub page, and most shards one source "
        "lists.",
    )
    max_listing_pages: int = Field(
        default=10_000, ge=1, description="Most Hub tree pages followed in one listing."
    )

    def listing_limits(self) -> ListingLimits:
        """The caps on what one source's listing may hold (bounded_json.py)."""
        return ListingLimits(
            max_bytes=self.max_listing_bytes,
            max_depth=self.max_listing_depth,
            max_entries=self.max_listing_entries,
            max_pages=self.max_listing_pages,
        )
