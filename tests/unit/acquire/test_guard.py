"""The address guard: no connection without a checked address, and private IPv4 addresses
refused behind every IPv6 form that embeds one."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from shardwatch.acquire import guard
from shardwatch.acquire.guard import _refusal
from shardwatch.acquire.http import fetch_bytes
from shardwatch.acquire.policy import DownloadError, DownloadPolicy

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:0:7f00:1",  # IPv4-translated (SIIT)
        "64:ff9b::a00:5",  # NAT64 well-known prefix -> 10.0.0.5
        "64:ff9b:1::a00:5",  # NAT64 local-use prefix
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254 (cloud metadata)
        "::7f00:1",  # IPv4-compatible ::127.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
        "::1",
        "fe80::1",
    ],
)
def test_private_ipv4_behind_an_ipv6_form_is_refused(address: str) -> None:
    assert _refusal(ipaddress.ip_address(address), private_ok=False) is not None


@pytest.mark.parametrize("address", ["2606:4700::1111", "64:ff9b::808:808", "::ffff:0:808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert _refusal(ipaddress.ip_address(address), private_ok=False) is None


@pytest.mark.usefixtures("no_proxy")
def test_a_failed_lookup_never_connects_unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard's lookup fails (a SERVFAIL an attacker's DNS can give once): the request
    fails as a name-resolution error instead of letting urllib3 look the name up again and
    connect without the address check."""
    lookups: list[str] = []
    connects: list[Any] = []

    def failing(host: str, *args: Any, **kwargs: Any) -> Any:
        lookups.append(host)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    def no_connect(*args: Any, **kwargs: Any) -> Any:
        connects.append(args)
        raise AssertionError("connected without a checked address")

    monkeypatch.setattr(guard.socket, "getaddrinfo", failing)
    monkeypatch.setattr("urllib3.util.connection.create_connection", no_connect)
    policy = DownloadPolicy(allowed_hosts=frozenset({"data.example"}), attempts=1, backoff=0.0)
    with pytest.raises(DownloadError):
        fetch_bytes("http://data.example/m.json", policy=policy)
    assert lookups and connects == []
