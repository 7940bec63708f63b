"""`shardwatch alerts ...`: list alerts and their notices, relay, retry and test channels."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt
from shardwatch.cli.outcomes import Failed, Outcome, command
from shardwatch.cli.store_access import db_error, require_store_file, store_engine
from shardwatch.core.names import shown

if TYPE_CHECKING:  # the store stack (SQLAlchemy, Alembic) loads only in commands that use it
    from shardwatch.alerting.relay import RelayResult
    from shardwatch.settings.config import Settings
    from shardwatch.store.database import StoreEngine
    from shardwatch.store.outbox import Outbox

app = typer.Typer(help="Alert channels and messages.", no_args_is_help=True, rich_markup_mode=None)


def relay(settings: Settings, engine: StoreEngine, quiet_stdout: bool) -> RelayResult:
    """One relay pass over every configured channel; the outcome is printed on stderr."""
    from shardwatch.alerting.relay import relay_configured
    from shardwatch.store.errors import StoreFailed

    console = sys.stderr.write if quiet_stdout else None
    try:
        result = relay_configured(engine, settings.alerts, console=console)
    except StoreFailed as exc:
        raise db_error(exc, settings) from None
    typer.echo(result.summary(), err=True)
    return result


def _delivered(result: RelayResult) -> Outcome:
    return Outcome.UNDELIVERED if result.failed else Outcome.OK


def _outbox(settings: Settings) -> tuple[StoreEngine, Outbox]:
    """The store's outbox (migrated); a missing SQLite file is a usage error."""
    from shardwatch.store.database import upgrade
    from shardwatch.store.errors import StoreFailed
    from shardwatch.store.outbox import Outbox

    require_store_file(settings)
    engine = store_engine(settings)
    try:
        upgrade(engine)
    except StoreFailed as exc:
        raise db_error(exc, settings) from None
    return engine, Outbox(engine)


@command(app, "list")
def alerts_list(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only this dataset (default: all).")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include resolved alerts (default: open or dead).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """List alerts: breaching ones, and any whose notice was dead-lettered (with the reason),
    each with its notices per channel (pending, sending, sent, dead or cancelled)."""
    from shardwatch.store.errors import StoreFailed

    settings = options.load(config)
    _, outbox = _outbox(settings)
    try:
        views = outbox.alerts(dataset, include_resolved=show_all)
        counts = outbox.counts()
    except StoreFailed as exc:
        raise db_error(exc, settings) from None
    if as_json:
        payload = {"alerts": [asdict(v) for v in views], "notices": counts}
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        return
    for v in views:
        state = "BREACHING" if v.breaching else "resolved"
        observed = "n/a" if v.observed is None else f"{v.observed:.6g}"
        detail = f" ({v.detail})" if v.detail else ""
        line = (
            f"#{v.id} {state} {v.severity} {v.rule} on {v.dataset} / {v.scope}: "
            f"observed {observed}{detail}, threshold {v.threshold}; "
            f"since {v.opened_at:%Y-%m-%d %H:%M}"
        )
        typer.echo(shown(line))
        for d in v.deliveries:
            error = f": {d.last_error}" if d.last_error and d.state != "sent" else ""
            tries = f", {d.attempts} attempt(s)" if d.attempts else ""
            status = d.state.upper()
            typer.echo(shown(f"    notice {d.id} {d.kind} -> {d.channel}: {status}{tries}{error}"))
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"
    typer.echo(f"{len(views)} alert(s) shown; notices: {summary}")


@command(app, "relay")
def alerts_relay(config: ConfigOpt = None) -> Outcome:
    """Send every due notice now (one message per channel); exit 4 if any was not delivered."""
    settings = options.load(config)
    engine, _ = _outbox(settings)
    return _delivered(relay(settings, engine, False))


@command(app, "retry")
def alerts_retry(
    notice: Annotated[
        list[int] | None,
        typer.Option("--id", help="A dead notice's id (from `alerts list`); repeatable."),
    ] = None,
    config: ConfigOpt = None,
) -> Outcome:
    """Re-queue dead-lettered notices (all, or those given) and relay them now; exit 4 if
    any is still not delivered."""
    from shardwatch.store.errors import StoreFailed

    settings = options.load(config)
    engine, outbox = _outbox(settings)
    try:
        count = outbox.retry(notice or None)
    except StoreFailed as exc:
        raise db_error(exc, settings) from None
    typer.echo(f"re-queued {count} dead notice(s)")
    return _delivered(relay(settings, engine, False))


@command(app, "test")
def alerts_test(
    channel: Annotated[str, typer.Option("--channel", help="A channel named in [alerts].")],
    config: ConfigOpt = None,
) -> None:
    """Send a test message through one configured channel; exit 4 if it is not delivered.

    Channels are `[alerts.channels.<name>]` tables in shardwatch.toml (type slack, email,
    console or file). Secrets (webhook URL, SMTP password) are never printed.
    """
    from shardwatch.alerting.channels import build_channel
    from shardwatch.alerting.message import DeliveryError, probe_message

    settings = options.load(config)
    channels = settings.alerts.channels
    if channel not in channels:
        known = ", ".join(sorted(channels)) or "none"
        raise Failed(Outcome.BAD_USAGE, f"no alert channel {channel!r} (configured: {known})")
    spec = channels[channel]
    try:
        build_channel(channel, spec).send(probe_message(settings.dataset))
    except DeliveryError as exc:
        kind = "permanent" if exc.permanent else "transient"
        message = f"channel {channel!r}: not delivered ({kind}): {exc}"
        raise Failed(Outcome.UNDELIVERED, message) from None
    typer.echo(f"sent a test message to channel {channel!r} ({spec.type})")
