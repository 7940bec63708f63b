"""acquire.http's credential rule as a function: which redirect targets may carry the
credentials of a request to the first URL."""

from __future__ import annotations

import pytest

from shardwatch.acquire.http import keeps_credentials

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("first", "target", "kept"),
    [
        ("https://hub.example/a", "https://hub.example/b?x=1", True),  # same origin
        ("https://hub.example/a", "https://HUB.example.:443/b", True),  # same, spelled otherwise
        ("http://hub.example/a", "https://hub.example/b", True),  # upgrade on default ports
        ("http://hub.example:80/a", "https://hub.example:443/b", True),
        ("https://hub.example/a", "http://hub.example/b", False),  # downgrade
        ("http://hub.example:8080/a", "https://hub.example/b", False),  # not default ports
        ("http://hub.example/a", "https://hub.example:8443/b", False),
        ("https://hub.example/a", "https://hub.example:8443/b", False),  # another port
        ("https://hub.example/a", "https://cdn.hub.example/b", False),  # another host
        ("http://127.0.0.1:8000/a", "http://127.0.0.1:8001/b", False),
    ],
)
def test_credentials_stay_on_the_first_origin(first: str, target: str, kept: bool) -> None:
    assert keeps_credentials(first, target) is kept
