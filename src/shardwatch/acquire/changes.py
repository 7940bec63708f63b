"""Has a shard changed since it was fetched? For a listing that gives no checksum and no ETag
(a manifest with `size` only), the size alone cannot tell: a file replaced by another of the
same size would be called unchanged. The server's validator, recorded when the shard was
fetched (its ETag, else its Last-Modified; stored in the shard's `etag` column as
`partial.Validator.text()`), is asked about with one conditional request: `If-None-Match` or
`If-Modified-Since`. A 304 (or the same validator on a 200) means unchanged; anything else
means changed, and the shard is fetched again and becomes a new version.

Cost: at most one request per such shard per pass, none when the listing gives a sha256 or
an ETag (those are compared without a request) or when no validator was recorded (a server
that sends neither ETag nor Last-Modified: size and mtime are all there is). The request's
body is never read.
"""

from __future__ import annotations

import logging
import time

from shardwatch.acquire.guard import watched
from shardwatch.acquire.http import HttpClient, Sleep, refuse_status
from shardwatch.acquire.http_listing import HttpListingSource
from shardwatch.acquire.partial import Validator
from shardwatch.acquire.policy import DownloadError, DownloadPolicy, safe_url
from shardwatch.acquire.sources import RemoteShard, Source
from shardwatch.store.shard_versions import StoredShard

logger = logging.getLogger(__name__)


def changed_since(
    url: str, policy: DownloadPolicy, recorded: str | None, *, sleep: Sleep = time.sleep
) -> bool | None:
    """True when the server's file is no longer the one `recorded` (a validator's text)
    names, False when it still is, None when nothing can be asked (no validator recorded) or
    the question failed (logged; the shard is asked again on the next pass)."""
    validator = Validator.parse(recorded)
    if validator is None:
        return None
    try:
        with HttpClient(policy, sleep=sleep) as client:
            return client.retrying(url, lambda: _ask(client, url, validator))
    except DownloadError as exc:
        logger.warning("%s: could not ask whether it changed: %s", safe_url(url), exc.reason)
        return None


def _ask(client: HttpClient, url: str, validator: Validator) -> bool:
    with watched(client.policy):
        response = client.open(url, validator.conditional())
        try:
            if response.status_code == 304:
                return False
            refuse_status(response, url, client.policy)
            # A 200 (or 206): the file changed, or the server ignores conditions; then its
            # validator says which.
            return not validator.seen_in(response.headers)
        finally:
            response.close()


def changed_at_source(source: Source, shard: RemoteShard, stored: StoredShard | None) -> bool:
    """For a shard the listing calls unchanged by size alone (no sha256, no ETag listed),
    ask the server with the validator recorded at its fetch (one conditional request)."""
    if shard.sha256 is not None or shard.etag is not None:
        return False
    if stored is None or not stored.fetched or not isinstance(source, HttpListingSource):
        return False
    return changed_since(shard.request_url, source.policy, stored.etag) is True
