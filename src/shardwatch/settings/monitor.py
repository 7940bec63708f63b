"""Monitor settings: `[monitor]`, the flow's concurrency, task runner and schedule."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shardwatch.settings.base import StrictModel


class MonitorSettings(StrictModel):
    """The monitor flow: concurrency, task runner and schedule."""

    concurrency: int = Field(
        default=2,
        ge=1,
        description="Shards processed at once: a rolling queue submits the next shard as soon "
        "as one finishes. No fixed cap; in practice bounded by memory (a 12.9M-row shard "
        "takes about 0.8 GB to scan, 1.8 GB with validation, per shard in flight), cores, "
        "and database connections (one per shard in flight, per process: "
        "infra/README.md). With Dask, more than the cluster's threads only queues.",
    )
    task_runner: Literal["thread", "dask"] = Field(
        default="thread", description="`dask` fans shards out over a Dask cluster."
    )
    dask_address: str | None = Field(
        default=None, description="Scheduler of an existing Dask cluster (default: a local one)."
    )
    schedule: str = Field(default="0 * * * *", description="Cron schedule of `shardwatch serve`.")
