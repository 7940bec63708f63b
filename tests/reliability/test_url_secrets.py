"""Scenario 18, secrets in URLs (issue 17, Build 5 and 10; docs/reliability.md).

A manifest URL carries user info (`user:pass@word@`, a password holding an unescaped `@`)
and a signed query; the manifest lists shard URLs that inherit that user info and carry
`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`, `token`, `sig`,
`access_token`, or their own user info. A loopback server answers only requests that carry
those credentials (so they were really used), and `shardwatch run` (Prefect, GX validation,
Data Docs, the HTML report) stores the shards and alerts through a Slack-like receiver and
aiosmtpd. Then every output is searched for every canary, and for each half of the
`@`-split password: run, `config show`, `report` (text, markdown, CSV, JSON) and
`alerts list` output, every file under the state folder (the SQLite store, Data Docs, the
HTML and Markdown reports, GX files) and of the Prefect server's home (its database with the
flow runs' parameters and logs), every table of the store (SQLite and PostgreSQL),
every Slack body and every email. Zero hits.

Build 10 too: a database URL, a manifest URL and an SMTP password holding an unescaped `@`
give errors that show no part of the password.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from support.builders import tagged_table, write_shard
from support.prefect_server import PrefectServer
from support.reliability.leaks import LeakWatch
from support.store_checks import run_shardwatch, run_shardwatch_child

from shardwatch.acquire.download import download
from shardwatch.acquire.policy import DownloadError, DownloadPolicy
from shardwatch.core.redact import redact_url
from shardwatch.pipeline.monitor import discover
from shardwatch.pipeline.resources import Resources
from shardwatch.settings.config import load_settings
from shardwatch.store import models as t
from shardwatch.store.database import make_engine

S = "11 URL secrets"


def _tag(kind: str) -> str:
    return f"{kind}{secrets.token_hex(6)}"


@dataclass(frozen=True)
class UrlCanaries:
    """Secrets that only ever travel inside URLs; each unique to this module's run."""

    user: str = field(default_factory=lambda: _tag("cuser"))
    pass_a: str = field(default_factory=lambda: _tag("cpwa"))  # the password is a@b
    pass_b: str = field(default_factory=lambda: _tag("cpwb"))
    manifest_token: str = field(default_factory=lambda: _tag("cmtok"))
    amz_signature: str = field(default_factory=lambda: _tag("camzsig"))
    amz_credential: str = field(default_factory=lambda: _tag("camzcred"))
    amz_token: str = field(default_factory=lambda: _tag("camztok"))
    token: str = field(default_factory=lambda: _tag("ctoken"))
    sig: str = field(default_factory=lambda: _tag("csig"))
    access_token: str = field(default_factory=lambda: _tag("caccess"))
    user_b: str = field(default_factory=lambda: _tag("cuserb"))
    pass_b_a: str = field(default_factory=lambda: _tag("cpwba"))
    pass_b_b: str = field(default_factory=lambda: _tag("cpwbb"))

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(str(v) for v in vars(self).values())

    @property
    def password(self) -> str:
        return f"{self.pass_a}@{self.pass_b}"

    @property
    def password_b(self) -> str:
        return f"{self.pass_b_a}@{self.pass_b_b}"


C = UrlCanaries()


@dataclass
class SignedServer:
    """Serves `files` only to requests with the expected Basic credentials and query."""

    files: dict[str, tuple[bytes, tuple[str, str], dict[str, str]]] = field(default_factory=dict)
    seen: list[tuple[str, bool]] = field(default_factory=list)  # (path, credentials ok)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                entry = server.files.get(parts.path)
                if entry is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, (user, password), query = entry
                basic = base64.b64encode(f"{user}:{password}".encode()).decode()
                got = {k: v[0] for k, v in parse_qs(parts.query).items()}
                ok = self.headers.get("Authorization") == f"Basic {basic}" and all(
                    got.get(k) == v for k, v in query.items()
                )
                server.seen.append((parts.path, ok))
                self.send_response(200 if ok else 403)
                payload = body if ok else b""
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def signed(tmp_path: Path) -> Iterator[SignedServer]:
    server = SignedServer()
    folder = tmp_path / "served"
    folder.mkdir()
    a = write_shard(tagged_table(60, 30, seed=1), folder, "a.parquet").read_bytes()
    b = write_shard(tagged_table(60, 30, seed=2), folder, "b.parquet").read_bytes()
    amz = {
        "X-Amz-Signature": C.amz_signature,
        "X-Amz-Credential": C.amz_credential,
        "X-Amz-Security-Token": C.amz_token,
    }
    manifest = [
        "a.parquet?" + "&".join(f"{k}={v}" for k, v in amz.items()) + "&X-Amz-Date=20261205",
        f"http://{C.user_b}:{C.password_b}@127.0.0.1:{server.port}/shards/b.parquet"
        f"?token={C.token}&sig={C.sig}",
        f"missing.parquet?access_token={C.access_token}",
    ]
    server.files["/m/manifest.json"] = (
        json.dumps(manifest).encode(),
        (C.user, C.password),
        {"token": C.manifest_token},
    )
    server.files["/m/a.parquet"] = (a, (C.user, C.password), amz)
    server.files["/shards/b.parquet"] = (b, (C.user_b, C.password_b), {"token": C.token})
    yield server
    server.close()


def manifest_url(port: int) -> str:
    return f"http://{C.user}:{C.password}@127.0.0.1:{port}/m/manifest.json?token={C.manifest_token}"


def write_config(
    folder: Path, db: str, manifest: str, webhook: str, smtp_port: int, *, gx: bool
) -> Path:
    cfg = folder / "shardwatch.toml"
    cfg.write_text(f"""
dataset = "signed"
database_url = {json.dumps(db)}
workers = 1
[validation]
enabled = {json.dumps(gx)}
[sources.bucket]
type = "http"
manifest = {json.dumps(manifest)}
[alerts.channels.team]
type = "slack"
webhook_url = {json.dumps(webhook)}
attempts = 1
[alerts.channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "sw@example.org"
recipients = ["curators@example.org"]
attempts = 1
[alerts.channels.screen]
type = "console"
[alerts.rules.nsfw-tag-rate]
min_support = 1
""")
    return cfg


@pytest.mark.unit
def test_redacted_url_keeps_names_and_drops_every_secret() -> None:
    url = (
        f"https://{C.user}:{C.password}@h.example:8443/a.parquet?X-Amz-Signature={C.sig}"
        f"&x={C.token}&{C.access_token}#{C.amz_token}"
    )
    shown = redact_url(url)
    assert shown == (
        "https://REDACTED@h.example:8443/a.parquet?X-Amz-Signature=REDACTED&x=REDACTED&REDACTED"
    )
    # a password cut by an unescaped '/' or '#' is not shown in part either
    for cut in ("/", "#", "?"):
        weird = f"https://{C.user}:{C.pass_a}{cut}{C.pass_b}@h.example/x.parquet"
        assert redact_url(weird) == "https://<unparseable URL>"


@pytest.mark.integration
def test_no_url_secret_reaches_any_output_or_table(
    database_url: str,
    signed: SignedServer,
    slack: Any,
    smtp: Any,
    canaries: Any,
    leaks: LeakWatch,
    figure: Any,
    tmp_path: Path,
    prefect_server: PrefectServer,
) -> None:
    backend = database_url.split(":", 1)[0]
    url = canaries.postgres_url(database_url) if backend == "postgresql" else database_url
    receiver = slack()
    mail, smtp_port = smtp()
    webhook = canaries.webhook_url(receiver.server.server_address[1])
    manifest = manifest_url(signed.port)
    gx = backend == "sqlite"  # GX and Data Docs once: pages do not depend on the database
    cfg = write_config(tmp_path, url, manifest, webhook, smtp_port, gx=gx)
    watch = LeakWatch(C)  # type: ignore[arg-type]  # duck-typed: `values`
    watch.scenario = "url_secrets"
    outputs: dict[str, str] = {}

    def sw(label: str, *args: str) -> Any:
        """`run` as a real process on a Prefect server; the other commands in-process."""
        if args[0] == "run":
            env = prefect_server.env()
            done = run_shardwatch_child(*args, "--config", str(cfg), cwd=tmp_path, **env)
        else:
            done = run_shardwatch(*args, "--config", str(cfg), cwd=tmp_path)
        outputs[f"{label} stdout"], outputs[f"{label} stderr"] = done.stdout, done.stderr
        return done

    started = time.monotonic()
    ran = sw("run", "run")
    took = time.monotonic() - started
    figure(S, f"`shardwatch run` seconds ({backend}, GX {'on' if gx else 'off'})", took)
    assert ran.returncode == 3, ran.stdout + ran.stderr  # missing.parquet: 404
    assert "2 done, 1 quarantined" in ran.stdout, ran.stdout
    # the secrets were used: every request the server answered carried them
    assert ("/m/a.parquet", True) in signed.seen and ("/shards/b.parquet", True) in signed.seen
    assert not [s for s in signed.seen if not s[1]], signed.seen
    # what is shown and stored instead
    shown_a = f"http://REDACTED@127.0.0.1:{signed.port}/m/a.parquet?X-Amz-Signature=REDACTED"
    assert shown_a in ran.stdout
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            uris = set(conn.scalars(select(t.Shard.uri)))
    finally:
        engine.dispose()
    assert len(uris) == 3 and all("REDACTED" in u for u in uris), uris

    assert sw("config show", "config", "show").returncode == 0
    assert '"manifest": "http://REDACTED@127.0.0.1' in outputs["config show stdout"]
    for fmt in ("text", "markdown", "csv", "json"):
        assert sw(f"report {fmt}", "report", "--dataset", "signed", "--format", fmt).returncode == 0
    assert sw("alerts list", "alerts", "list").returncode in (0, 1)
    assert receiver.bodies and mail.messages, "no alert was delivered"
    named = f"127.0.0.1:{signed.port}/m/a.parquet"  # alerts name the shard, secrets cut
    assert any(named in json.dumps(b) for b in receiver.bodies)

    searched = 0
    for check in (watch, leaks):
        for where, text in outputs.items():
            check.text(where, text)
        check.texts("slack bodies", [json.dumps(b) for b in receiver.bodies])
        check.texts("emails", mail.messages)
        files = check.tree("state folder", tmp_path / ".shardwatch")
        # the Prefect server's home: its database holds every flow run's parameters and logs
        files += check.tree("Prefect server home (its database, logs)", prefect_server.home)
        rows = check.database("store", url)
        searched += len(outputs) + len(receiver.bodies) + len(mail.messages) + files
    reports = list((tmp_path / ".shardwatch").rglob("*.html"))
    assert any(p.name.startswith("run-") for p in reports), "no HTML report was written"
    if gx:
        assert (tmp_path / ".shardwatch" / "docs" / "index.html").is_file(), "no Data Docs"
    figure(S, f"HTML pages searched ({backend})", len(reports))
    figure(S, f"items searched ({backend})", searched // 2)
    figure(S, f"store rows searched ({backend})", rows)
    figure(S, f"canary hits ({backend})", len(watch.hits))
    assert watch.hits == []


@pytest.mark.integration
def test_a_password_with_an_unescaped_at_is_never_partly_printed(
    postgres_url: str,
    smtp: Any,
    tmp_path: Path,
    figure: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    debug_log: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    halves = (C.pass_a, C.pass_b)
    printed: list[str] = []
    # a database URL: SQLAlchemy would take `pass_b@127.0.0.1` for the host
    scheme, _, rest = postgres_url.partition("://")
    where = rest.rpartition("@")[2]
    db = f"{scheme}://postgres:{C.password}@{where}"
    for command in (("db", "current"), ("report",), ("db", "upgrade")):
        done = run_shardwatch(*command, cwd=tmp_path, SHARDWATCH_DATABASE_URL=db)
        assert done.returncode != 0
        assert "'@' more than once before the host" in done.stderr, done.stderr
        printed += [done.stdout, done.stderr]
    # a manifest URL whose password holds '@' (nothing listens on port 1), one cut by '/',
    # and a shard download from such a URL: `config show`, the pass's source errors, the
    # download error and every log record
    for manifest in (
        f"http://u:{C.password}@127.0.0.1:1/m.json",
        f"http://u:{C.pass_a}/{C.pass_b}@127.0.0.1:1/m.json",
    ):
        cfg = tmp_path / "shardwatch.toml"
        cfg.write_text(
            f'database_url = "sqlite:///{tmp_path}/s.sqlite"\n[download]\nattempts = 1\n'
            f'[sources.web]\ntype = "http"\nmanifest = {json.dumps(manifest)}\n'
        )
        done = run_shardwatch("config", "show", "--config", str(cfg), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        printed += [done.stdout, done.stderr]
        found = discover(Resources(load_settings(cfg)))
        assert len(found.errors) == 1, found.errors
        printed += found.errors
    policy = DownloadPolicy(allowed_hosts=frozenset({"127.0.0.1:1"}), attempts=1)
    with pytest.raises(DownloadError) as info:
        download(f"http://u:{C.password}@127.0.0.1:1/x.parquet", tmp_path / "x", policy=policy)
    printed += [str(info.value), repr(info.value), caplog.text]
    # an SMTP password holding '@', refused by the server
    _, port = smtp(auth=True)
    cfg = tmp_path / "mail.toml"
    cfg.write_text(
        f'[alerts.channels.mail]\ntype = "email"\nhost = "127.0.0.1"\nport = {port}\n'
        f'security = "none"\nsender = "a@example.org"\nrecipients = ["b@example.org"]\n'
        f'username = "u@example.org"\npassword = {json.dumps(C.password)}\nattempts = 1\n'
    )
    done = run_shardwatch("alerts", "test", "--channel", "mail", "--config", str(cfg), cwd=tmp_path)
    assert done.returncode == 4, done.stdout + done.stderr
    printed += [done.stdout, done.stderr]
    printed.append(debug_log.read_text(errors="replace"))  # this test's DEBUG log
    hits = [h for h in halves if any(h in text for text in printed)]
    figure(S, "error outputs searched for a half of an '@' password", len(printed))
    figure(S, "halves printed", len(hits))
    assert hits == [], [re.sub(r"\s+", " ", p)[:300] for p in printed if any(h in p for h in hits)]
