"""The local pass: one monitor pass in this process, without Prefect (`shardwatch run --local`).

It composes the same stages as the flow (flows/monitor.py), in the same order, with one
`Resources` per pass: start a run row -> discover -> fetch, check and ingest each new shard
(`monitor.concurrency` threads; the copies after their originals) -> judge the dataset-level
rules once -> relay alerts -> finish and write the HTML report. The store records it like a
flow's run, so a result or an alert is stored once whichever mode ran, and the next pass of
either mode skips what this one stored. A fetch is tried as often as in the flow, and a
shard whose processing raised is not done (`pending`), as there. What Prefect adds is not
here: no flow run or Table 1 artifact in a Prefect UI, and no `monitor-run` notice hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from shardwatch.acquire.sources import RemoteShard
from shardwatch.core.passes import PassSummary, ShardOutcome
from shardwatch.pipeline import monitor as stages
from shardwatch.pipeline.resources import Resources
from shardwatch.present.artifacts import build_report
from shardwatch.settings.config import Settings


def _one(res: Resources, shard: RemoteShard, run_id: int) -> ShardOutcome:
    """One shard as the flow's task does it: the fetch tried as often, and an exception
    leaves the shard not done (`pending`) while the pass goes on to judge and relay."""
    try:
        return stages.process(
            res, shard, run_id, fetch_tries=stages.FETCH_TRIES, retry_delay=stages.FETCH_RETRY_DELAY
        )
    except Exception as exc:
        return stages.not_finished(shard, exc)


def _process(res: Resources, shards: Sequence[RemoteShard], run_id: int) -> list[ShardOutcome]:
    """Fetch, check and ingest `shards`, `monitor.concurrency` at a time, in their order."""
    if not shards:
        return []
    workers = min(res.settings.monitor.concurrency, len(shards))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shardwatch") as pool:
        return list(pool.map(lambda shard: _one(res, shard, run_id), shards))


def local_pass(settings: Settings) -> PassSummary:
    """One pass over the configured sources in this process; the summary the flow returns."""
    res = Resources(settings)
    try:
        run_id = stages.start(res)
        try:  # the run row is closed whatever ends the pass
            found = stages.discover(res)
            outcomes = _process(res, found.new, run_id)
            outcomes += _process(res, found.later, run_id)  # copies: after their originals
            stages.judge(res, run_id, outcomes)  # the dataset-level rules, once per pass
            relayed = stages.relay_alerts(res)
            summary = stages.finish(res, run_id, found, outcomes, relayed)
            build_report(settings, summary, res.store)  # the HTML page; no Prefect artifact
        except BaseException as exc:
            stages.abandon(res, run_id, exc)
            raise
        return summary
    finally:
        res.close()
