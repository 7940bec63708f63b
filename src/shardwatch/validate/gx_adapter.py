"""GX adapter: run a suite's checkpoint on a shard's feature table and keep Data Docs.

Everything Great Expectations stays in the `validate` package: callers pass Arrow feature
tables and suite names and get `validation.ShardValidation` back. `GxValidator` (here)
implements the `ShardValidator` protocol; the rest of the package:

* `suites.py`: suites are read from `<validation.suites_dir>/<name>.json` when the user has
  one, else from the packaged defaults (expectations/ in the repository,
  `shardwatch.expectations` when installed); GX's own format, edited by hand, checked
  strictly, because GX silently drops an expectation it cannot parse. They are then pushed
  into a private GX store under `<state_dir>/gx`, so GX never rewrites the suite files.
* `gx_context.py`: the private project; every GX object is got-or-added (or
  add_or_update'd), so reruns never fail.
* `results.py`: GX results as domain `Check`s; `merge.py`: a shard's checks from its parts'.
* `data_docs.py`: the site, rendered after a shard's results commit, and pruned.
* Nothing untrusted reaches a rendered page: the feature table holds no caption, URL or raw
  tag (see features.py), text ids become integer codes here, run names are built from
  numbers and a slug, and the result format keeps at most a few (safe) unexpected values.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shardwatch.core.validation import Check, ShardValidation, could_not_run
from shardwatch.scan.features import ID
from shardwatch.validate.assemble import suite_result
from shardwatch.validate.compact import widen
from shardwatch.validate.data_docs import DataDocs
from shardwatch.validate.docs_site import scrub_exceptions
from shardwatch.validate.gx_context import (
    GxPaths,
    batch_definition,
    default_paths,
    open_context,
    quiet_gx,
    run_name,
)
from shardwatch.validate.gx_speed import tune
from shardwatch.validate.memory import release_memory
from shardwatch.validate.merge import merge_checks, weighed
from shardwatch.validate.not_run import store_not_run
from shardwatch.validate.plan import group_table, gx_order, plan
from shardwatch.validate.results import to_check
from shardwatch.validate.suites import (
    SuiteError,
    check_suites,
    find_suite,
    load_suite,
    suite_path,
    with_flag_checks,
)

with warnings.catch_warnings():  # GX imports the deprecated sre_* modules
    warnings.filterwarnings("ignore", "module 'sre_", DeprecationWarning)
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.validator.v1_validator import Validator

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DEFAULT_PARTIAL_UNEXPECTED",
    "GxPaths",
    "GxValidator",
    "SuiteError",
    "check_suites",
    "default_paths",
    "feature_frame",
    "find_suite",
    "load_suite",
    "merge_checks",
    "run_name",
    "suite_path",
]

tune()  # GX's batch fingerprint and decimal scan, which no check needs (gx_speed.py)
if pa.default_memory_pool().backend_name == "jemalloc":
    pa.jemalloc_set_decay_ms(0)
# At most this many unexpected values per check reach a page (they are codes, numbers, ids).
DEFAULT_PARTIAL_UNEXPECTED = 10
# GX's pandas engine needs about 4x the frame at its peak; larger shards are validated in
# parts of at most this many rows (partitioned by id, so uniqueness still merges exactly).
DEFAULT_MAX_ROWS = 4_000_000


def coded_ids(features: pa.Table) -> pa.Table:
    """The table with its text ids replaced by integer codes (equal ids, equal codes)."""
    if ID in features.schema.names and pa.types.is_large_string(features.schema.field(ID).type):
        ids = features.column(ID).combine_chunks()
        codes = pc.dictionary_encode(ids).indices.cast(pa.int64())
        codes = pc.if_else(ids.is_null(), pa.scalar(None, pa.int64()), codes)
        features = features.set_column(features.schema.get_field_index(ID), ID, codes)
    return features


def feature_frame(features: pa.Table) -> Any:
    """The whole pandas frame GX would validate in one run: categories stay categorical,
    text ids become codes (the validator itself converts only each group's narrow frame).

    Arrow buffers are released column by column while converting, to keep the peak low.
    """
    features = coded_ids(features)
    pool = pa.default_memory_pool()
    pool.release_unused()
    frame = features.to_pandas(self_destruct=True, split_blocks=True)
    del features
    pool.release_unused()  # the table's buffers, freed column by column while converting
    return frame


class GxValidator:
    """One GX file context with a private store; validates feature tables, keeps the docs."""

    def __init__(
        self,
        paths: GxPaths,
        suites_dir: Path | None,
        suite: str,
        *,
        keep_results: int = 500,
        partial_unexpected: int = DEFAULT_PARTIAL_UNEXPECTED,
        max_rows: int = DEFAULT_MAX_ROWS,
        flag_checks: tuple[str, ...] = (),
    ) -> None:
        self.max_rows = max_rows
        self.flag_checks = flag_checks  # per-row flag columns no row may set (suites.py)
        self.suites_dir = suites_dir
        self.suite = suite
        self.keep_results = keep_results
        self.result_format = {  # BASIC: counts and a few sample values, no index lists
            "result_format": "BASIC",
            "partial_unexpected_count": partial_unexpected,
        }
        project = None if paths.project is None else paths.project.resolve()
        paths = GxPaths(paths.root.resolve(), paths.docs.resolve(), project)
        self.paths = paths
        (project or paths.root).mkdir(parents=True, exist_ok=True)
        paths.docs.mkdir(parents=True, exist_ok=True)
        self.context: Any = open_context(paths, keep_results)
        self._checkpoints: dict[str, Any] = {}
        self._expectations: dict[str, list[dict[str, Any]]] = {}  # each suite's, as in its file
        self.site = DataDocs(self.context, paths, suite, keep_results)

    # -- objects, got or added ---------------------------------------------------------------
    def checkpoint(self, suite_name: str) -> Any:
        """The suite's checkpoint, with the suite file's current content (add_or_update) and
        a check per flag column (`with_flag_checks`: the configured blocklists')."""
        if suite_name not in self._checkpoints:
            found = find_suite(self.suites_dir, suite_name)
            try:
                raw = with_flag_checks(load_suite(found.path), self.flag_checks)
            except SuiteError as exc:  # shown in alerts and Data Docs: no local path
                raise SuiteError(str(exc).replace(str(found.path), found.path.name)) from None
            suite = self.context.suites.add_or_update(ExpectationSuite(**raw))
            self._expectations[suite_name] = list(raw["expectations"])
            definition = self.context.validation_definitions.add_or_update(
                gx.ValidationDefinition(
                    name=suite_name, data=batch_definition(self.context), suite=suite
                )
            )
            self._checkpoints[suite_name] = self.context.checkpoints.add_or_update(
                gx.Checkpoint(
                    name=f"shardwatch-{suite_name}",
                    validation_definitions=[definition],
                    actions=[],  # Data Docs are built after the shard's results commit
                    result_format=self.result_format,
                )
            )
        return self._checkpoints[suite_name]

    # -- validation ---------------------------------------------------------------------------
    def validate(
        self, features: pa.Table, dataset: str, shard_id: int, version: int
    ) -> ShardValidation:
        """Run the suite's checkpoint on one shard's features; results are stored in GX.

        A shard above `max_rows` is validated in parts, split by a hash of the id (equal ids
        share a part), and the parts' checks are merged exactly (see `merge_checks`); each
        part has its own Data Docs page. The table must not be used afterwards.
        A suite that is missing or unusable, or GX failing, makes a validation that could not
        run (`ShardValidation.not_run`), with a Data Docs page saying why when GX can still
        store a result.
        """
        name = run_name(dataset, shard_id, version)
        try:
            return self._validate(features, name)
        except Exception as exc:  # GX failing on one shard must not stop the run
            del features
            return self._not_run(name, exc)

    def _not_run(self, name: str, exc: Exception) -> ShardValidation:
        validation = could_not_run(self.suite, name, exc)
        try:
            key = store_not_run(self.context, self.suite, name, validation.not_run or "")
        except Exception:  # not even a result can be stored: no page
            return validation
        return self._validation(name, validation.checks, [key])

    def _validate(self, features: pa.Table, name: str) -> ShardValidation:
        release_memory()  # what the scan freed, before the frames are built
        parts = -(-features.num_rows // self.max_rows)
        if parts <= 1:
            key, checks = self._run(features, name, weigh=False)
            return self._validation(name, checks, [key])
        labels = _partition(features, parts)
        keys, per_part = [], []
        for part in range(parts):
            subset = features.filter(pc.equal(labels, part))
            key, checks = self._run(subset, f"{name}.part-{part + 1}-of-{parts}", weigh=True)
            del subset
            keys.append(key)
            per_part.append(checks)
        return self._validation(name, merge_checks(per_part), keys)

    def _run(self, features: pa.Table, name: str, *, weigh: bool) -> tuple[Any, tuple[Check, ...]]:
        """One run of the suite, stored as one GX result (one Data Docs page). With `weigh`,
        mean checks also carry the part's non-null count of their column (and whether it is
        boolean), so that parts can be merged.

        The suite is run group by group (plan.py), each group on the narrow frame that has
        exactly the rows and columns its expectations read, and the groups' results are put
        back in the suite's order in one suite result, as one checkpoint run would store it.
        """
        checkpoint = self.checkpoint(self.suite)
        [definition] = checkpoint.validation_definitions
        suite = definition.suite
        weights = {
            field.name: (
                features.num_rows - features.column(field.name).null_count,
                pa.types.is_boolean(field.type),
            )
            for field in features.schema
        }
        table = coded_ids(features)
        del features
        run_id = RunIdentifier(run_name=name)
        configs = suite.expectation_configurations
        results: list[Any] = [None] * len(configs)
        meta: dict[str, Any] = {}
        batch_id: Any = None
        for group in plan(self._expectations[self.suite], table.schema):
            sub, rows = group_table(table, group)
            frame = sub.to_pandas(split_blocks=True)
            del sub
            if rows is not None:
                frame.index = pd.Index(rows)
            part = ExpectationSuite(
                name=suite.name,
                expectations=[configs[i] for i in group.positions],
                suite_parameters=suite.suite_parameters,
            )
            validator = Validator(
                batch_definition=definition.batch_definition,
                batch_parameters={"dataframe": frame},
                result_format=self.result_format,
            )
            with quiet_gx():
                found = validator.validate_expectation_suite(part)
            del frame, validator
            self._forget_batch()
            release_memory()
            for position, result in zip(group.positions, found.results, strict=True):
                results[position] = result
            meta = meta or dict(found.meta)
            batch_id = batch_id or found.batch_id
        del table
        results = [results[i] for i in gx_order(self._expectations[self.suite], results)]
        assembled = suite_result(suite, results, meta, batch_id, definition, checkpoint, run_id)
        identifier = ValidationResultIdentifier(
            batch_identifier=batch_id,
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
            run_id=run_id,
        )
        scrub_exceptions(assembled.results)  # no traceback or local path is kept
        self.context.validation_results_store.set(identifier, assembled)
        checks = tuple(to_check(i, r) for i, r in enumerate(assembled.results))
        if weigh:
            checks = tuple(weighed(c, weights) for c in checks)
        return identifier, checks

    def _forget_batch(self) -> None:
        """Drop the frame and the per-row metric results GX caches after a run.

        GX keeps both reachable from the data source's execution engine until the next run
        (about twice the frame), which would stack on the next part's or shard's peak. The
        attributes are private to GX 1.x, so they are cleared only if present.
        """
        for definition in self.checkpoint(self.suite).validation_definitions:
            source = definition.data.data_asset.datasource
            engine = getattr(source, "_execution_engine", None)
            cache = getattr(engine, "_metric_cache", None)
            if cache is not None and hasattr(cache, "clear"):
                cache.clear()
            manager = getattr(engine, "batch_manager", None)
            if manager is not None and hasattr(manager, "reset_batch_cache"):
                manager.reset_batch_cache()  # the Batch objects
                data = getattr(manager, "_batch_data_cache", None)
                if isinstance(data, dict):
                    data.clear()  # the frames themselves
                    manager._active_batch_data_id = None

    def _validation(self, name: str, checks: tuple[Check, ...], keys: list[Any]) -> ShardValidation:
        pages = tuple(str(self.site.page(k)) for k in keys)
        return ShardValidation(
            suite=self.suite,
            run_name=name,
            checks=checks,
            docs_page=pages[0],
            result_keys=tuple(tuple(k.to_tuple()) for k in keys),
            pages=pages,
        )

    # -- Data Docs (data_docs.py) -------------------------------------------------------------
    def publish(self, validation: ShardValidation) -> None:
        """Render the shard's page(s) and the index (after the shard's results committed)."""
        self.site.publish(validation)

    def discard(self, validation: ShardValidation) -> None:
        """Forget results whose shard was not stored (its lease was lost)."""
        self.site.discard(validation)

    def prune(self) -> int:
        """Keep the newest `keep_results` results (and pages); returns how many were removed."""
        return self.site.prune()

    def rebuild_index(self) -> Path:
        """Re-render index.html only (e.g. after pruning), not every stored page."""
        return self.site.rebuild_index()

    def build_docs(self, *, clean: bool = False) -> Path:
        """(Re)build the whole site from the stored results; returns index.html's path."""
        return self.site.build(clean=clean)


def _partition(features: pa.Table, parts: int) -> pa.Array:
    """A part number per row: by a hash of the id when there is one (duplicates of an id
    land in the same part), else by row position."""
    if ID in features.schema.names:
        import polars as pl

        ids: Any = pl.from_arrow(widen(features.select([ID])).column(ID))
        hashes = ids.hash(seed=0x5A1D)
        return (hashes % parts).cast(pl.Int32).to_arrow()  # alive while the parts run
    return pa.array(np.arange(features.num_rows, dtype=np.int64) * parts // features.num_rows)
