"""Export wiring: `export-flagged` as the pipeline builds it from the settings, with the
monitor's download policy limited to the hosts of the configured sources."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shardwatch.export.flagged import ExportProgress, ExportRequest, ExportSummary
from shardwatch.export.flagged import export_flagged as write_remove_list
from shardwatch.pipeline.discovery import download_policy, export_hosts
from shardwatch.settings.config import Settings

if TYPE_CHECKING:
    from shardwatch.store.database import StoreEngine


def export_flagged(
    engine: StoreEngine,
    settings: Settings,
    request: ExportRequest,
    *,
    progress: ExportProgress | None = None,
) -> ExportSummary:
    """Write the remove-list of `request` (export/flagged.py); http(s) shards are downloaded
    with the monitor's policy, from the hosts of the configured http and Hugging Face sources
    only."""
    return write_remove_list(
        engine,
        settings,
        request,
        download_policy=lambda: download_policy(settings, export_hosts(settings)),
        progress=progress,
    )
