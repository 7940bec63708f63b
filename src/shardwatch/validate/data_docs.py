"""Data Docs: the site GX renders from the stored results, kept offline (docs_site.py),
free of tracebacks and local paths, and pruned to the newest results.

A shard's page is rendered only once its results are committed (`publish`); results whose
shard was not stored are forgotten (`discard`).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shardwatch.core.validation import ShardValidation
from shardwatch.validate.docs_site import localize_pages, scrub_exceptions
from shardwatch.validate.gx_context import GxPaths, quiet_gx, result_identifier

with warnings.catch_warnings():  # GX imports the deprecated sre_* modules
    warnings.filterwarnings("ignore", "module 'sre_", DeprecationWarning)
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )


class DataDocs:
    """The Data Docs site of one GX context and suite, at `paths.docs`."""

    def __init__(self, context: Any, paths: GxPaths, suite: str, keep_results: int) -> None:
        self.context = context
        self.paths = paths
        self.suite = suite
        self.keep_results = keep_results

    def page(self, identifier: Any) -> Path:
        """Where GX renders the page of the stored result `identifier`."""
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
            identifiers = [result_identifier(k) for k in validation.result_keys]
            reasons = {c.position: c.reason for c in validation.checks if c.reason}
            store: Any = self.context.validation_results_store
            for identifier in identifiers:  # the page shows shardwatch's reason (e.g. drift)
                result = store.get(identifier)
                if scrub_exceptions(result.results, reasons):
                    store.set(identifier, result)
            with quiet_gx():
                self.context.build_data_docs(
                    resource_identifiers=[*identifiers, ExpectationSuiteIdentifier(self.suite)]
                )
            self._localize([self.page(i) for i in identifiers])

    def discard(self, validation: ShardValidation) -> None:
        """Forget results whose shard was not stored (its lease was lost)."""
        for key in validation.result_keys:
            self.context.validation_results_store.remove_key(result_identifier(key))

    def prune(self) -> int:
        """Keep the newest `keep_results` results (and pages); returns how many were removed."""
        store: Any = self.context.validation_results_store
        keys: list[Any] = sorted(store.list_keys(), key=lambda k: k.run_id.run_time, reverse=True)
        old = keys[self.keep_results :]
        for key in old:
            store.remove_key(key)
            page = self.page(key)
            page.unlink(missing_ok=True)
            _remove_empty_parents(page.parent, self.paths.docs / "validations")
        return len(old)

    def rebuild_index(self) -> Path:
        """Re-render index.html only (e.g. after pruning), not every stored page."""
        store: Any = self.context.validation_results_store
        keys: list[Any] = sorted(store.list_keys(), key=lambda k: k.run_id.run_time)
        with quiet_gx():
            self.context.build_data_docs(resource_identifiers=keys[-1:] or None)
        self._localize([self.page(k) for k in keys[-1:]])
        return self.paths.index

    def build(self, *, clean: bool = False) -> Path:
        """(Re)build the whole site from the stored results; returns index.html's path."""
        if clean:
            shutil.rmtree(self.paths.docs / "validations", ignore_errors=True)
        with quiet_gx():
            self.context.build_data_docs()
        self._localize(self.paths.docs.rglob("*.html"))
        return self.paths.index

    def _localize(self, pages: Iterable[Path]) -> None:
        """Rewrite what GX just wrote to load nothing from outside the site (docs_site.py):
        the given pages, the index and the suite pages."""
        docs = self.paths.docs
        localize_pages(docs, [docs / "index.html", *docs.glob("expectations/**/*.html"), *pages])


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
