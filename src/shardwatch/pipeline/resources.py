"""Resources: the pipeline's one composition root. From the `Settings` it builds what the
stages share, the results store and the GX validator (`Resources`), and the `IngestJob`
that `ingest`, the monitor stages and their tests run (`ingest_job`).

A `Resources` opens each thing on first use and once: the store's engine (migrated to the
head) and the validator, which this process's threads then share. It is an explicit object
that the caller builds (the flow once per pass, a CLI command once per run) and hands to
each stage; nothing is cached in module globals. Pickled (a Dask worker), it carries only
the settings and opens its own store and validator where it lands.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from shardwatch.acquire.footer import footer_limits
from shardwatch.core.alerts import AlertPlan
from shardwatch.core.ids import worker_id
from shardwatch.core.validation import ShardValidation, ShardValidator
from shardwatch.pipeline.ingest import IngestJob
from shardwatch.scan.engine import CompiledLexicon, ProgressCallback
from shardwatch.settings.config import Settings
from shardwatch.store.database import close_engine
from shardwatch.store.repository import ResultStore
from shardwatch.store.result_writes import BeforeCommit

if TYPE_CHECKING:
    from shardwatch.store.database import StoreEngine
    from shardwatch.validate.gx_adapter import GxValidator


class SerialisedValidator:
    """A validator shared by this process's threads: GX runs one shard at a time."""

    def __init__(self, inner: GxValidator) -> None:
        self.inner = inner
        self.suite: str = inner.suite
        self.paths = inner.paths
        self._lock = threading.Lock()

    def validate(self, features: Any, dataset: str, shard_id: int, version: int) -> ShardValidation:
        with self._lock:
            return self.inner.validate(features, dataset, shard_id, version)

    def publish(self, validation: ShardValidation) -> None:
        with self._lock:
            self.inner.publish(validation)

    def discard(self, validation: ShardValidation) -> None:
        with self._lock:
            self.inner.discard(validation)


def open_engine(settings: Settings) -> StoreEngine:
    """The configured store's engine, migrated to the head. Its pool holds one connection per
    shard in flight (each holds one while the dataset's alert lock is taken), plus the run's
    own bookkeeping."""
    from shardwatch.store.database import make_engine, upgrade

    url = settings.database_url.get_secret_value()
    engine = make_engine(url, pool_size=max(5, settings.monitor.concurrency + 1))
    upgrade(engine)
    return engine


def gx_validator(settings: Settings) -> GxValidator:
    """The GX adapter for the configured suite (`[validation]`)."""
    from shardwatch.validate.gx_adapter import GxPaths, GxValidator

    v = settings.validation
    return GxValidator(
        GxPaths(v.gx_dir, v.docs_dir),
        v.suites_dir,
        settings.suite_name(),
        keep_results=v.keep_results,
        partial_unexpected=v.partial_unexpected,
        max_rows=v.max_rows,
    )


class Resources:
    """What the stages of a pass share: the settings, the results store and the validator
    (None when validation is off), each opened on first use and once."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ResultStore | None = None,
        validator: SerialisedValidator | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._validator = validator
        self._validator_built = validator is not None
        self._owned: StoreEngine | None = None  # an engine this object opened (closed by close())
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        # Only the settings travel (a Dask task's argument); the store and validator are
        # opened again on the other side.
        return (Resources, (self.settings,))

    @property
    def store(self) -> ResultStore:
        with self._lock:
            if self._store is None:
                self._owned = open_engine(self.settings)
                self._store = ResultStore(self._owned)
            return self._store

    @property
    def validator(self) -> SerialisedValidator | None:
        if not self.settings.validation.enabled:
            return None
        with self._lock:
            if not self._validator_built:
                self._validator = SerialisedValidator(gx_validator(self.settings))
                self._validator_built = True
            return self._validator

    def close(self) -> None:
        """Close the store's engine if this object opened it (its connections go)."""
        with self._lock:
            if self._owned is not None:
                close_engine(self._owned)
                self._owned, self._store = None, None

    def ingest_job(self, run_id: int | None) -> IngestJob:
        """The monitor's job: the configured validator and alert rules (notices link to the
        pass's report), a fresh claim owner."""
        validator = self.validator
        docs_index = str(validator.paths.index) if validator is not None else None
        a = self.settings.alerts
        plan = a.plan(docs_index, reports=True) if a.enabled else None
        return ingest_job(
            self.settings, self.store, run_id=run_id, validator=validator, alerts=plan
        )


def ingest_job(
    settings: Settings,
    store: ResultStore,
    *,
    run_id: int | None,
    validator: ShardValidator | None,
    alerts: AlertPlan | None,
    owner: str | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    before_commit: BeforeCommit | None = None,
) -> IngestJob:
    """The `IngestJob` of the settings: dataset, profile, lexicon, lease, batching, workers,
    footer caps and retry budget, with what the caller chose (validator, alert plan, run)."""
    return IngestJob(
        store=store,
        dataset=settings.dataset,
        profile=settings.dataset_profile(),
        lexicon=CompiledLexicon(settings.active_lexicon()),
        lease_seconds=settings.lease_seconds,
        owner=owner or worker_id(),
        force=force,
        run_id=run_id,
        batch_size=settings.batch_size,
        workers=settings.workers,
        progress=progress,
        before_commit=before_commit,
        validator=validator,
        alerts=alerts,
        domain_top_k=settings.domain_top_k,
        footer=footer_limits(settings.download),
        max_attempts=settings.max_attempts,
    )
