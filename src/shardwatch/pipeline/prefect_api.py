"""Prefect API: `shardwatch serve` needs a running Prefect server (or Prefect Cloud) to keep
its schedule; without one Prefect would start a temporary server that cannot schedule runs
and sit idle. So `serve` checks first and refuses with one line (exit 2) instead.
"""

from __future__ import annotations

START_HINT = (
    "start one with `prefect server start` and set "
    "PREFECT_API_URL=http://127.0.0.1:4200/api (or use a Prefect profile / Prefect Cloud)"
)


class ApiUnavailable(Exception):
    """No Prefect API is configured, or it does not answer; the message is one line."""


def require_api(timeout: float = 5.0) -> str:
    """The configured Prefect API URL, once it answers `/health`; else `ApiUnavailable`."""
    import httpx
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ApiUnavailable(f"shardwatch serve needs a Prefect server: {START_HINT}")
    shown = url.split("@")[-1] if "@" in url else url  # never print credentials in a URL
    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise ApiUnavailable(
            f"the Prefect API at {shown} does not answer ({type(exc).__name__}): {START_HINT}"
        ) from None
    if response.status_code in (401, 403):
        return url  # Prefect Cloud or an authenticated server: it is there
    if response.status_code != 200:
        raise ApiUnavailable(
            f"the Prefect API at {shown} answered {response.status_code} to /health: {START_HINT}"
        )
    return url
