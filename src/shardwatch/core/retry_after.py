"""Retry-After: the seconds a server asks a client to wait, from the header's numeric form.

The one parser of `Retry-After` in shardwatch: downloads, listings and Slack deliveries all
read the header through it. Only the delta-seconds form is understood (an HTTP date is
treated as unusable); negative values count as 0, and the wait is capped, so a server cannot
hold a worker for an hour.
"""

from __future__ import annotations


def retry_after(value: str | None, cap: float) -> float | None:
    """Seconds from a numeric Retry-After header, between 0 and `cap`; None when the header
    is absent or not a number (NaN included), so the caller falls back to its own wait."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return float(min(cap, max(0.0, seconds)))
