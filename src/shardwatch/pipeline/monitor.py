"""Monitor: the stages of one pass (discover, fetch and check, ingest, finish); the Prefect
flow in flows/monitor.py only composes them.

Every stage takes plain, picklable values (the settings, a `RemoteShard`) and opens what it
needs itself (one engine and one GX validator per process), so the same stages run in
threads or on Dask workers. A bad shard never stops the pass: a failed download is recorded
`failed` (retried on the next pass), a shard whose content is refused (corrupt, a
decompression bomb, a copy of another shard) `quarantined`, both with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shardwatch.acquire.changes import changed_at_source
from shardwatch.acquire.download import DownloadError, DownloadPolicy, origin_entry
from shardwatch.acquire.footer import ShardRejected, check_footer, footer_limits
from shardwatch.acquire.partial import collect
from shardwatch.acquire.sources import (
    HttpListingSource,
    HuggingFaceSource,
    LocalSource,
    ObjectStoreSource,
    RemoteShard,
    Source,
    SourceError,
    cache_name,
)
from shardwatch.core.names import name_problem, shown, uri_problem
from shardwatch.core.redact import url_problem
from shardwatch.core.validation import ShardValidation
from shardwatch.pipeline.ingest import Fingerprint, IngestJob, Outcome, ingest_file, worker_id
from shardwatch.scan.engine import CompiledLexicon
from shardwatch.settings.config import Settings
from shardwatch.store.repository import ResultStore
from shardwatch.store.shard_versions import StoredShard, unfetched_hash

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from shardwatch.validate.gx_adapter import GxValidator


# ------------------------------------------------------------------------------- sources
def download_policy(settings: Settings, hosts: frozenset[str]) -> DownloadPolicy:
    d = settings.download
    return DownloadPolicy(
        allowed_hosts=hosts,
        connect_timeout=d.connect_timeout,
        read_timeout=d.read_timeout,
        attempts=d.attempts,
        backoff=d.backoff,
        backoff_cap=d.backoff_cap,
        max_bytes=d.max_bytes,
        min_speed=d.min_speed,
        speed_window=d.speed_window,
        allow_private=d.allow_private_addresses,
        cache_max_bytes=d.cache_max_bytes,
    )


def build_source(settings: Settings, name: str) -> Source:
    """The configured source `name` (`[sources.<name>]`)."""
    spec = settings.sources[name]
    if spec.type == "local":
        return LocalSource(name, spec.path)
    if spec.type == "http":
        problem = url_problem(spec.manifest)
        if problem is not None:  # before any parser repeats a piece of it
            raise ValueError(f"manifest URL: {problem}")
        hosts = frozenset({origin_entry(spec.manifest), *(h.lower() for h in spec.extra_hosts)})
        return HttpListingSource(
            name,
            spec.manifest,
            policy=download_policy(settings, hosts),
            listing=settings.download.listing_limits(),
        )
    if spec.type == "hf":
        d = settings.download
        options: dict[str, Any] = {}
        if spec.extra_hosts is not None:
            options["extra_hosts"] = frozenset(h.lower() for h in spec.extra_hosts)
        return HuggingFaceSource(
            name,
            spec.repo,
            revision=spec.revision,
            path=spec.path,
            token=spec.token,
            endpoint=spec.endpoint,
            connect_timeout=d.connect_timeout,
            read_timeout=d.read_timeout,
            attempts=d.attempts,
            backoff=d.backoff,
            backoff_cap=d.backoff_cap,
            max_bytes=d.max_bytes,
            min_speed=d.min_speed,
            speed_window=d.speed_window,
            allow_private=d.allow_private_addresses,
            listing=d.listing_limits(),
            cache_max_bytes=d.cache_max_bytes,
            **options,
        )
    return ObjectStoreSource(
        name,
        spec.uri,
        region=spec.region,
        endpoint_override=spec.endpoint_override,
        anonymous=spec.anonymous,
    )


# ----------------------------------------------------------------------------- discovery
@dataclass(frozen=True)
class Discovery:
    """What the sources list, split into what needs processing and what does not."""

    new: tuple[RemoteShard, ...]
    unchanged: int
    errors: tuple[str, ...] = ()  # sources that could not be listed, with the reason
    # Listed with the same checksum as a shard in `new`: processed after `new`, so that a copy
    # under another name is recognised (quarantined) rather than raced and counted twice.
    later: tuple[RemoteShard, ...] = ()


def is_settled(shard: RemoteShard, stored: StoredShard | None) -> bool:
    """True when the URI's current version is this listing's content and nothing more can
    come of processing it again: done, quarantined, or failed on its own bytes. A download
    refused for good (e.g. a redirect off the allow-list) is settled while the listing is
    unchanged; a failed download (no content yet) or a crashed claim is retried."""
    if stored is None:
        return False
    if not stored.fetched:
        unchanged = stored.content_sha256 == unfetched_hash(shard.uri, shard.size, shard.etag)
        return stored.status == "quarantined" and unchanged
    if stored.status not in ("done", "quarantined", "failed"):
        return False
    if shard.sha256 is not None:
        return bool(shard.sha256 == stored.content_sha256)
    if shard.etag is not None and stored.etag is not None:
        return bool(shard.etag == stored.etag and shard.size == stored.size_bytes)
    if shard.size != stored.size_bytes:
        return False
    if shard.mtime is not None and stored.mtime is not None:
        return _utc(shard.mtime) == _utc(stored.mtime)
    return shard.mtime is None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def discover(settings: Settings, sources: Sequence[str] | None = None) -> Discovery:
    """List every configured source (or those named) and compare with the store, by the
    source's checksum, else ETag and size, else size, modification time and (HTTP) the
    server's validator recorded at the last fetch (one conditional request). Then collect
    the partial downloads no listed shard owns (or too old)."""
    store = _store(settings)
    current = store.current(settings.dataset)
    new: dict[str, RemoteShard] = {}
    unchanged = 0
    errors: list[str] = []
    # The cache names of every listed shard (None when not every source was listed).
    owners: set[str] | None = set() if sources is None else None
    for name in sources if sources is not None else sorted(settings.sources):
        try:
            source = build_source(settings, name)
            listed = source.list()
        except SourceError as exc:
            errors.append(str(exc))
            continue
        except ValueError as exc:  # a source the settings describe badly
            errors.append(f"source {name!r}: {exc}")
            continue
        except Exception as exc:  # any other failure ends this source only; its text may
            # hold what the server sent, so only its type is kept
            errors.append(f"source {name!r}: listing failed ({type(exc).__name__})")
            continue
        if owners is not None:
            owners.update(cache_name(shard) for shard in listed)
        for shard in listed:
            if shard.uri in new:
                continue  # listed by two sources: once is enough
            problem = uri_problem(shard.uri)
            if not problem and shard.fetch_url:  # the redacted parts: a NUL or bad UTF-8
                problem = name_problem(shard.fetch_url, one_line=False)
            if problem:  # e.g. a manifest listing a URL with a NUL: refused, not mangled
                errors.append(f"source {name!r}: shard '{shown(shard.uri)}' {problem}; skipped")
                continue
            stored = current.get(shard.uri)
            if is_settled(shard, stored) and not changed_at_source(source, shard, stored):
                unchanged += 1
            else:
                new[shard.uri] = shard
    first: dict[str, RemoteShard] = {}
    later: list[RemoteShard] = []
    for shard in new.values():
        if shard.sha256 is not None and shard.sha256 in first:
            later.append(shard)
        else:
            first[shard.sha256 or shard.uri] = shard
    unique = tuple(s for s in new.values() if s not in later)
    d = settings.download
    collect(d.cache_dir, None if errors else owners, d.partial_max_age_hours * 3600)
    return Discovery(unique, unchanged, tuple(errors), tuple(later))


# ------------------------------------------------------------------------------ one shard
@dataclass(frozen=True)
class ShardOutcome:
    """What happened to one listed shard in this pass (picklable, for any task runner)."""

    source: str
    uri: str
    outcome: Outcome
    shard_id: int | None = None
    version: int | None = None
    reason: str | None = None
    checks_failed: int = 0  # failed or errored, not counting those errored by schema drift
    docs_page: str | None = None
    schema_drift: str | None = None  # how the shard's columns differ from its profile
    # "validation could not run: <reason>" (no suite, GX crashed): not a failed check
    validation_error: str | None = None


@dataclass(frozen=True)
class Fetch:
    """A shard in the cache and checked, or the outcome that ended it (already recorded)."""

    shard: RemoteShard
    path: Path | None = None
    sha256: str | None = None
    size: int | None = None
    ended: ShardOutcome | None = None
    validator: str | None = None  # the server's, recorded for the next pass's "changed?"


class TransientFetchError(Exception):
    """The fetch may succeed if tried again (the flow retries it, then records it failed)."""


def _reject(
    settings: Settings,
    shard: RemoteShard,
    reason: str,
    quarantine: bool,
    sha: str | None = None,
    validator: str | None = None,
) -> ShardOutcome:
    plan = settings.alerts.plan(None) if settings.alerts.enabled else None
    sv, reason = _store(settings).reject(
        settings.dataset,
        shard.uri,
        reason,
        owner=worker_id(),
        content_sha256=sha,
        size_bytes=shard.size,
        etag=shard.etag or validator,
        mtime=shard.mtime,
        quarantine=quarantine,
        max_attempts=settings.max_attempts,
        alerts=plan,
    )
    kind: Outcome = "quarantined" if sv.status == "quarantined" else "failed"
    return ShardOutcome(shard.source, shard.uri, kind, sv.id, sv.version, reason)


def fetch(settings: Settings, shard: RemoteShard) -> Fetch:
    """Fetch a shard into the cache and read its footer. Permanent problems are recorded
    (`quarantined`) and returned; transient ones raise TransientFetchError for a retry."""
    try:
        got = build_source(settings, shard.source).fetch(shard, settings.download.cache_dir)
    except DownloadError as exc:
        if not exc.permanent:
            raise TransientFetchError(f"download failed: {exc.reason}") from None
        return Fetch(shard, ended=_reject(settings, shard, f"download refused: {exc.reason}", True))
    except SourceError as exc:
        raise TransientFetchError(f"fetch failed: {exc}") from None
    try:
        check_footer(got.path, footer_limits(settings.download))
    except ShardRejected as exc:
        reason = f"refused before decoding: {exc.reason}"
        _release(settings, got.path)
        ended = _reject(settings, shard, reason, True, got.sha256, got.validator)
        return Fetch(shard, ended=ended)
    return Fetch(shard, got.path, got.sha256, got.size, validator=got.validator)


def _release(settings: Settings, path: Path) -> None:
    """Delete a processed download (never a source's own file: only inside the cache)."""
    cache = settings.download.cache_dir.resolve()
    if not settings.download.keep_cache and path.resolve().is_relative_to(cache):
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)  # object stores' sidecar


def fetch_failed(settings: Settings, shard: RemoteShard, reason: str) -> ShardOutcome:
    """Record a fetch that kept failing: `failed`, so the next pass tries again."""
    return _reject(settings, shard, reason, quarantine=False)


def ingest_fetched(settings: Settings, fetched: Fetch, run_id: int | None) -> ShardOutcome:
    """Scan, validate and store a fetched shard (one transaction); a copy of a shard already
    stored under another name is quarantined instead of being counted twice (ingest_file,
    store/twins.py)."""
    if fetched.ended is not None:
        return fetched.ended
    shard = fetched.shard
    assert fetched.path is not None and fetched.sha256 is not None and fetched.size is not None
    store = _store(settings)
    try:
        stat = fetched.path.stat()
        mtime = shard.mtime or datetime.fromtimestamp(stat.st_mtime, UTC)
        fp = Fingerprint(fetched.sha256, fetched.size, mtime)
        job = _job(settings, store, worker_id(), run_id)
        etag = shard.etag or fetched.validator
        result = ingest_file(job, fetched.path, uri=shard.uri, fp=fp, etag=etag)
    finally:
        _release(settings, fetched.path)
    v = result.validation
    not_run = None if v is None else v.not_run
    return ShardOutcome(
        shard.source,
        shard.uri,
        result.outcome,
        result.shard_id,
        result.version,
        result.reason,
        checks_failed=0
        if v is None or not_run
        else v.count("failed") + v.count("errored") - v.drift_errored,
        docs_page=None if v is None else v.docs_page,
        schema_drift=result.schema_drift.describe() if result.schema_drift else None,
        validation_error=not_run,
    )


def process(settings: Settings, shard: RemoteShard, run_id: int | None) -> ShardOutcome:
    """Fetch, check and ingest one shard without Prefect (a failed fetch is recorded)."""
    try:
        fetched = fetch(settings, shard)
    except TransientFetchError as exc:
        return fetch_failed(settings, shard, str(exc))
    return ingest_fetched(settings, fetched, run_id)


def _job(settings: Settings, store: ResultStore, owner: str, run_id: int | None) -> IngestJob:
    validator = _validator(settings)
    docs_index = str(validator.paths.index) if validator is not None else None
    plan = settings.alerts.plan(docs_index, reports=True) if settings.alerts.enabled else None
    return IngestJob(
        store=store,
        dataset=settings.dataset,
        profile=settings.dataset_profile(),
        lexicon=CompiledLexicon(settings.active_lexicon()),
        lease_seconds=settings.lease_seconds,
        owner=owner,
        run_id=run_id,
        batch_size=settings.batch_size,
        workers=settings.workers,
        validator=validator,
        alerts=plan,
        domain_top_k=settings.domain_top_k,
        footer=footer_limits(settings.download),
        max_attempts=settings.max_attempts,
    )


# --------------------------------------------------------- per-process resources (cached)
_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_validators: dict[tuple[str, str, str], _Serialised] = {}


def _store(settings: Settings) -> ResultStore:
    from shardwatch.store.database import make_engine, upgrade

    url = settings.database_url.get_secret_value()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            # one connection per shard in flight (each holds one while the dataset's alert
            # lock is taken), plus the run's own bookkeeping
            engine = make_engine(url, pool_size=max(5, settings.monitor.concurrency + 1))
            upgrade(engine)
            _engines[url] = engine
    return ResultStore(engine)


class _Serialised:
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


def _validator(settings: Settings) -> _Serialised | None:
    if not settings.validation.enabled:
        return None
    from shardwatch.validate.gx_adapter import GxPaths, GxValidator

    v = settings.validation
    own = str(v.suites_dir.resolve()) if v.suites_dir is not None else ""
    key = (str(v.gx_dir.resolve()), own, settings.suite_name())
    with _lock:
        found = _validators.get(key)
        if found is None:
            inner = GxValidator(
                GxPaths(v.gx_dir, v.docs_dir),
                v.suites_dir,
                settings.suite_name(),
                keep_results=v.keep_results,
                partial_unexpected=v.partial_unexpected,
                max_rows=v.max_rows,
            )
            found = _validators[key] = _Serialised(inner)
    return found


# --------------------------------------------------------------------------------- finish
@dataclass(frozen=True)
class PassSummary:
    """One monitor pass, for the flow's final state and artifacts."""

    run_id: int
    outcomes: tuple[ShardOutcome, ...]
    unchanged: int
    source_errors: tuple[str, ...]
    alerts: str
    data_docs: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.outcome in ("failed", "quarantined"))

    @property
    def validation_errors(self) -> int:
        """Shards stored without validation because it could not run (no suite, GX
        crashed): the pass did not do its job, whatever the data holds."""
        return sum(1 for o in self.outcomes if o.validation_error)

    def line(self) -> str:
        parts = [f"{n} {k}" for k, n in sorted(self.counts.items())]
        if self.validation_errors:
            parts.append(f"validation could not run for {self.validation_errors} shard(s)")
        parts.append(f"{self.unchanged} unchanged")
        if self.source_errors:
            parts.append(f"{len(self.source_errors)} source(s) not listed")
        return f"run {self.run_id}: " + ", ".join(parts)


def start(settings: Settings, flow_run_id: str | None = None) -> int:
    return _store(settings).start_run(flow_run_id)


def abandon(settings: Settings, run_id: int, exc: BaseException) -> None:
    """Close a run that an exception ended as `failed` (its type only: the text may hold
    what a server sent); never raises, so the exception itself is what the caller sees."""
    try:
        _store(settings).fail_run(run_id, f"the pass ended by {type(exc).__name__}")
    except Exception:  # the store may be what failed: the next run closes the row
        return


def finish(
    settings: Settings,
    run_id: int,
    discovery: Discovery,
    outcomes: Sequence[ShardOutcome],
    relay_summary: str,
) -> PassSummary:
    """Record the run's counts, prune and index Data Docs; the summary the flow reports."""
    from collections import Counter

    counts = Counter(o.outcome for o in outcomes)
    _store(settings).finish_run(
        run_id,
        seen=len(outcomes) + discovery.unchanged,
        done=counts["done"],
        skipped=counts["skipped"] + discovery.unchanged,
        failed=counts["failed"] + counts["quarantined"],
    )
    docs = None
    validator = _validator(settings)
    if validator is not None:
        inner = validator.inner
        docs = str(inner.rebuild_index() if inner.prune() else inner.paths.index)
    return PassSummary(
        run_id,
        tuple(outcomes),
        discovery.unchanged,
        discovery.errors,
        relay_summary,
        docs,
        {str(k): n for k, n in counts.items()},
    )


def relay_alerts(settings: Settings) -> str:
    """One relay pass over the configured channels; its one-line summary."""
    if not settings.alerts.enabled:
        return "alerts disabled"
    from shardwatch.alerting.relay import relay_configured

    return relay_configured(_store(settings).engine, settings.alerts).summary()


def load_flow() -> Any:
    """The `monitor` flow, from flows/monitor.py as packaged (`shardwatch.flows.monitor`), so
    it loads from any folder and Dask workers import it like any other module."""
    import importlib

    from shardwatch.settings.resources import FLOW_MODULE

    try:
        module = importlib.import_module(FLOW_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (FLOW_MODULE, FLOW_MODULE.rpartition(".")[0]):
            raise
        raise FileNotFoundError(f"the monitor flow is missing: {FLOW_MODULE}") from None
    return module.monitor
