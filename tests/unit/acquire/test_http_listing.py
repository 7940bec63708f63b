"""An HTTP listing source refuses a manifest URL that is not http(s) without echoing it (a
URL without `://` is not redacted, and it may hold a password)."""

from __future__ import annotations

import pytest

from shardwatch.acquire.http_listing import HttpListingSource
from shardwatch.acquire.policy import DownloadPolicy

pytestmark = pytest.mark.unit

SECRET = "hunter2-manifest"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (f"user:{SECRET}@data.example/m.json", "not scheme 'user'"),
        (f"ftp://user:{SECRET}@data.example/m.json", "not scheme 'ftp'"),
        ("data.example/m.json", "not no scheme (http:// or https://)"),
    ],
)
def test_a_manifest_url_that_is_not_http_is_refused_without_echoing_it(url: str, said: str) -> None:
    policy = DownloadPolicy(allowed_hosts=frozenset({"data.example"}))
    with pytest.raises(ValueError) as info:
        HttpListingSource("web", url, policy=policy)
    message = str(info.value)
    assert message.startswith("manifest URL must be http(s)") and said in message
    assert SECRET not in message and "data.example" not in message
