"""The monitor flow: discover -> per new shard (fetch -> check -> scan, validate and store in
one transaction) -> relay alerts -> roll up, with a Table 1 artifact and charts.

It only composes `shardwatch.pipeline.monitor` stages, handing each the pass's `Resources`
(settings, store, validator: pipeline/resources.py), built once per pass. Each shard is one
task (fetch, check, scan, validate, store), so nothing depends on where a runner places it.
Listing and relaying have Prefect retries and a shard's fetch is tried again inside its task;
scanning and storing are not retried (a store transaction is all or nothing, and the same
bytes fail the same way twice). Shards go through a rolling queue of `monitor.concurrency`
slots, over a thread pool, or over Dask with `monitor.task_runner = "dask"`
(`monitor.dask_address` for an existing cluster).

    prefect deployment: shardwatch.flows.monitor.monitor   (see infra/prefect.yaml)
    one pass:           shardwatch run [--config F]
"""

from __future__ import annotations

import queue
from itertools import islice
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


@task(name="shard", cache_policy=NO_CACHE)
def process_shard(res: Resources, shard: RemoteShard, run_id: int) -> stages.ShardOutcome:
    """Fetch (retried), check, scan, validate and store one shard in one task, so the
    download and its scan always run on the same worker, wherever the runner places it."""
    return stages.process(
        res, shard, run_id, fetch_tries=stages.FETCH_TRIES, retry_delay=stages.FETCH_RETRY_DELAY
    )


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
        # The scheduler's HTTP server (and dashboard) on a free loopback port: by default it
        # takes port 8787, and warns and moves when something else holds it (two passes).
        kwargs = {
            "n_workers": m.concurrency,
            "threads_per_worker": 1,
            "dashboard_address": "127.0.0.1:0",
        }
        return DaskTaskRunner(cluster_kwargs=kwargs)
    return ThreadPoolTaskRunner(max_workers=m.concurrency)


def _finished(shard: RemoteShard, future: PrefectFuture[stages.ShardOutcome]) -> Any:
    """The outcome of a shard's task; a task that raised or never returned (its worker was
    killed, the runner gave up on it) leaves the shard `pending`: not done."""
    try:
        result = future.result(raise_on_failure=False)
    except BaseException as exc:  # e.g. distributed's KilledWorker, CancelledError
        return stages.not_finished(shard, exc)
    if isinstance(result, stages.ShardOutcome):
        return result
    return stages.not_finished(shard, result if isinstance(result, BaseException) else None)


def _process(
    res: Resources, shards: tuple[RemoteShard, ...], run_id: int
) -> list[stages.ShardOutcome]:
    """A rolling queue: each shard's task is submitted as soon as one of the
    `monitor.concurrency` slots frees, so a slow shard holds one slot, not a group, and at
    most that many downloads sit in the cache at once. Outcomes keep the listing's order."""
    finished: queue.SimpleQueue[int] = queue.SimpleQueue()
    running: dict[int, PrefectFuture[stages.ShardOutcome]] = {}
    outcomes: list[stages.ShardOutcome | None] = [None] * len(shards)

    def submit(i: int) -> None:
        def done(_: PrefectFuture[stages.ShardOutcome]) -> None:
            finished.put(i)

        future = process_shard.submit(res, shards[i], run_id)
        running[i] = future
        future.add_done_callback(done)

    following = iter(range(len(shards)))
    for i in islice(following, res.settings.monitor.concurrency):
        submit(i)
    while running:
        i = finished.get()
        outcomes[i] = _finished(shards[i], running.pop(i))
        for j in islice(following, 1):
            submit(j)
    return [o for o in outcomes if o is not None]


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
    """discover -> per new shard (fetch, retried -> ingest) -> relay -> roll up."""
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
