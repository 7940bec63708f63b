"""Resources: the pipeline's one composition root. From the `Settings` it builds what the
stages share, the results store and the GX validator (`Resources`), and the `IngestJob`
that `ingest`, the monitor stages and their tests run (`ingest_job`).

A `Resources` opens each thing on first use and once: the store's engine (migrated to the
head) and the validator, which this process's threads then share. It is an explicit object
that the caller builds (the flow once per pass, a CLI command once per run) and hands to
each stage. Pickled (a Dask task's argument), it carries only the settings, with their
paths made absolute; on a worker it becomes that process's one `Resources` for them
(`worker_resources`), so each worker process opens one store, with a pool bounded by its
threads, and one validator, whatever the number of tasks it runs.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import pickle
import shutil
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shardwatch.acquire.footer import footer_limits
from shardwatch.core.alerts import AlertPlan
from shardwatch.core.ids import worker_id
from shardwatch.core.validation import ShardValidation, ShardValidator
from shardwatch.pipeline.blocklists import compiled_blocklists
from shardwatch.pipeline.ingest import IngestJob
from shardwatch.scan.blocklists import CompiledBlocklist
from shardwatch.scan.engine import CompiledLexicon, ProgressCallback
from shardwatch.scan.features import blocklist_column
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


def local_slots(settings: Settings) -> int:
    """Shards this process runs at once: its Dask worker's threads on a Dask worker, else
    `monitor.concurrency` (the thread pool)."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError):  # not inside a Dask worker
        return settings.monitor.concurrency


def open_engine(settings: Settings) -> StoreEngine:
    """The configured store's engine, migrated to the head. Its pool holds one connection per
    shard this process runs at once (each holds one while the dataset's alert lock is
    taken), plus the run's own bookkeeping: `monitor.concurrency` + 1 in the flow's process,
    the worker's threads + 1 on a Dask worker (at least 5; infra/README.md)."""
    from shardwatch.store.database import make_engine, upgrade

    url = settings.database_url.get_secret_value()
    engine = make_engine(url, pool_size=max(5, local_slots(settings) + 1))
    upgrade(engine)
    return engine


def _own_project(gx_dir: Path) -> Path:
    """This process's GX project, `<gx_dir>/workers/<host>-<pid>`, removed when it exits:
    processes sharing `gx_dir` (threads' pass and Dask workers alike) never rewrite each
    other's suite or checkpoint (GX's CheckpointRelatedResourcesFreshnessError); their
    validation results and the Data Docs site stay shared."""
    project = gx_dir / "workers" / f"{socket.gethostname()}-{os.getpid()}"
    atexit.register(shutil.rmtree, project, ignore_errors=True)
    return project


def gx_validator(settings: Settings) -> GxValidator:
    """The GX adapter for the configured suite (`[validation]`), with its own GX project."""
    from shardwatch.validate.gx_adapter import GxPaths, GxValidator

    v = settings.validation
    return GxValidator(
        GxPaths(v.gx_dir, v.docs_dir, _own_project(v.gx_dir)),
        v.suites_dir,
        settings.suite_name(),
        keep_results=v.keep_results,
        partial_unexpected=v.partial_unexpected,
        max_rows=v.max_rows,
        # one check per configured blocklist: no row may carry its per-row flag
        flag_checks=tuple(blocklist_column(name) for name in settings.blocklists),
    )


class Resources:
    """What the stages of a pass share: the settings, the results store, the validator
    (None when validation is off) and the compiled blocklists, each opened on first use and
    once."""

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
        self._blocklists: tuple[CompiledBlocklist, ...] | None = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        # Only the settings travel (a Dask task's argument), with their paths made absolute
        # here (a worker may start in any folder); the other side uses its process's one
        # `Resources` for them, so a worker opens one store and one validator, not one per task.
        return (worker_resources, (self.settings.anchored(),))

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

    @property
    def blocklists(self) -> tuple[CompiledBlocklist, ...]:
        """The configured remove-lists, compiled (raises ConfigError naming a bad list)."""
        with self._lock:
            if self._blocklists is None:
                self._blocklists = compiled_blocklists(self.settings)
            return self._blocklists

    def close(self) -> None:
        """Close the store's engine if this object opened it (its connections go)."""
        with self._lock:
            if self._owned is not None:
                close_engine(self._owned)
                self._owned, self._store = None, None

    def ingest_job(self, run_id: int | None, *, validated: bool = True) -> IngestJob:
        """The monitor's job: the configured validator and alert rules (notices link to the
        pass's report), a fresh claim owner. `validated=False`: no validator, so GX is not
        loaded (judging the dataset needs only the store and the rules); notices still link
        to the Data Docs index, which is where the validator keeps it."""
        validator = self.validator if validated else None
        docs_index = str(validator.paths.index) if validator is not None else None
        if not validated and self.settings.validation.enabled:
            docs_index = str(self.settings.validation.docs_dir / "index.html")
        a, lists = self.settings.alerts, self.settings.blocklists
        severity = {name: spec.severity for name, spec in lists.items()}
        plan = a.plan(docs_index, reports=True, blocklists=severity) if a.enabled else None
        return ingest_job(
            self.settings,
            self.store,
            run_id=run_id,
            validator=validator,
            alerts=plan,
            blocklists=self.blocklists,
        )


_WORKER_RESOURCES: dict[bytes, Resources] = {}
_WORKER_LOCK = threading.Lock()


def worker_resources(settings: Settings) -> Resources:
    """This process's `Resources` for `settings` (what a pickled `Resources` becomes on a Dask
    worker): one store engine, with a bounded pool, and one validator per worker process and
    settings, shared by its threads and kept for the process's life."""
    key = hashlib.sha256(pickle.dumps(settings)).digest()  # never shown: holds secrets
    with _WORKER_LOCK:
        found = _WORKER_RESOURCES.get(key)
        if found is None:
            found = _WORKER_RESOURCES[key] = Resources(settings)
        return found


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
    blocklists: Sequence[CompiledBlocklist] | None = None,
) -> IngestJob:
    """The `IngestJob` of the settings: dataset, profile, lexicon, lease, batching, workers,
    footer caps, retry budget and blocklists (compiled here unless given), with what the
    caller chose (validator, alert plan, run)."""
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
        blocklists=tuple(compiled_blocklists(settings) if blocklists is None else blocklists),
    )
