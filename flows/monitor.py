"""The monitor flow: discover -> per new shard (fetch -> check -> scan, validate and store in
one transaction) -> relay alerts -> roll up, with a Table 1 artifact and charts.

It only composes `shardwatch.pipeline.monitor` stages, handing each the pass's `Resources`
(settings, store, validator: pipeline/resources.py), built once per pass. Only I/O tasks
(listing, fetching, relaying) have Prefect retries; scanning and storing do not (a store
transaction is all or nothing, and the same bytes fail the same way twice). Shards fan out
over a thread pool, or over Dask with `monitor.task_runner = "dask"` (`monitor.dask_address`
for an existing cluster).

    prefect deployment: shardwatch.flows.monitor.monitor   (see infra/prefect.yaml)
    one pass:           shardwatch run [--config F]
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from shardwatch.acquire.sources import RemoteShard
from shardwatch.core.names import shown
from shardwatch.pipeline import monitor as stages
from shardwatch.pipeline.flow_hooks import final_state, notify_unfinished
from shardwatch.pipeline.resources import Resources
from shardwatch.present.artifacts import publish_artifacts
from shardwatch.settings.config import Settings, load_settings


@task(name="discover", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def discover(res: Resources) -> stages.Discovery:
    return stages.discover(res)


@task(name="fetch", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def fetch(res: Resources, shard: RemoteShard) -> stages.Fetch:
    return stages.fetch(res, shard)


@task(name="ingest", cache_policy=NO_CACHE)
def ingest(res: Resources, fetched: stages.Fetch, run_id: int) -> stages.ShardOutcome:
    return stages.ingest_fetched(res, fetched, run_id)


@task(name="relay alerts", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def relay(res: Resources) -> str:
    return stages.relay_alerts(res)


def task_runner(settings: Settings) -> Any:
    """Threads by default; Dask (a local cluster, or `monitor.dask_address`) on request."""
    m = settings.monitor
    if m.task_runner == "dask":
        from prefect_dask.task_runners import DaskTaskRunner

        if m.dask_address:
            return DaskTaskRunner(address=m.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": m.concurrency, "threads_per_worker": 1})
    return ThreadPoolTaskRunner(max_workers=m.concurrency)


def _outcome(
    res: Resources, shard: RemoteShard, fetched: PrefectFuture[stages.Fetch], run_id: int
) -> stages.ShardOutcome | PrefectFuture[stages.ShardOutcome]:
    """The ingest task for a fetched shard; a fetch that failed after its retries is
    recorded `failed` (the next pass tries again) and the run goes on."""
    fetched.wait()
    if fetched.state.is_failed():
        error = fetched.state.result(raise_on_failure=False)
        return stages.fetch_failed(res, shard, str(error))
    # Prefect resolves the future argument to its Fetch; the stubs want the Fetch itself
    return ingest.submit(res, fetched, run_id)  # type: ignore[call-overload,no-any-return]


def _process(
    res: Resources, shards: tuple[RemoteShard, ...], run_id: int
) -> list[stages.ShardOutcome]:
    """Fetch and ingest `shards`, `monitor.concurrency` at a time: at most that many
    downloads sit in the cache at once, whatever the number of shards."""
    window = res.settings.monitor.concurrency
    outcomes: list[stages.ShardOutcome] = []
    for start in range(0, len(shards), window):
        batch = shards[start : start + window]
        fetches = [fetch.submit(res, shard) for shard in batch]
        pending = [_outcome(res, s, f, run_id) for s, f in zip(batch, fetches, strict=True)]
        outcomes += [p if isinstance(p, stages.ShardOutcome) else p.result() for p in pending]
    return outcomes


@flow(
    name="shardwatch-monitor",
    on_failure=[notify_unfinished],
    on_crashed=[notify_unfinished],
)
def monitor(config: str | None = None) -> Any:
    """One pass over the configured sources. Ends `Completed`, or `Failed` with the counts
    when a shard failed or a source was not listed (pipeline.flow_hooks); a run that fails
    or crashes sends a `monitor-run` notice to the alert channels."""
    settings = load_settings(config)
    summary = monitor_pass.with_options(task_runner=task_runner(settings))(config)
    return final_state(summary)


# Only the config file's path is a flow parameter: Prefect stores and validates parameters,
# and the settings hold secrets (and are not a type it can rebuild from a loaded script).
@flow(name="shardwatch-monitor-pass")
def monitor_pass(config: str | None = None) -> stages.PassSummary:
    """discover -> fetch (retried) -> ingest, per new shard -> relay -> roll up."""
    res = Resources(load_settings(config))
    try:
        return _pass(res)
    finally:
        res.close()


def _pass(res: Resources) -> stages.PassSummary:
    log = get_run_logger()
    run_id = stages.start(res)
    try:  # the run row is closed whatever ends the pass
        found = discover(res)
        for error in found.errors:
            log.warning("%s", shown(error))
        log.info(
            "run %s: %d new or changed shard(s), %d unchanged",
            run_id,
            len(found.new) + len(found.later),
            found.unchanged,
        )
        outcomes = _process(res, found.new, run_id)
        outcomes += _process(res, found.later, run_id)  # copies: after their originals
        for o in outcomes:
            if o.outcome in ("failed", "quarantined"):
                log.warning("%s %s: %s", o.outcome, shown(o.uri), shown(o.reason or ""))
        stages.judge(res, run_id, outcomes)  # the dataset-level rules, once per pass
        relayed = relay(res)
        summary = stages.finish(res, run_id, found, outcomes, relayed)
        publish_artifacts(res.settings, summary, res.store)
        log.info("%s; %s", shown(summary.line()), shown(relayed))
    except BaseException as exc:
        stages.abandon(res, run_id, exc)
        raise
    return summary
