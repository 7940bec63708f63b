"""Pacing: one relay at a time sends to a channel, and never sooner than its next turn.

A relay takes a channel's turn (`alert_channels.holder`, leased until `held_until`: a
crashed relay's turn expires), sends, records `next_send_at` (the end of its send plus the
minimum interval, or the server's Retry-After), and gives the turn back. Every relay, in
any process, reads the same row, so a channel gets at most one message per interval
however many relays run at once. Conditional single-row UPDATEs make taking a turn atomic on
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shardwatch.store import models as t
from shardwatch.store.boundary import translated
from shardwatch.store.database import is_sqlite, session_factory, transaction


@dataclass(frozen=True)
class Turn:
    """A channel's turn, held by this relay: send no sooner than `not_before`."""

    channel: str
    not_before: datetime | None


class ChannelGate:
    """Turns on channels, shared through the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)

    @translated
    def take(self, channel: str, owner: str, now: datetime, lease: timedelta) -> Turn | None:
        """The channel's turn for `lease`, or None while another relay holds it."""
        c = t.AlertChannel
        insert = sqlite_insert if is_sqlite(self.engine) else pg_insert
        with transaction(self.sessions) as s:
            s.execute(insert(c).values(channel=channel).on_conflict_do_nothing())
            taken = s.execute(
                update(c)
                .where(
                    c.channel == channel,
                    or_(c.holder.is_(None), c.holder == owner, c.held_until < now),
                )
                .values(holder=owner, held_until=now + lease)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return Turn(
                channel, _aware(s.scalar(select(c.next_send_at).where(c.channel == channel)))
            )

    @translated
    def renew(
        self,
        turn: Turn,
        owner: str,
        now: datetime,
        lease: timedelta,
        next_send_at: datetime | None = None,
    ) -> bool:
        """Renew the turn (and record when the channel's next message may go); False if it
        was lost: its lease expired and another relay took it."""
        values: dict[str, object] = {"held_until": now + lease}
        if next_send_at is not None:
            values["next_send_at"] = next_send_at
        return self._set(turn.channel, owner, **values)

    @translated
    def give_back(self, turn: Turn, owner: str, next_send_at: datetime | None = None) -> None:
        """Release the turn (recording when the channel's next message may go)."""
        values: dict[str, object] = {"holder": None, "held_until": None}
        if next_send_at is not None:
            values["next_send_at"] = next_send_at
        self._set(turn.channel, owner, **values)

    def _set(self, channel: str, owner: str, **values: object) -> bool:
        c = t.AlertChannel
        with transaction(self.sessions) as s:
            result = s.execute(
                update(c).where(c.channel == channel, c.holder == owner).values(**values)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes (stored as UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
