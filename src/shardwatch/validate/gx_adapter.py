"""GX adapter: run a suite's checkpoint on a shard's feature table and keep Data Docs.

Everything Great Expectations stays in this module: callers pass Arrow feature tables and
suite names and get `validation.ShardValidation` back.

* Suites are read from `<validation.suites_dir>/<name>.json` when the user has one, else
  from the packaged defaults (expectations/ in the repository, `shardwatch.expectations` when
  installed); GX's own format, edited by hand, checked strictly, because GX silently drops
  an expectation it cannot parse. They are then pushed into a private GX store under
  `<state_dir>/gx`, so GX never rewrites the suite files.
* Every GX object is got-or-added (or add_or_update'd), so reruns never fail.
* Nothing untrusted reaches a rendered page: the feature table holds no caption, URL or raw
  tag (see features.py), text ids become integer codes here, run names are built from
  numbers and a slug, and the result format keeps at most a few (safe) unexpected values.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shardwatch.core.validation import (
    Check,
    ShardValidation,
    Status,
    ValidationCannotRun,
    could_not_run,
)
from shardwatch.scan.features import ID
from shardwatch.settings.resources import SuiteLocation, default_suites_dir, locate_suite
from shardwatch.validate.docs_site import localize_pages, scrub_exceptions

with warnings.catch_warnings():  # GX imports the deprecated sre_* modules
    warnings.filterwarnings("ignore", "module 'sre_", DeprecationWarning)
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.expectations.registry import get_expectation_impl

if pa.default_memory_pool().backend_name == "jemalloc":
    pa.jemalloc_set_decay_ms(0)
DATASOURCE, ASSET, BATCH_DEFINITION = "shardwatch", "features", "whole_table"
# At most this many unexpected values per check reach a page (they are codes, numbers, ids).
DEFAULT_PARTIAL_UNEXPECTED = 10
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")
_SUITE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# GX's pandas engine needs about 4x the frame at its peak; larger shards are validated in
# parts of at most this many rows (partitioned by id, so uniqueness still merges exactly).
DEFAULT_MAX_ROWS = 4_000_000
_UNSAFE = re.compile(r"<[A-Za-z/!?]")  # what could open an HTML tag
_RESULT_KEYS = (
    "observed_value",
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
)
_THRESHOLD_KEYS = (
    "min_value",
    "max_value",
    "strict_min",
    "strict_max",
    "mostly",
    "value_set",
    "column_set",
    "exact_match",
)


class SuiteError(ValidationCannotRun):
    """A suite file is missing or unusable; the message names the file and the problem."""


# ------------------------------------------------------------------------------- suites
def suite_path(suites_dir: Path, name: str) -> Path:
    """`<suites_dir>/<name>.json`; the name must be a plain slug (it names GX objects and
    Data Docs paths, and GX writes it into index.html unescaped)."""
    if not _SUITE_NAME.fullmatch(name):
        raise SuiteError(f"suite name {name!r}: use only letters, digits and ._- (1-100)")
    return suites_dir / f"{name}.json"


def find_suite(suites_dir: Path | None, name: str) -> SuiteLocation:
    """The suite `name`: `<suites_dir>/<name>.json` if it exists, else the packaged default
    (raises SuiteError when neither exists: one line naming no local path, as it may reach
    alerts)."""
    suite_path(Path(), name)  # the name must be a plain slug
    found = locate_suite(name, suites_dir)
    if not found.path.is_file():
        defaults = sorted(p.stem for p in default_suites_dir().glob("*.json"))
        own = f"no {name}.json in validation.suites_dir, and " if suites_dir is not None else ""
        raise SuiteError(
            f"suite {name!r} not found: {own}no packaged default of that name "
            f"(defaults: {', '.join(defaults)}; set validation.suites_dir to your own)"
        )
    return found


def load_suite(path: Path) -> dict[str, Any]:
    """Read and strictly check one suite file (raises SuiteError naming file and problem)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such suite file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a suite is a JSON object with 'name' and 'expectations'")
    if raw.get("name") != path.stem:
        raise SuiteError(
            f"{path}: 'name' must be {path.stem!r} (the file name), not {raw.get('name')!r}"
        )
    expectations = raw.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise SuiteError(f"{path}: 'expectations' must be a non-empty list")
    unsafe = _unsafe_text(raw)
    if unsafe:
        raise SuiteError(
            f"{path}: {unsafe} looks like HTML markup ('<' before a letter, /, ! or ?); "
            "Data Docs would render it unescaped"
        )
    for i, e in enumerate(expectations, start=1):
        where = f"{path}: expectation {i}"
        if not isinstance(e, dict) or not isinstance(e.get("type"), str):
            raise SuiteError(f"{where}: needs a 'type' string and a 'kwargs' object")
        kwargs = e.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise SuiteError(f"{where} ({e['type']}): 'kwargs' must be an object")
        try:
            impl = get_expectation_impl(e["type"])
        except Exception:
            raise SuiteError(f"{where}: unknown expectation type {e['type']!r}") from None
        try:
            with _quiet_gx():
                impl(**kwargs, meta=e.get("meta"))
        except Exception as exc:
            raise SuiteError(f"{where} ({e['type']}): invalid kwargs: {_one_line(exc)}") from None
    try:
        with _quiet_gx():
            suite = ExpectationSuite(**raw)
    except Exception as exc:
        raise SuiteError(f"{path}: not a GX suite: {_one_line(exc)}") from None
    if len(suite.expectations) != len(expectations):  # GX drops what it cannot parse
        raise SuiteError(
            f"{path}: GX accepted {len(suite.expectations)} of {len(expectations)} expectations"
        )
    return raw


def check_suites(suites_dir: Path) -> tuple[list[Path], list[str]]:
    """Check every `*.json` suite in `suites_dir`: (files checked, problems found)."""
    if not suites_dir.is_dir():
        return [], [f"{suites_dir}: no such suites directory"]
    files = sorted(suites_dir.glob("*.json"))
    problems = []
    for path in files:
        try:
            load_suite(path)
        except SuiteError as exc:
            problems.append(str(exc))
    if not files:
        problems.append(f"{suites_dir}: holds no *.json suite files")
    return files, problems


def _unsafe_text(value: Any, where: str = "a value") -> str | None:
    if isinstance(value, str):
        return where if _UNSAFE.search(value) else None
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _unsafe_text(str(k), f"key {k!r}") or _unsafe_text(v, f"{k!r}")
            if found:
                return found
    if isinstance(value, list):
        for v in value:
            found = _unsafe_text(v, where)
            if found:
                return found
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


@contextmanager
def _quiet_gx() -> Iterator[None]:
    """GX logs parse errors at ERROR level before raising; we report them ourselves."""
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


# ------------------------------------------------------------------------------ features
def feature_frame(features: pa.Table) -> Any:
    """The pandas frame GX validates: categories stay categorical, text ids become codes.

    Arrow buffers are released column by column while converting, to keep the peak low.
    """
    if ID in features.schema.names and pa.types.is_large_string(features.schema.field(ID).type):
        ids = features.column(ID).combine_chunks()
        codes = pc.dictionary_encode(ids).indices.cast(pa.int64())  # equal ids, equal codes
        codes = pc.if_else(ids.is_null(), pa.scalar(None, pa.int64()), codes)
        features = features.set_column(features.schema.get_field_index(ID), ID, codes)
    pool = pa.default_memory_pool()
    pool.release_unused()
    frame = features.to_pandas(self_destruct=True, split_blocks=True)
    del features
    pool.release_unused()  # the table's buffers, freed column by column while converting
    return frame


# --------------------------------------------------------------------------------- GX
@dataclass(frozen=True)
class GxPaths:
    """Where the private GX project and the Data Docs site live."""

    root: Path  # .shardwatch/gx
    docs: Path  # .shardwatch/docs

    @property
    def index(self) -> Path:
        return self.docs / "index.html"


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
                "store_backend": _store("uncommitted/validations/"),
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


def run_name(dataset: str, shard_id: int, version: int) -> str:
    """A run name made only of safe characters: it appears in Data Docs paths and pages."""
    slug = _SLUG.sub("_", dataset).strip("_")[:60] or "dataset"
    return f"{slug}.shard-{shard_id}.v{version}"


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
    ) -> None:
        self.max_rows = max_rows
        self.suites_dir = suites_dir
        self.suite = suite
        self.keep_results = keep_results
        self.result_format = {  # BASIC: counts and a few sample values, no index lists
            "result_format": "BASIC",
            "partial_unexpected_count": partial_unexpected,
        }
        paths = GxPaths(paths.root.resolve(), paths.docs.resolve())
        self.paths = paths
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.docs.mkdir(parents=True, exist_ok=True)
        with _quiet_gx(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.context: Any = gx.get_context(
                mode="file",
                project_config=_project_config(paths, keep_results),
                context_root_dir=str(paths.root),
            )
        self._checkpoints: dict[str, Any] = {}

    # -- objects, got or added ---------------------------------------------------------------
    def _batch_definition(self) -> Any:
        source: Any
        try:
            source = self.context.data_sources.get(DATASOURCE)
        except KeyError:
            source = self.context.data_sources.add_pandas(DATASOURCE)
        try:
            asset = source.get_asset(ASSET)
        except LookupError:
            asset = source.add_dataframe_asset(ASSET)
        try:
            return asset.get_batch_definition(BATCH_DEFINITION)
        except KeyError:
            return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)

    def checkpoint(self, suite_name: str) -> Any:
        """The suite's checkpoint, with the suite file's current content (add_or_update)."""
        if suite_name not in self._checkpoints:
            found = find_suite(self.suites_dir, suite_name)
            try:
                raw = load_suite(found.path)
            except SuiteError as exc:  # shown in alerts and Data Docs: no local path
                raise SuiteError(str(exc).replace(str(found.path), found.path.name)) from None
            suite = self.context.suites.add_or_update(ExpectationSuite(**raw))
            definition = self.context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=suite_name, data=self._batch_definition(), suite=suite)
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
        from shardwatch.validate.not_run import store_not_run

        validation = could_not_run(self.suite, name, exc)
        try:
            key = store_not_run(self.context, self.suite, name, validation.not_run or "")
        except Exception:  # not even a result can be stored: no page
            return validation
        return self._validation(name, validation.checks, [key])

    def _validate(self, features: pa.Table, name: str) -> ShardValidation:
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
        """One checkpoint run. With `weigh`, mean checks also carry the part's non-null
        count of their column (and whether it is boolean), so that parts can be merged."""
        checkpoint = self.checkpoint(self.suite)
        weights = {
            field.name: (
                features.num_rows - features.column(field.name).null_count,
                pa.types.is_boolean(field.type),
            )
            for field in features.schema
        }
        frame = feature_frame(features)
        del features
        with _quiet_gx():
            result = checkpoint.run(
                batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=name)
            )
        del frame
        self._forget_batch()
        [(identifier, suite_result)] = result.run_results.items()
        if scrub_exceptions(suite_result.results):  # no traceback or local path is kept
            self.context.validation_results_store.set(identifier, suite_result)
        checks = tuple(_check(i, r) for i, r in enumerate(suite_result.results))
        if weigh:
            checks = tuple(_weighed(c, weights) for c in checks)
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
        pages = tuple(str(self._page(k)) for k in keys)
        return ShardValidation(
            suite=self.suite,
            run_name=name,
            checks=checks,
            docs_page=pages[0],
            result_keys=tuple(tuple(k.to_tuple()) for k in keys),
            pages=pages,
        )

    def _page(self, identifier: Any) -> Path:
        suite = identifier.expectation_suite_identifier.name
        run = identifier.run_id
        page: Path = (
            self.paths.docs
            / "validations"
            / suite
            / (run.run_name or "__none__")
            / run.run_time.strftime("%Y%m%dT%H%M%S.%fZ")
            / f"{identifier.batch_identifier}.html"
        )
        return page

    def publish(self, validation: ShardValidation) -> None:
        """Render the shard's page(s) and the index (after the shard's results committed)."""
        if validation.result_keys:
            identifiers = [_identifier(k) for k in validation.result_keys]
            reasons = {c.position: c.reason for c in validation.checks if c.reason}
            store: Any = self.context.validation_results_store
            for identifier in identifiers:  # the page shows shardwatch's reason (e.g. drift)
                result = store.get(identifier)
                if scrub_exceptions(result.results, reasons):
                    store.set(identifier, result)
            with _quiet_gx():
                self.context.build_data_docs(
                    resource_identifiers=[*identifiers, ExpectationSuiteIdentifier(self.suite)]
                )
            self._localize([self._page(i) for i in identifiers])

    def discard(self, validation: ShardValidation) -> None:
        """Forget results whose shard was not stored (its lease was lost)."""
        for key in validation.result_keys:
            self.context.validation_results_store.remove_key(_identifier(key))

    def prune(self) -> int:
        """Keep the newest `keep_results` results (and pages); returns how many were removed."""
        store: Any = self.context.validation_results_store
        keys: list[Any] = sorted(store.list_keys(), key=lambda k: k.run_id.run_time, reverse=True)
        old = keys[self.keep_results :]
        for key in old:
            store.remove_key(key)
            page = self._page(key)
            page.unlink(missing_ok=True)
            _remove_empty_parents(page.parent, self.paths.docs / "validations")
        return len(old)

    def rebuild_index(self) -> Path:
        """Re-render index.html only (e.g. after pruning), not every stored page."""
        store: Any = self.context.validation_results_store
        keys: list[Any] = sorted(store.list_keys(), key=lambda k: k.run_id.run_time)
        with _quiet_gx():
            self.context.build_data_docs(resource_identifiers=keys[-1:] or None)
        self._localize([self._page(k) for k in keys[-1:]])
        return self.paths.index

    def build_docs(self, *, clean: bool = False) -> Path:
        """(Re)build the whole site from the stored results; returns index.html's path."""
        if clean:
            shutil.rmtree(self.paths.docs / "validations", ignore_errors=True)
        with _quiet_gx():
            self.context.build_data_docs()
        self._localize(self.paths.docs.rglob("*.html"))
        return self.paths.index

    def _localize(self, pages: Iterable[Path]) -> None:
        """Rewrite what GX just wrote to load nothing from outside the site (docs_site.py):
        the given pages, the index and the suite pages."""
        docs = self.paths.docs
        localize_pages(docs, [docs / "index.html", *docs.glob("expectations/**/*.html"), *pages])


def _partition(features: pa.Table, parts: int) -> pa.Array:
    """A part number per row: by a hash of the id when there is one (duplicates of an id
    land in the same part), else by row position."""
    if ID in features.schema.names:
        import polars as pl

        ids: Any = pl.from_arrow(features.column(ID))
        hashes = ids.hash(seed=0x5A1D)
        return (hashes % parts).cast(pl.Int64).to_arrow()
    return pa.array(np.arange(features.num_rows, dtype=np.int64) * parts // features.num_rows)


_COUNTS = ("element_count", "unexpected_count", "missing_count")


def merge_checks(parts: list[tuple[Check, ...]]) -> tuple[Check, ...]:
    """One shard's checks from the checks of its parts (the same suite, partitioned rows).

    Exact for every check the default suites use: counts of map checks add up (uniqueness
    too, because parts split by id); a mean is re-weighted by each part's non-null count
    (`element_count - missing_count` is not reported for means, so mean checks are merged
    from `observed_value x rows` only for boolean-like means, and otherwise pass only if
    every part passed); table-level checks see the same columns in every part.
    """
    merged = []
    for same in zip(*parts, strict=True):
        first = same[0]
        errored = next((c for c in same if c.status == "errored"), None)
        if errored is not None:
            merged.append(errored)
            continue
        merged.append(_merge_one(first, same))
    return tuple(merged)


def _merge_one(first: Check, same: tuple[Check, ...]) -> Check:
    threshold = first.threshold or {}
    observed = [c.observed or {} for c in same]
    if all("unexpected_count" in o and "element_count" in o for o in observed):
        totals = {k: sum(int(o.get(k) or 0) for o in observed) for k in _COUNTS}
        nonmissing = totals["element_count"] - totals["missing_count"]
        bad = totals["unexpected_count"]
        mostly = float(threshold.get("mostly", 1.0))
        success = nonmissing == 0 or (nonmissing - bad) / nonmissing >= mostly
        result: dict[str, Any] = {
            "element_count": totals["element_count"],
            "unexpected_count": bad,
            "unexpected_percent": 100 * bad / nonmissing if nonmissing else None,
        }
        if any("missing_count" in o for o in observed):
            result["missing_count"] = totals["missing_count"]
        return _with(first, "passed" if success else "failed", result)
    if first.expectation == "expect_column_mean_to_be_between" and all(
        "weight" in o for o in observed
    ):
        return _merge_mean(first, observed, threshold)
    if all(o == observed[0] for o in observed):  # e.g. the table's columns: same in each part
        return _with(
            first,
            "passed" if all(c.status == "passed" for c in same) else "failed",
            observed[0] or None,
        )
    status: Status = "passed" if all(c.status == "passed" for c in same) else "failed"
    return _with(first, status, {"parts": [o or None for o in observed]})


def _merge_mean(
    first: Check, observed: list[dict[str, Any]], threshold: Mapping[str, Any]
) -> Check:
    """A mean over parts: exact for a boolean column (the count of True is recovered from
    each part's mean), weighted by non-null counts otherwise."""
    weight = sum(int(o["weight"]) for o in observed)
    parts = [
        (float(o["observed_value"]), int(o["weight"]))
        for o in observed
        if o.get("observed_value") is not None
    ]
    if all(o.get("boolean") for o in observed):
        mean = sum(round(m * w) for m, w in parts) / weight if weight else None
    else:
        mean = sum(m * w for m, w in parts) / weight if weight else None
    low, high = threshold.get("min_value"), threshold.get("max_value")
    ok = mean is not None
    if mean is not None and low is not None:
        ok = mean > low if threshold.get("strict_min") else mean >= low
    if ok and mean is not None and high is not None:
        ok = mean < high if threshold.get("strict_max") else mean <= high
    return _with(first, "passed" if ok else "failed", {"observed_value": mean})


def _weighed(check: Check, weights: Mapping[str, tuple[int, bool]]) -> Check:
    if check.expectation != "expect_column_mean_to_be_between" or check.condition:
        return check
    if check.column is None or check.column not in weights or check.observed is None:
        return check
    weight, boolean = weights[check.column]
    return _with(check, check.status, {**check.observed, "weight": weight, "boolean": boolean})


def _with(check: Check, status: Status, observed: dict[str, Any] | None) -> Check:
    return Check(
        check.position,
        check.expectation,
        check.column,
        check.condition,
        status,
        observed,
        check.threshold,
        check.reason,
    )


def _identifier(key: tuple[str, ...]) -> Any:
    from_tuple: Any = ValidationResultIdentifier.from_tuple
    return from_tuple(key)


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


# ------------------------------------------------------------------------------ results
def _errored(result: Any) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "unknown error")
    return None


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN to None, containers recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _condition(kwargs: Mapping[str, Any]) -> str | None:
    cond = kwargs.get("row_condition")
    if cond is None:
        return None
    data = cond.to_dict() if hasattr(cond, "to_dict") else cond
    if isinstance(data, Mapping) and data.get("type") == "comparison":
        column = data.get("column", {})
        name = column.get("name") if isinstance(column, Mapping) else column
        return f"{name} {data.get('operator')} {data.get('parameter')}"
    return str(data)[:200]


def _check(position: int, result: Any) -> Check:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    reason = _errored(result)
    status: Status = "errored" if reason else ("passed" if result.success else "failed")
    observed = {k: _plain(result.result[k]) for k in _RESULT_KEYS if k in (result.result or {})}
    threshold = {k: _plain(kwargs[k]) for k in _THRESHOLD_KEYS if kwargs.get(k) is not None}
    return Check(
        position=position,
        expectation=config.type,
        column=kwargs.get("column"),
        condition=_condition(kwargs),
        status=status,
        observed=observed or None,
        threshold=threshold or None,
        reason=_one_line_text(reason) if reason else None,
    )


def _one_line_text(text: str) -> str:
    return " ".join(text.split())[:1000]


def default_paths(base: Path) -> GxPaths:
    return GxPaths(root=base / "gx", docs=base / "docs")
