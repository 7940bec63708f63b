"""Flow hooks: the final Prefect state of a monitor pass, and a notice when a run does not
complete.

State semantics (docs/monitoring.md, "Scheduled monitoring on a Prefect server"):
- `Completed`: every new or changed shard was stored and every source was listed.
- `Failed`, message "run N: ..., S source(s) not listed; K shard(s) failed": the pass went
  through, but a shard failed or was quarantined, a shard was left not done (`busy` under
  another claim, `lost`, or `pending`: its task never returned, "N not done"), a source
  could not be listed, or validation could not run for a shard ("validation could not run
  for V shard(s)"). The result (the `PassSummary`) is kept, so `shardwatch run` still
  prints it.
- `Failed` from an exception, or `Crashed` (the process was terminated, e.g. SIGTERM): the
  pass did not finish.

Whenever a run ends `Failed` or `Crashed`, `notify_unfinished` sends a `monitor-run` notice
straight to every configured channel (not through the outbox: the store may be what
failed). The notice names the dataset, the flow run and the state; its detail is the pass
summary or the exception's type, never an exception text (which may hold a local path or a
URL with a password). A process killed with SIGKILL runs no hook: Prefect then marks the run
`Crashed` through the worker or `serve` that started it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from prefect.states import Completed, Failed

from shardwatch.core.passes import PassSummary

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun, State

    from shardwatch.settings.config import Settings

log = logging.getLogger(__name__)

RULE = "monitor-run"


def final_state(summary: PassSummary) -> State[Any]:
    """`Completed` when everything was stored, listed and validated, else `Failed` with the
    counts (the summary line already names shards not done, sources not listed and
    validations that could not run)."""
    message = summary.line()
    if summary.failed:
        message += f"; {summary.failed} shard(s) failed"
    bad = summary.failed or summary.not_done or summary.source_errors
    if bad or summary.validation_errors:
        return Failed(message=message, data=summary)
    return Completed(message=message, data=summary)


def _detail(state: State[Any]) -> tuple[str, int | None]:
    """What went wrong, safe to send: the pass summary, or an exception's type only."""
    try:
        result = state.result(raise_on_failure=False)
    except BaseException as exc:  # a crashed run's result may itself raise
        return f"stopped by {type(exc).__name__}", None
    if isinstance(result, PassSummary):
        return (state.message or result.line()).splitlines()[0], result.run_id
    if isinstance(result, BaseException):
        return f"stopped by {type(result).__name__}", None
    return "stopped", None


def unfinished_message(settings: Settings, flow_run_name: str, state: State[Any]) -> Any:
    """The notice for a run that ended in `state` (a `message.Message`)."""
    from shardwatch.alerting.message import Message
    from shardwatch.core.alert_items import AlertItem

    detail, run_id = _detail(state)
    crashed = state.is_crashed()
    status = state.name or state.type.value.title()
    item = AlertItem(
        rule=RULE,
        severity="critical" if crashed or run_id is None else "warning",
        dataset=settings.dataset,
        scope=f"flow run {flow_run_name}",
        observed=status,
        threshold="Completed",
        run_id=run_id,
        detail=detail,
    )
    verb = "crashed" if crashed else "did not complete"
    return Message(title=f"shardwatch: a monitor run of {settings.dataset} {verb}", items=(item,))


def send_to_channels(settings: Settings, message: Any) -> list[str]:
    """Send `message` to every configured channel; the names of those that took it."""
    from shardwatch.alerting.channels import build_channel
    from shardwatch.alerting.message import DeliveryError

    sent = []
    for name, spec in settings.alerts.channels.items():
        try:
            build_channel(name, spec).send(message)
        except DeliveryError as exc:
            log.warning("monitor-run notice not delivered to %s: %s", name, exc.reason)
        except Exception as exc:  # never let a hook hide the run's own state
            log.warning("monitor-run notice not delivered to %s: %s", name, type(exc).__name__)
        else:
            sent.append(name)
    return sent


def notify_unfinished(flow: Any, flow_run: FlowRun, state: State[Any]) -> None:
    """Prefect `on_failure` / `on_crashed` hook of the monitor flow."""
    from shardwatch.settings.config import ConfigError, load_settings

    config = (flow_run.parameters or {}).get("config")
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        log.error("no monitor-run notice: the settings do not load (%s)", exc)
        return
    if not settings.alerts.enabled:
        return
    message = unfinished_message(settings, flow_run.name, state)
    sent = send_to_channels(settings, message)
    log.warning("flow run %s ended %s; notice sent to %s", flow_run.name, state.name, sent)
