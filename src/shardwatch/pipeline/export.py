"""Export wiring: `export-flagged` as the pipeline builds it from the settings, with the
monitor's download policy limited to the hosts of the configured sources, and the configured
blocklist a `blocklist:<name>` rule names, compiled as the scan compiles it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shardwatch.export.flagged import ExportError, ExportProgress, ExportRequest, ExportSummary
from shardwatch.export.flagged import export_flagged as write_remove_list
from shardwatch.pipeline.blocklists import compiled_blocklists
from shardwatch.pipeline.discovery import download_policy, export_hosts
from shardwatch.settings.base import ConfigError
from shardwatch.settings.config import Settings

if TYPE_CHECKING:
    from shardwatch.scan.blocklists import CompiledBlocklist
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
        blocklist=lambda name: configured_blocklist(settings, name),
    )


def configured_blocklist(settings: Settings, name: str) -> CompiledBlocklist:
    """`[blocklists.<name>]` compiled (only that list; an http(s) one fetched into the cache
    under the download policy: pipeline/blocklists.py). Raises ExportError naming the list
    when it is not configured or cannot be used."""
    spec = settings.blocklists.get(name)
    if spec is None:
        known = ", ".join(sorted(settings.blocklists)) or "none"
        raise ExportError(
            f"no blocklist {name!r} is configured ([blocklists.{name}]); configured: {known}"
        )
    try:
        (compiled,) = compiled_blocklists(settings.model_copy(update={"blocklists": {name: spec}}))
    except ConfigError as exc:
        raise ExportError(str(exc)) from None
    return compiled
