"""Monitor: the stages of one pass (discover, fetch and check, ingest, finish); the Prefect
flow in flows/monitor.py only composes them.

Every stage takes the pass's `Resources` (pipeline/resources.py: the settings, the store and
the GX validator, opened once) and plain, picklable values (a `RemoteShard`), so the same
stages run in threads or on Dask workers. A bad shard never stops the pass: a failed
download is recorded `failed` (retried on the next pass), a shard whose content is refused
(corrupt, a decompression bomb, a copy of another shard) `quarantined`, both with the reason.
The footer is checked once, at the fetch; its verdict travels with the `Fetch` to ingest.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shardwatch.acquire.footer import ShardRejected, check_footer, footer_limits
from shardwatch.acquire.policy import DownloadError
from shardwatch.acquire.sources import RemoteShard, SourceError
from shardwatch.core.ids import worker_id
from shardwatch.core.passes import Outcome, PassSummary, ShardOutcome
from shardwatch.pipeline.discovery import (
    Discovery,
    build_source,
    discover,
    download_policy,
    is_settled,
)
from shardwatch.pipeline.ingest import Fingerprint, FooterVerdict, ingest_file, judge_dataset
from shardwatch.pipeline.resources import Resources

__all__ = [
    "Discovery",
    "Fetch",
    "PassSummary",
    "Resources",
    "ShardOutcome",
    "TransientFetchError",
    "abandon",
    "build_source",
    "discover",
    "download_policy",
    "fetch",
    "fetch_failed",
    "finish",
    "ingest_fetched",
    "is_settled",
    "judge",
    "load_flow",
    "not_finished",
    "process",
    "relay_alerts",
    "start",
]


@dataclass(frozen=True)
class Fetch:
    """A shard in the cache and checked, or the outcome that ended it (already recorded)."""

    shard: RemoteShard
    path: Path | None = None
    sha256: str | None = None
    size: int | None = None
    ended: ShardOutcome | None = None
    validator: str | None = None  # the server's, recorded for the next pass's "changed?"
    footer: FooterVerdict | None = None  # the footer gate's verdict, so ingest needs no other


class TransientFetchError(Exception):
    """The fetch may succeed if tried again (the flow retries it, then records it failed)."""


def _reject(
    res: Resources,
    shard: RemoteShard,
    reason: str,
    quarantine: bool,
    sha: str | None = None,
    validator: str | None = None,
) -> ShardOutcome:
    settings = res.settings
    plan = settings.alerts.plan(None) if settings.alerts.enabled else None
    sv, reason = res.store.reject(
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


def fetch(res: Resources, shard: RemoteShard) -> Fetch:
    """Fetch a shard into the cache and read its footer. Permanent problems are recorded
    (`quarantined`) and returned; transient ones raise TransientFetchError for a retry."""
    settings = res.settings
    try:
        got = build_source(settings, shard.source).fetch(shard, settings.download.cache_dir)
    except DownloadError as exc:
        if not exc.permanent:
            raise TransientFetchError(f"download failed: {exc.reason}") from None
        return Fetch(shard, ended=_reject(res, shard, f"download refused: {exc.reason}", True))
    except SourceError as exc:
        raise TransientFetchError(f"fetch failed: {exc}") from None
    try:
        verdict = check_footer(got.path, footer_limits(settings.download))
    except ShardRejected as exc:
        reason = f"refused before decoding: {exc.reason}"
        _release(res, got.path)
        ended = _reject(res, shard, reason, True, got.sha256, got.validator)
        return Fetch(shard, ended=ended)
    return Fetch(shard, got.path, got.sha256, got.size, validator=got.validator, footer=verdict)


def _release(res: Resources, path: Path) -> None:
    """Delete a processed download (never a source's own file: only inside the cache)."""
    download = res.settings.download
    cache = download.cache_dir.resolve()
    if not download.keep_cache and path.resolve().is_relative_to(cache):
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)  # object stores' sidecar


def fetch_failed(res: Resources, shard: RemoteShard, reason: str) -> ShardOutcome:
    """Record a fetch that kept failing: `failed`, so the next pass tries again."""
    return _reject(res, shard, reason, quarantine=False)


def ingest_fetched(res: Resources, fetched: Fetch, run_id: int | None) -> ShardOutcome:
    """Scan, validate and store a fetched shard (one transaction); a copy of a shard already
    stored under another name is quarantined instead of being counted twice (ingest_file,
    store/twins.py)."""
    if fetched.ended is not None:
        return fetched.ended
    shard = fetched.shard
    assert fetched.path is not None and fetched.sha256 is not None and fetched.size is not None
    try:
        stat = fetched.path.stat()
        mtime = shard.mtime or datetime.fromtimestamp(stat.st_mtime, UTC)
        fp = Fingerprint(fetched.sha256, fetched.size, mtime)
        job = res.ingest_job(run_id)
        etag = shard.etag or fetched.validator
        path, checked = fetched.path, fetched.footer
        result = ingest_file(job, path, uri=shard.uri, fp=fp, etag=etag, checked=checked)
    finally:
        _release(res, fetched.path)
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


def judge(res: Resources, run_id: int | None, outcomes: Sequence[ShardOutcome]) -> None:
    """The dataset-level alert rules, judged once after the pass's shards (each shard's
    commit judged its shard-level rules), and the sums the report reads kept:
    pipeline/ingest.judge_dataset."""
    judge_dataset(res.ingest_job(run_id, validated=False), [o.outcome for o in outcomes])


# What a pass (the flow's shard task, `run --local`) gives a shard's fetch: this many tries,
# this many seconds apart, before it is recorded failed.
FETCH_TRIES = 3
FETCH_RETRY_DELAY = 5.0


def process(
    res: Resources,
    shard: RemoteShard,
    run_id: int | None,
    *,
    fetch_tries: int = 1,
    retry_delay: float = 0.0,
) -> ShardOutcome:
    """Fetch, check and ingest one shard, in this process: the download and its scan never
    depend on where a task runner places them. A fetch that fails transiently is tried up to
    `fetch_tries` times, `retry_delay` seconds apart, then recorded `failed`; the ingest is
    never retried (a store transaction is all or nothing, and the same bytes fail the same
    way twice)."""
    for attempt in range(1, fetch_tries + 1):
        try:
            fetched = fetch(res, shard)
            break
        except TransientFetchError as exc:
            if attempt >= fetch_tries:
                return fetch_failed(res, shard, str(exc))
            time.sleep(retry_delay)
    return ingest_fetched(res, fetched, run_id)


def not_finished(shard: RemoteShard, error: BaseException | None) -> ShardOutcome:
    """A shard whose task never returned (its worker died, the runner gave up on it): not
    done. The store still holds it as discovered, or processing under a claim that expires
    after `lease_seconds`; the next pass takes it again."""
    why = "its task did not finish"
    if error is not None:
        why = f"its task ended by {type(error).__name__}"
    return ShardOutcome(shard.source, shard.uri, "pending", reason=f"{why}; retried next pass")


def start(res: Resources, flow_run_id: str | None = None) -> int:
    return res.store.start_run(flow_run_id)


def abandon(res: Resources, run_id: int, exc: BaseException) -> None:
    """Close a run that an exception ended as `failed` (its type only: the text may hold
    what a server sent); never raises, so the exception itself is what the caller sees."""
    try:
        res.store.fail_run(run_id, f"the pass ended by {type(exc).__name__}")
    except Exception:  # the store may be what failed: the next run closes the row
        return


def finish(
    res: Resources,
    run_id: int,
    discovery: Discovery,
    outcomes: Sequence[ShardOutcome],
    relay_summary: str,
) -> PassSummary:
    """Record the run's counts, prune and index Data Docs; the summary the flow reports."""
    counts = Counter(o.outcome for o in outcomes)
    res.store.finish_run(
        run_id,
        seen=len(outcomes) + discovery.unchanged,
        done=counts["done"],
        skipped=counts["skipped"] + discovery.unchanged,
        failed=counts["failed"] + counts["quarantined"],
    )
    docs = None
    if res.settings.validation.enabled and not outcomes:
        # nothing was validated: no page to prune, and GX need not load to name the index
        docs = str(res.settings.validation.docs_dir / "index.html")
    elif (validator := res.validator) is not None:
        inner = validator.inner
        inner.prune()  # the index is rebuilt from every stored result, whichever process
        docs = str(inner.rebuild_index())  # (a Dask worker) validated and rendered them
    return PassSummary(
        run_id,
        tuple(outcomes),
        discovery.unchanged,
        discovery.errors,
        relay_summary,
        docs,
        {str(k): n for k, n in counts.items()},
    )


def relay_alerts(res: Resources) -> str:
    """One relay pass over the configured channels; its one-line summary."""
    if not res.settings.alerts.enabled:
        return "alerts disabled"
    from shardwatch.alerting.relay import relay_configured

    return relay_configured(res.store.engine, res.settings.alerts).summary()


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
