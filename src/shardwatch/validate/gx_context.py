"""GX context: the file project under `<state_dir>/gx` (its validation results shared; a
process's suites and checkpoints in its own `GxPaths.project`), its stores, the Data Docs
site's place, and the data source every checkpoint reads a feature frame from.

Every GX object is got-or-added, so reruns never fail on "already exists". Run names are
built from numbers and a slug only: they appear in Data Docs paths and pages.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

with warnings.catch_warnings():  # GX imports the deprecated sre_* modules
    warnings.filterwarnings("ignore", "module 'sre_", DeprecationWarning)
    import great_expectations as gx
    from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ValidationResultIdentifier,
    )

DATASOURCE, ASSET, BATCH_DEFINITION = "shardwatch", "features", "whole_table"
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class GxPaths:
    """Where the private GX project and the Data Docs site live."""

    root: Path  # .shardwatch/gx: its validation results are shared by every process
    docs: Path  # .shardwatch/docs
    # This process's own GX project (suites, validation definitions, checkpoints), which
    # no other process rewrites; None: `root` (one process at a time).
    project: Path | None = None

    @property
    def index(self) -> Path:
        return self.docs / "index.html"


def default_paths(base: Path) -> GxPaths:
    return GxPaths(root=base / "gx", docs=base / "docs")


@contextmanager
def quiet_gx() -> Iterator[None]:
    """GX logs parse errors at ERROR level before raising; we report them ourselves."""
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _store(base: Path | str, **extra: Any) -> dict[str, Any]:
    return {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(base), **extra}


def _project_config(paths: GxPaths, keep_results: int) -> Any:
    return DataContextConfig(
        config_version=4,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        stores={
            "expectations_store": {
                "class_name": "ExpectationsStore",
                "store_backend": _store("expectations/", suppress_store_backend_id=True),
            },
            "validation_results_store": {
                "class_name": "ValidationResultsStore",
                "store_backend": _store(paths.root / "uncommitted" / "validations"),
            },
            "checkpoint_store": {
                "class_name": "CheckpointStore",
                "store_backend": _store("checkpoints/", suppress_store_backend_id=True),
            },
            "validation_definition_store": {
                "class_name": "ValidationDefinitionStore",
                "store_backend": _store("validation_definitions/"),
            },
        },
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        checkpoint_store_name="checkpoint_store",
        data_docs_sites={
            "local_site": {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": _store(paths.docs.resolve()),
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": keep_results,
                },
            }
        },
    )


def open_context(paths: GxPaths, keep_results: int) -> Any:
    """The file context of the private project at `paths.root` (`paths` resolved), whose
    Data Docs site at `paths.docs` keeps the newest `keep_results` results."""
    with quiet_gx(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return gx.get_context(
            mode="file",
            project_config=_project_config(paths, keep_results),
            context_root_dir=str(paths.project or paths.root),
        )


def batch_definition(context: Any) -> Any:
    """The whole-dataframe batch definition of the pandas data source (got or added)."""
    source: Any
    try:
        source = context.data_sources.get(DATASOURCE)
    except KeyError:
        source = context.data_sources.add_pandas(DATASOURCE)
    try:
        asset = source.get_asset(ASSET)
    except LookupError:
        asset = source.add_dataframe_asset(ASSET)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)


def run_name(dataset: str, shard_id: int, version: int) -> str:
    """A run name made only of safe characters: it appears in Data Docs paths and pages."""
    slug = _SLUG.sub("_", dataset).strip("_")[:60] or "dataset"
    return f"{slug}.shard-{shard_id}.v{version}"


def result_identifier(key: tuple[str, ...]) -> Any:
    """A stored result's identifier from its key (`ShardValidation.result_keys`)."""
    from_tuple: Any = ValidationResultIdentifier.from_tuple
    return from_tuple(key)
