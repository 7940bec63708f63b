"""The one credential rule of acquire.http, through every entry point against real loopback
servers (tests/support/loopback.py `GetServer`; two servers on 127.0.0.1 are two origins):
a Hub tree listing, a Hub download, `download` and `fetch_bytes` keep `Authorization` on a
redirect within the first URL's origin, never send it to another origin, and do not send it
again once a hop has left that origin, even back on the first one."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from support.loopback import CANARY, GetServer, Reply

from shardwatch.acquire.download import download
from shardwatch.acquire.http import fetch_bytes
from shardwatch.acquire.hub import HubRepo, HuggingFaceSource
from shardwatch.acquire.policy import DownloadPolicy
from shardwatch.acquire.sources import RemoteShard

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_proxy")]

BEARER = f"Bearer {CANARY}"
TREE = "/api/datasets/org/ds/tree/main?recursive=true"
RESOLVE = "/datasets/org/ds/resolve/main/a.parquet"
PAGE = json.dumps([{"type": "file", "path": "a.parquet", "size": 4, "oid": "a" * 40}]).encode()
BODY = b"PAR1"

# An entry point: (first server, other server, tmp_path) -> the path it asks the first for.
Client = Callable[[GetServer, GetServer, Path], str]



@pytest.fixture
def first() -> Iterator[GetServer]:
    server = GetServer()
    yield server
    server.close()


@pytest.fixture
def other() -> Iterator[GetServer]:
    server = GetServer()
    yield server
    server.close()


def _policy(first: GetServer, other: GetServer, **headers: str) -> DownloadPolicy:
    allowed = frozenset({first.origin, other.origin})
    return DownloadPolicy(allowed_hosts=allowed, attempts=1, backoff=0.0, headers=headers)


def _hub(first: GetServer, other: GetServer) -> HuggingFaceSource:
    repo = HubRepo("org/ds", endpoint=first.base, extra_hosts=frozenset({other.origin}))
    policy = DownloadPolicy(allowed_hosts=repo.hosts, attempts=1, backoff=0.0)
    return HuggingFaceSource("hub", repo, token=SecretStr(CANARY), policy=policy)


def hub_listing(first: GetServer, other: GetServer, tmp_path: Path) -> str:
    [shard] = _hub(first, other).list()
    assert shard.uri == first.base + RESOLVE
    return TREE


def hub_download(first: GetServer, other: GetServer, tmp_path: Path) -> str:
    shard = RemoteShard("hub", first.base + RESOLVE, "a.parquet", None, None, None)
    assert _hub(first, other).fetch(shard, tmp_path / "cache").path.read_bytes() == BODY
    return RESOLVE


def plain_download(first: GetServer, other: GetServer, tmp_path: Path) -> str:
    policy = _policy(first, other, Authorization=BEARER)
    assert download(first.base + "/file", tmp_path / "f", policy=policy).size == len(BODY)
    return "/file"


def small_get(first: GetServer, other: GetServer, tmp_path: Path) -> str:
    policy = _policy(first, other, Authorization=BEARER)
    assert fetch_bytes(first.base + "/manifest", policy=policy)[0] == BODY
    return "/manifest"


CLIENTS: dict[str, tuple[Client, bytes]] = {
    "hub listing": (hub_listing, PAGE),
    "hub download": (hub_download, BODY),
    "download": (plain_download, BODY),
    "fetch_bytes": (small_get, BODY),
}
ASKED = {"hub listing": TREE, "hub download": RESOLVE, "download": "/file",
         "fetch_bytes": "/manifest"}


def _redirect(location: str) -> Reply:
    return Reply(302, b"", {"Location": location})


@pytest.mark.parametrize("client", CLIENTS)
def test_a_redirect_within_the_origin_keeps_the_credentials(
    client: str, first: GetServer, other: GetServer, tmp_path: Path
) -> None:
    run, body = CLIENTS[client]
    first.routes[ASKED[client]] = _redirect("/moved")  # relative: the same origin
    first.routes["/moved"] = Reply(200, body)
    assert run(first, other, tmp_path) == ASKED[client]
    assert [r.path for r in first.seen] == [ASKED[client], "/moved"]
    assert all(r.headers.get("authorization") == BEARER for r in first.seen)
    assert other.seen == []


@pytest.mark.parametrize("client", CLIENTS)
def test_a_redirect_to_another_origin_drops_the_credentials_for_the_rest_of_the_chain(
    client: str, first: GetServer, other: GetServer, tmp_path: Path
) -> None:
    run, body = CLIENTS[client]
    first.routes[ASKED[client]] = _redirect(other.base + "/elsewhere")
    other.routes["/elsewhere"] = _redirect(first.base + "/back")  # and back to the first
    first.routes["/back"] = Reply(200, body)
    run(first, other, tmp_path)
    asked, back = first.seen
    (elsewhere,) = other.seen
    assert asked.headers.get("authorization") == BEARER
    assert "authorization" not in elsewhere.headers
    assert CANARY not in json.dumps(elsewhere.headers)
    assert back.path == "/back" and "authorization" not in back.headers  # not given back


@pytest.mark.parametrize("client", CLIENTS)
def test_a_cookie_a_server_sets_is_never_sent_back(
    client: str, first: GetServer, other: GetServer, tmp_path: Path
) -> None:
    """Cookies would follow a host to any port or scheme and come back after the chain left
    the origin: the client keeps none."""
    run, body = CLIENTS[client]
    cookie = {"Location": other.base + "/elsewhere", "Set-Cookie": f"s={CANARY}; Path=/"}
    first.routes[ASKED[client]] = Reply(302, b"", cookie)
    other.routes["/elsewhere"] = _redirect(first.base + "/back")
    first.routes["/back"] = Reply(200, body)
    run(first, other, tmp_path)
    seen = first.seen + other.seen
    assert len(seen) == 3 and all("cookie" not in r.headers for r in seen), seen


@pytest.mark.parametrize("client", CLIENTS)
def test_netrc_credentials_are_never_sent(
    client: str,
    first: GetServer,
    other: GetServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """~/.netrc names a host, not an origin: its login would reach the host on any port, and
    replace the Hub token. The client sends only what the credential rule lets through."""
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login user password {CANARY}x\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    run, body = CLIENTS[client]
    first.routes[ASKED[client]] = _redirect(other.base + "/elsewhere")
    other.routes["/elsewhere"] = Reply(200, body)
    run(first, other, tmp_path)
    (asked,), (elsewhere,) = first.seen, other.seen
    assert asked.headers.get("authorization") == BEARER  # the configured credential, only
    assert "authorization" not in elsewhere.headers


def test_url_user_info_is_still_sent_as_basic_auth(first: GetServer, tmp_path: Path) -> None:
    import base64

    first.routes["/m"] = Reply(200, BODY)
    policy = DownloadPolicy(allowed_hosts=frozenset({first.origin}), attempts=1, backoff=0.0)
    url = f"http://u:{CANARY}@{first.origin}/m"
    assert fetch_bytes(url, policy=policy)[0] == BODY
    (asked,) = first.seen
    want = "Basic " + base64.b64encode(f"u:{CANARY}".encode()).decode()
    assert asked.headers.get("authorization") == want
