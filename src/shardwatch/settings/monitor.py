"""Monitor settings: `[monitor]`, the flow's concurrency, task runner and schedule."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shardwatch.settings.base import StrictModel


class MonitorSettings(StrictModel):
    """The monitor flow: concurrency, task runner and schedule."""

    concurrency: int = Field(default=2, ge=1, le=64, description="Shards processed at once.")
    task_runner: Literal["thread", "dask"] = Field(
        default="thread", description="`dask` fans shards out over a Dask cluster."
    )
    dask_address: str | None = Field(
        default=None, description="Scheduler of an existing Dask cluster (default: a local one)."
    )
    schedule: str = Field(default="0 * * * *", description="Cron schedule of `shardwatch serve`.")
