"""Export wiring: `export-flagged` as the pipeline builds it from the settings, with the
monitor's download policy limited to the hosts of the configured sources, and the configured
blocklist a `blocklist:<name>` rule names, compiled."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shardwatch.acquire.download import download
from shardwatch.acquire.policy import DownloadError, origin_entry
from shardwatch.export.flagged import ExportError, ExportProgress, ExportRequest, ExportSummary
from shardwatch.export.flagged import export_flagged as write_remove_list
from shardwatch.pipeline.discovery import download_policy, export_hosts
from shardwatch.scan.blocklists import BlocklistError, CompiledBlocklist, compile_blocklist
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
        blocklist=lambda name: configured_blocklist(settings, name),
    )


def configured_blocklist(settings: Settings, name: str) -> CompiledBlocklist:
    """`[blocklists.<name>]` compiled; an http(s) list is downloaded (from its own host, under
    the download policy) to a temporary folder in the download cache, then deleted. Raises
    ExportError naming the list when it is not configured or cannot be used."""
    spec = settings.blocklists.get(name)
    if spec is None:
        known = ", ".join(sorted(settings.blocklists)) or "none"
        raise ExportError(
            f"no blocklist {name!r} is configured ([blocklists.{name}]); configured: {known}"
        )
    try:
        if not spec.remote:
            return compile_blocklist(name, spec.kind, Path(spec.path), spec.severity)
        cache = settings.download.cache_dir
        cache.mkdir(parents=True, exist_ok=True)
        policy = download_policy(settings, frozenset({origin_entry(spec.path)}))
        suffix = "".join(PurePosixPath(urlsplit(spec.path).path).suffixes[-2:])  # .csv.gz
        suffix = suffix if re.fullmatch(r"[A-Za-z0-9.]{0,20}", suffix) else ""
        with tempfile.TemporaryDirectory(dir=cache, prefix="blocklist-") as folder:
            got = download(spec.path, Path(folder) / f"list{suffix}", policy=policy)
            return compile_blocklist(name, spec.kind, got.path, spec.severity)
    except BlocklistError as exc:
        raise ExportError(str(exc)) from None
    except DownloadError as exc:
        raise ExportError(f"blocklist {name!r}: download failed: {exc.reason}") from None
    except OSError as exc:
        raise ExportError(f"blocklist {name!r}: {exc.strerror or type(exc).__name__}") from None
