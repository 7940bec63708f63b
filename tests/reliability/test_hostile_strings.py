"""Scenario 3, hostile strings (docs/reliability.md): `<script>`, `<!channel>`, `'; DROP
TABLE`, `' OR '1'='1`, console markup, NUL bytes, invalid UTF-8 and a 1 MiB caption, in
captions, URLs, text ids, shard file names, the dataset name, lexicon terms, URL hosts and a
rule's label, run through `shardwatch ingest` (GX validation and Data Docs, alerts to a
Slack-like receiver and aiosmtpd), the pass report page, `report` (JSON, paper, domains),
`export-flagged --with-text` and `alerts list`, on SQLite and on PostgreSQL.

- **Stored verbatim where stored.** The store keeps names (dataset, shard URIs, terms,
  domains), never captions; they are read back from the tables and the CLI byte for byte.
  Captions, URLs and ids are kept only in a `--with-text` export, verbatim (invalid UTF-8 as
  `*_raw` bytes, NULs and the 1 MiB caption whole). A name the store could not keep
  verbatim on both databases (a NUL, which PostgreSQL text cannot hold; undecodable file
  name bytes; over-long) is refused with the reason and the run goes on: never cut, never
  replaced (shardwatch/core/names.py).
- **Never raw in HTML or Slack text.** Every HTML page written (Data Docs, index, the pass
  report), every Slack body and the email's HTML part: no raw payload, the escaped form
  where the name is shown. Canaries in captions, URL paths and text ids show up nowhere
  but the `--with-text` export (not in output, messages, pages, GX files or tables).
- **No SQL injection.** The payloads in every user-controlled value that reaches SQL leave
  every table and row count as it was and match nothing else; a static scan of src/ and db/
  fails on any SQL built from strings that is not on the allow-list below.
"""

from __future__ import annotations

import ast
import email
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Engine, inspect, select
from support.builders import laion_schema, rows_to_table, tagged_table, write_shard
from support.loopback import LoopbackController
from support.reliability.leaks import Canaries, LeakWatch
from support.store_checks import ALL_TABLES, run_shardwatch, subprocess_env, table_counts

from shardwatch.demo.run import serve_folder
from shardwatch.export.flagged import ExportError, ExportRequest
from shardwatch.export.rule_names import UnknownRule
from shardwatch.pipeline.export import export_flagged
from shardwatch.pipeline.monitor import PassSummary, ShardOutcome, discover, process
from shardwatch.pipeline.resources import Resources
from shardwatch.present.artifacts import build_report
from shardwatch.settings.config import ConfigError, load_settings
from shardwatch.store import models as t
from shardwatch.store.database import make_engine
from shardwatch.store.domain_report import domain_report
from shardwatch.store.drift import shard_drift, shard_rates
from shardwatch.store.errors import UnknownDataset
from shardwatch.store.export_queries import done_shards
from shardwatch.store.outbox import Outbox
from shardwatch.store.report import dataset_report
from shardwatch.store.repository import ResultStore

S = "3 hostile strings"
REPO = Path(__file__).resolve().parents[2]

SCRIPT = "<script>alert(1)</script>"
MENTION = "<!channel>"
DROP = "'; DROP TABLE shards; --"
OR_TRUE = "' OR '1'='1"
MARKUP = "[/] [bold]x"  # rich console markup: a crash, or a swallowed tag, if interpreted
IMG = "<img src=x onerror=alert(1)>"
DATASET = f"{SCRIPT} {MENTION} {DROP} {OR_TRUE} {MARKUP}"
TERMS = (SCRIPT, MENTION, DROP, OR_TRUE)  # watched terms of the `hostile` lexicon
LABEL = f"{SCRIPT}{MENTION}"  # a rule's tag label
DOMAIN = "rock&roll.com"  # '&' is the one HTML/Slack-special character a host may hold
RAW = (SCRIPT, MENTION, IMG)  # what must never appear raw in HTML or Slack text
INJECTIONS = (
    DROP,
    OR_TRUE,
    "x'); DELETE FROM datasets; --",
    '" OR ""="',
    "1 OR 1=1",
    "%",
    "_",
    "\\",
    "*/ SELECT 1 /*",
)
CAPTION_CANARY = f"CAPTIONCANARY{secrets.token_hex(4)}"  # in captions only
URL_CANARY = f"URLCANARY{secrets.token_hex(4)}"  # in URL paths only
ID_CANARY = f"IDCANARY{secrets.token_hex(4)}"  # in text ids only
MIB = 1 << 20


# --- shards -------------------------------------------------------------------------------
def _row(sample_id: Any, url: Any, text: Any, tag: str = "UNLIKELY") -> dict[str, Any]:
    filler = {"HEIGHT": 64.0, "WIDTH": 64.0, "LICENSE": "?", "similarity": 0.35}
    return {"SAMPLE_ID": sample_id, "URL": url, "TEXT": text, "NSFW": tag, **filler}


def big_caption() -> str:
    """Exactly 1 MiB of UTF-8: every payload, NULs, a keyword; the canary at the end."""
    unit = f"{SCRIPT} {MENTION} {DROP} {OR_TRUE} \x00 hot "
    tail = f" {CAPTION_CANARY}"
    body = unit * (MIB // len(unit) + 1)
    return body[: MIB - len(tail)] + tail


def text_shard() -> pa.Table:
    """String columns (text ids): every payload in captions, URLs and ids; every caption
    holds a keyword, so every row is in the keyword-NSFW export."""
    values = (SCRIPT, MENTION, DROP, OR_TRUE, MARKUP, IMG, "nul\x00byte", "tab\tnew\nline")
    rows = []
    for i in range(24):
        value = values[i % len(values)]
        caption = f"{value} hot {TERMS[i % 4]} {CAPTION_CANARY}"
        url = f"https://cdn.{DOMAIN}/{URL_CANARY}/{value}/{i}.jpg?q={DROP}"
        rows.append(
            _row(f"{value}{ID_CANARY}{i}", url, caption, "NSFW" if i % 6 == 0 else "UNLIKELY")
        )
    rows.append(_row(SCRIPT, f"http://[{SCRIPT}\x00]/{URL_CANARY}.jpg", f"xxx {CAPTION_CANARY}"))
    rows.append(_row(SCRIPT, f"http://[{'a' * 300}]/{URL_CANARY}.jpg", f"porn {CAPTION_CANARY}"))
    rows.append(_row(f"big{ID_CANARY}", f"javascript:{SCRIPT}//{URL_CANARY}", big_caption()))
    schema = laion_schema().set(0, pa.field("SAMPLE_ID", pa.string()))
    return rows_to_table(rows, schema)


def binary_shard() -> pa.Table:
    """Binary URL and TEXT columns with invalid UTF-8 (and the payloads as bytes)."""
    pairs = [
        (b"\xff\xfe <script> invalid porn \xc3", b"https://cdn.rock&roll.com/\xff\xfe.jpg"),
        (f"{SCRIPT} sex".encode(), f"https://x.example/{URL_CANARY}/{MENTION}.jpg".encode()),
        (f"{DROP} xxx \x00".encode(), b"http://x.example/\xc3\x28/rape.jpg"),
        (f"adult {CAPTION_CANARY} \xe9".encode("latin-1"), b"\x80\x81"),
    ]
    rows = [_row(float(i), u, c) for i, (c, u) in enumerate(pairs * 3)]
    return rows_to_table(rows, laion_schema(url_type=pa.binary(), text_type=pa.binary()))


TEXT_NAME = f"<script>alert(1)<\\script> {IMG} {MENTION} {OR_TRUE}.parquet"
BINARY_NAME = f"{DROP}.parquet"
BAD_NAME = b"\xff\xfe<script> undecodable.parquet"  # not UTF-8: the store cannot keep it


def write_hostile_shards(folder: Path) -> dict[str, pa.Table]:
    """The shards under `folder`, keyed by the URI the store must keep for each."""
    folder.mkdir()
    tables = {TEXT_NAME: text_shard(), BINARY_NAME: binary_shard()}
    paths = {name: write_shard(table, folder, name) for name, table in tables.items()}
    with open(bytes(folder) + b"/" + BAD_NAME, "wb") as fh:
        pq.write_table(tagged_table(20, 2), fh)
    return {str(paths[name].resolve()): table for name, table in tables.items()}


# --- aiosmtpd that takes the canary SMTP password (the Slack receiver is loopback.py's) ----
@dataclass
class Mailbox:
    password: str
    messages: list[bytes] = field(default_factory=list)
    logins: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"

    def authenticate(self, *args: Any) -> AuthResult:
        auth = args[-1]
        ok = isinstance(auth, LoginPassword) and auth.password == self.password.encode()
        self.logins += ok
        return AuthResult(success=ok)


@pytest.fixture
def mailbox(canaries: Canaries) -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox(canaries.smtp_password)
    controller = LoopbackController(  # on port 0: the OS picks
        box, authenticator=box.authenticate, auth_require_tls=False
    )
    controller.start()
    port = controller.port
    yield box, port
    controller.stop()


def toml(value: Any) -> str:
    """A TOML value: JSON strings and lists are valid TOML (\\uXXXX escapes included)."""
    return json.dumps(value)


def write_config(folder: Path, url: str, webhook: str, smtp_port: int, password: str) -> Path:
    cfg = folder / "shardwatch.toml"
    cfg.write_text(f"""
dataset = {toml(DATASET)}
lexicon = "hostile"
database_url = {toml(url)}
workers = 1
[lexicons.hostile]
extends = "birhane2021"
terms = {toml(list(TERMS))}
[alerts.channels.team]
type = "slack"
webhook_url = {toml(webhook)}
attempts = 1
[alerts.channels.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "sw@example.org"
recipients = ["curators@example.org"]
username = "sw"
password = {toml(password)}
attempts = 1
[alerts.channels.log]
type = "file"
path = ".shardwatch/alerts.jsonl"
[alerts.rules.term-keyword-nsfw-rate]
min_support = 3
[alerts.rules.new-high-risk-domain]
min_support = 3
[alerts.rules.hostile-label]
metric = "nsfw_tag_rate"
label = {toml(LABEL)}
min = 0.5
""")
    return cfg


# --- checks -------------------------------------------------------------------------------
def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def assert_escaped_html(where: str, page: str, *, shows_names: bool) -> None:
    for raw in RAW:
        assert raw not in page, f"raw {raw!r} in {where}"
    if shows_names:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, where
        assert "&lt;!channel&gt;" in page, where


def assert_slack_escaped(body: dict[str, Any]) -> None:
    texts = list(strings_in(body))
    for text in texts:
        for raw in (*RAW, "<!"):
            assert raw not in text, f"raw {raw!r} in a Slack text: {text[:200]!r}"
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), f"a bare '&' in {text[:200]!r}"
    joined = "\n".join(texts)
    assert "&lt;!channel&gt;" in joined and "&lt;script&gt;alert(1)&lt;/script&gt;" in joined
    assert "rock&amp;roll.com" in joined  # the new-domain alert names it, escaped


def html_part(raw: bytes) -> tuple[str, str]:
    mail = email.message_from_bytes(raw, policy=email_policy)
    assert isinstance(mail, EmailMessage)
    html_body, text_body = mail.get_body(("html",)), mail.get_body(("plain",))
    assert html_body is not None and text_body is not None
    return html_body.get_content(), text_body.get_content()


def stored_names(engine: Engine) -> dict[str, set[str]]:
    """What the store keeps of the hostile names, straight from the tables."""
    with engine.connect() as conn:
        return {
            "datasets": set(conn.scalars(select(t.Dataset.name))),
            "uris": set(conn.scalars(select(t.Shard.uri))),
            "terms": set(conn.scalars(select(t.TermMetricsRow.term))),
            "domains": set(conn.scalars(select(t.ShardDomain.domain))),
            "scopes": set(conn.scalars(select(t.Alert.scope))),
        }


def snapshot(engine: Engine) -> tuple[list[str], dict[str, int]]:
    return sorted(inspect(engine).get_table_names()), table_counts(engine)


def expected_export(tables: dict[str, pa.Table]) -> dict[tuple[str, int], dict[str, Any]]:
    """(shard URI, row) -> id, url, url_raw, text, text_raw, straight from the written tables."""

    def text_and_raw(value: Any) -> tuple[Any, Any]:
        if not isinstance(value, bytes):
            return value, None
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError:
            return value.decode("utf-8", "replace"), value

    out = {}
    for uri, table in tables.items():
        for i, row in enumerate(table.to_pylist()):
            url, url_raw = text_and_raw(row["URL"])
            text, text_raw = text_and_raw(row["TEXT"])
            sid = row["SAMPLE_ID"]
            sid = sid if isinstance(sid, str) else str(int(sid))
            out[(uri, i)] = {
                "id": sid,
                "url": url,
                "url_raw": url_raw,
                "text": text,
                "text_raw": text_raw,
            }
    return out


# --- the scenario, end to end --------------------------------------------------------------
@pytest.mark.integration
def test_hostile_values_are_kept_verbatim_escaped_everywhere_and_never_sql(
    database_url: str,
    canaries: Canaries,
    leaks: LeakWatch,
    slack: Any,
    mailbox: tuple[Mailbox, int],
    figure: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = database_url.split(":", 1)[0]
    url = canaries.postgres_url(database_url) if backend == "postgresql" else database_url
    receiver = slack()
    box, smtp_port = mailbox
    webhook = canaries.webhook_url(receiver.server.server_address[1])
    cfg = write_config(tmp_path, url, webhook, smtp_port, canaries.smtp_password)
    tables = write_hostile_shards(tmp_path / "shards")
    outputs: dict[str, str] = {}

    def sw(label: str, *args: str) -> subprocess.CompletedProcess[str]:
        done = run_shardwatch(*args, "--config", str(cfg), cwd=tmp_path)
        outputs[f"{label} stdout"], outputs[f"{label} stderr"] = done.stdout, done.stderr
        return done

    # ingest, alerts relayed to Slack, email and a file; GX validation and Data Docs on
    # SQLite only (pages do not depend on the database; CI time does)
    gx = backend == "sqlite"
    started = time.monotonic()
    ingested = sw(
        "ingest", "ingest", str(tmp_path / "shards"), "--validate" if gx else "--no-validate"
    )
    took = time.monotonic() - started
    gx_state = "GX on" if gx else "GX off"
    figure(S, f"ingest seconds, 3 shards with a 1 MiB caption ({backend}, {gx_state})", took)
    assert ingested.returncode == 3, ingested.stderr  # the undecodable file name, and only it
    assert "run 1: 2 done, 1 failed" in ingested.stdout, ingested.stdout
    refused = "failed   " + str(tmp_path / "shards") + "/\\xff\\xfe<script> undecodable.parquet"
    assert refused in ingested.stderr
    assert "not stored: its name is not valid UTF-8" in ingested.stderr
    for name in tables:
        assert f"done     {name} v1" in ingested.stdout

    engine = make_engine(url)
    res: Resources | None = None
    try:
        # stored verbatim: names read back byte for byte; the rejected shard left no row
        names = stored_names(engine)
        assert names["datasets"] == {DATASET}
        assert names["uris"] == set(tables)
        assert set(TERMS) <= names["terms"]
        assert DOMAIN in names["domains"] and "(invalid host)" in names["domains"]
        assert not any(c in d for d in names["domains"] for c in "<>\x00")
        term_scopes = {s.rpartition("|term:")[2] for s in names["scopes"] if "|term:" in s}
        assert set(TERMS) <= term_scopes
        assert any(s.endswith(f"|domain:{DOMAIN}") for s in names["scopes"])
        before = snapshot(engine)

        shown = sw("report json", "report", "--json", "--dataset", DATASET)
        assert shown.returncode == 0, shown.stderr
        report = json.loads(shown.stdout)
        assert report["dataset"] == DATASET
        assert {s["uri"] for s in report["shards"]} == set(tables)
        assert set(TERMS) <= set(report["total"]["terms"])
        assert report["total"]["rows"] == sum(t.num_rows for t in tables.values())

        if gx:  # console rendering (rich markup in names), the same on either database
            paper = sw("report paper", "report", "--paper", "--dataset", DATASET)
            assert paper.returncode == 0, paper.stderr
            assert f"the paper's method beside lexicon hostile: dataset {DATASET}" in paper.stdout
        domains = sw("report domains", "report", "--domains", "--dataset", DATASET)
        assert domains.returncode == 0, domains.stderr
        assert f"domains of dataset {DATASET} by" in domains.stdout
        assert DOMAIN in domains.stdout and "(invalid host)" in domains.stdout

        out = tmp_path / "remove-list.parquet"
        exported = sw(
            "export",
            "export-flagged",
            "--rule",
            "keyword-nsfw",
            "--with-text",
            "--dataset",
            DATASET,
            "--out",
            str(out),
        )
        assert exported.returncode == 0, exported.stderr
        rows = {(r.pop("shard"), r.pop("row")): r for r in pq.read_table(out).to_pylist()}
        want = expected_export(tables)
        assert rows.keys() == want.keys()
        for key, expected in want.items():
            got = rows[key]
            assert {k: got[k] for k in expected} == expected, key
        big = [r["text"] for r in rows.values() if r["text"] and len(r["text"]) == MIB]
        assert big == [big_caption()]  # 1 MiB, NULs and all: nothing cut
        assert any(r["text_raw"] == b"\xff\xfe <script> invalid porn \xc3" for r in rows.values())

        listed = sw("alerts list", "alerts", "list", "--dataset", DATASET)
        assert listed.returncode == 0, listed.stderr
        assert f"on {DATASET} /" in listed.stdout and f"term {SCRIPT!r}" in listed.stdout
        assert "hostile-label on" in listed.stdout  # the label was judged, and never shown

        # the payloads above went through every CLI filter (the dataset name holds them) and
        # matched exactly that dataset; alone they match nothing and change nothing
        if not gx:  # PostgreSQL's driver would run stacked statements, if it were ever asked
            missing = sw("report drop", "report", "--dataset", DROP)
            assert missing.returncode == 2 and f"no dataset {DROP!r}" in missing.stderr
        assert snapshot(engine) == before

        tried = injection_matrix(engine, load_settings(cfg), tmp_path)
        assert snapshot(engine) == before
        figure(S, f"SQL injection attempts through the store's read API ({backend})", tried)

        # the pass report page, rendered from this store by the monitor's own code
        monkeypatch.chdir(tmp_path)
        outcomes = (
            *(
                ShardOutcome("files", uri, "done", shard_id=i + 1, version=1)
                for i, uri in enumerate(tables)
            ),
            ShardOutcome("files", f"{SCRIPT}{MENTION}.parquet", "failed", reason=IMG),
        )
        summary = PassSummary(1, outcomes, 0, (), f"alerts: {MENTION}", None, {"done": 2})
        res = Resources(load_settings(cfg))
        markdown, page, written = build_report(res.settings, summary, res.store)
        assert written is not None and written.is_file()
        assert_escaped_html(str(written), page, shows_names=True)
        assert "\\<\\!channel\\>" in markdown and not re.search(r"(?<!\\)[<>]", markdown)
        outputs["report markdown"] = markdown

        # every HTML page written: Data Docs (pages and index) and the report page
        pages = sorted((tmp_path / ".shardwatch").rglob("*.html"))
        assert len([p for p in pages if "validations" in p.parts]) == (2 if gx else 0)
        for path in pages:
            html = path.read_text(encoding="utf-8")
            assert_escaped_html(str(path), html, shows_names=path == written.resolve())
        if gx:
            index = (tmp_path / ".shardwatch/docs/index.html").read_text(encoding="utf-8")
            assert "script_alert_1_script_channel" in index  # the dataset, as a safe slug
        figure(S, f"HTML pages checked ({backend})", len(pages))

        # Slack and email: one message each, every untrusted name escaped
        assert len(receiver.bodies) == 1 and len(box.messages) == 1 and box.logins == 1
        assert_slack_escaped(receiver.bodies[0])
        html, text = html_part(box.messages[0])
        assert_escaped_html("email HTML part", html, shows_names=True)
        assert "rock&amp;roll.com" in html and DATASET in text  # plain text stays plain

        # reviewer welfare: captions, URLs and ids only in the export that asked for them
        everything = [*outputs.values(), *(json.dumps(b) for b in receiver.bodies)]
        everything += [m.decode("utf-8", "replace") for m in box.messages]
        everything += [
            p.read_bytes().decode("utf-8", "replace")
            for p in (tmp_path / ".shardwatch").rglob("*")
            if p.is_file()
        ]
        for canary in (CAPTION_CANARY, URL_CANARY, ID_CANARY):
            assert not [x for x in everything if canary in x], canary
            assert canary.encode() in out.read_bytes()
        with engine.connect() as conn:
            dump = repr(
                [tuple(r) for tb in t.Base.metadata.sorted_tables for r in conn.execute(select(tb))]
            )
        assert not [c for c in (CAPTION_CANARY, URL_CANARY, ID_CANARY) if c in dump]
    finally:
        engine.dispose()
        if res is not None:
            res.close()

    for label, text in outputs.items():
        leaks.text(f"{backend} {label}", text)
    leaks.texts(f"{backend} slack", [json.dumps(b) for b in receiver.bodies])
    leaks.texts(f"{backend} email", box.messages)
    leaks.tree(f"{backend} .shardwatch", tmp_path / ".shardwatch")
    leaks.tree(f"{backend} remove-list", out)
    leaks.database(f"{backend} store", url)


def injection_matrix(engine: Engine, settings: Any, tmp_path: Path) -> int:
    """Every payload in every user-controlled value the store's read API binds into SQL:
    each matches nothing (a dataset that does not exist, no rows). Returns the attempts."""
    store, outbox = ResultStore(engine), Outbox(engine)
    tried = 0
    for value in INJECTIONS:
        with pytest.raises(UnknownDataset):
            dataset_report(engine, value)
        with pytest.raises(UnknownDataset):
            domain_report(engine, value)
        with pytest.raises(UnknownDataset):
            done_shards(engine, value)
        assert shard_rates(engine, value) == [] and shard_drift(engine, value) == []
        assert shard_rates(engine, DATASET, label=value)[0].tag_nsfw == 0
        assert store.current(value) == {} and outbox.alerts(value) == []
        assert store.done_with_content(value, value, other_than=value) is None
        assert store.done_with_content(DATASET, value, other_than=value) is None
        out = tmp_path / "never.parquet"
        with pytest.raises(UnknownRule):
            export_flagged(engine, settings, ExportRequest(DATASET, value, out))
        with pytest.raises(ExportError, match="no watched term"):
            export_flagged(engine, settings, ExportRequest(DATASET, f"term:{value}x", out))
        with pytest.raises(UnknownDataset):
            export_flagged(engine, settings, ExportRequest(value, "keyword-nsfw", out))
        assert not out.exists()
        tried += 12
    # the real dataset still matches exactly itself
    assert dataset_report(engine, DATASET).dataset == DATASET
    assert len(outbox.alerts(DATASET)) > 0
    return tried


@pytest.mark.integration
def test_hostile_names_are_written_as_bound_values(
    store: ResultStore, database_url: str, leaks: LeakWatch
) -> None:
    """Payloads as dataset names and shard URIs are stored as themselves (one row each, read
    back equal); every other table and row count is as it was."""
    engine = store.engine
    store.register("kept", "kept.parquet", "0" * 64)
    before = table_counts(engine)
    for i, value in enumerate(INJECTIONS):
        version = store.register(value, f"{value}/{i}.parquet", f"{i:064d}")
        assert store.shard(version.id).uri == f"{value}/{i}.parquet"
        assert store.shard(version.id).dataset == value
    tables = sorted(inspect(engine).get_table_names())
    assert tables == sorted([*ALL_TABLES, "alembic_version"])
    n = len(INJECTIONS)
    grown = {**before, "datasets": before["datasets"] + n, "shards": before["shards"] + n}
    assert table_counts(engine) == grown
    with engine.connect() as conn:
        assert set(conn.scalars(select(t.Dataset.name))) == {"kept", *INJECTIONS}
    leaks.database("bound values store", database_url)


# --- names the store cannot keep verbatim -------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('dataset = "a\\u0000b"', "dataset name 'a\\x00b' holds a NUL character"),
        ('dataset = "a\\nb"', "holds the control character U+000A"),
        (f'dataset = "{"d" * 201}"', "is 201 characters long; at most 200 are stored"),
        ('lexicon = "x"\n[lexicons.x]\nterms = ["a\\u0000"]', "term 'a\\x00' holds a NUL"),
        (f'[lexicons.{"l" * 101}]\nterms = ["a"]', "is 101 characters long; at most 100"),
    ],
)
def test_a_name_the_store_cannot_keep_is_a_config_error(
    tmp_path: Path, body: str, message: str
) -> None:
    cfg = tmp_path / "shardwatch.toml"
    cfg.write_text(body + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    assert message in str(caught.value)


@pytest.mark.integration
def test_nul_undecodable_and_overlong_names_are_refused_with_the_reason(
    store: ResultStore, database_url: str, leaks: LeakWatch, tmp_path: Path
) -> None:
    """Decision (names.py): PostgreSQL text cannot hold NUL and no database text holds
    invalid UTF-8, so such a name is refused on both databases with the reason, and the run
    goes on; it is never cut short or replaced. Captions are never stored, so NULs in them
    are no problem (the export keeps them)."""
    engine = store.engine
    res: Resources | None = None
    try:
        store.register("kept", "kept.parquet", "0" * 64)
        before = table_counts(engine)
        bad = {
            "a\x00b.parquet": "holds a NUL character",
            "bad\udcff.parquet": "is not valid UTF-8",
            secrets.token_hex(1100): "is 2,200 bytes long; at most 2,048 are stored",
        }
        for uri, reason in bad.items():
            with pytest.raises(ValueError, match=reason):
                store.register("kept", uri, "1" * 64)
        for dataset in ("a\x00", "\udcff", "x" * 201, "two\nlines"):
            with pytest.raises(ValueError, match="dataset name"):
                store.dataset_id(dataset)
        assert table_counts(engine) == before

        # a remote listing that names shards with a NUL or undecodable bytes: those are
        # reported and skipped, the good one is processed
        web = tmp_path / "web"
        web.mkdir()
        write_shard(tagged_table(30, 3), web, "good.parquet")
        listed = ["good.parquet", "a.parquet?x=\u0000", "b.parquet#\udcff"]
        (web / "manifest.json").write_text(json.dumps(listed))
        with serve_folder(web, port=0) as base:
            cfg = tmp_path / "shardwatch.toml"
            cfg.write_text(
                f'database_url = {toml(database_url)}\ndataset = "web"\n'
                f"[validation]\nenabled = false\n[alerts]\nenabled = false\n"
                f"[download]\ncache_dir = {toml(str(tmp_path / 'cache'))}\n"
                f'[sources.web]\ntype = "http"\nmanifest = "{base}manifest.json"\n'
            )
            res = Resources(load_settings(cfg))
            found = discover(res)
            assert [s.uri for s in found.new] == [f"{base}good.parquet"]
            assert len(found.errors) == 2
            # named by their redacted URLs (a query value or fragment may be a secret)
            assert "a.parquet?x=REDACTED' holds a NUL character" in found.errors[0]
            assert "b.parquet' is not valid UTF-8" in found.errors[1]
            assert process(res, found.new[0], None).outcome == "done"
        with engine.connect() as conn:
            uris = set(conn.scalars(select(t.Shard.uri)))
        assert uris == {"kept.parquet", f"{base}good.parquet"}
    finally:
        if res is not None:
            res.close()
    leaks.text("refused names", "\n".join(found.errors))
    leaks.database("refused names store", database_url)


@pytest.mark.integration
def test_an_undecodable_dataset_on_the_command_line_exits_2(
    tmp_path: Path, leaks: LeakWatch
) -> None:
    path = write_shard(tagged_table(10, 1), tmp_path, "a.parquet")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shardwatch",
            "ingest",
            str(path),
            "--dataset",
            b"d\xff",
            "--no-validate",
        ],
        capture_output=True,
        cwd=tmp_path,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert b"dataset name 'd\\xff' is not valid UTF-8" in done.stderr
    assert not (tmp_path / ".shardwatch").exists()  # nothing created
    leaks.text("undecodable dataset stderr", done.stderr)


# --- static: no SQL built from strings ------------------------------------------------------
# Every raw-SQL site in src/shardwatch and db/: (file, callee, the call's source with
# whitespace collapsed) -> why it is safe. An f-string here may only interpolate module-level
# tuples of string literals (checked below): identifiers and values from a fixed set.
SQL_ALLOWED: dict[tuple[str, str, str], str] = {
    (
        "src/shardwatch/store/database.py",
        "execute",
        'cur.execute("PRAGMA foreign_keys=ON")',
    ): "constant",
    (
        "src/shardwatch/store/database.py",
        "execute",
        'cur.execute("PRAGMA journal_mode=WAL")',
    ): "constant",
    (
        "src/shardwatch/store/database.py",
        "execute",
        'cur.execute("PRAGMA journal_mode")',
    ): "constant",
    (
        "src/shardwatch/store/database.py",
        "execute",
        'cur.execute("PRAGMA busy_timeout=60000")',
    ): "constant",
    (
        "src/shardwatch/store/database.py",
        "text",
        'text("SELECT pg_advisory_xact_lock(:key)")',
    ): "constant, bound :key",
    (
        "src/shardwatch/store/database.py",
        "exec_driver_sql",
        'conn.exec_driver_sql("BEGIN IMMEDIATE")',
    ): "constant",
    (
        "src/shardwatch/store/snapshots.py",
        "exec_driver_sql",
        'conn.exec_driver_sql("BEGIN")',
    ): "constant",
    (
        "src/shardwatch/store/tables.py",
        "CheckConstraint",
        'CheckConstraint(f"status IN {RUN_STATUSES}", name="status")',
    ): "fixed tuple",
    (
        "src/shardwatch/store/tables.py",
        "CheckConstraint",
        'CheckConstraint(f"status IN {SHARD_STATUSES}", name="status")',
    ): "fixed tuple",
    (
        "src/shardwatch/store/tables.py",
        "CheckConstraint",
        'CheckConstraint(f"state IN {OUTBOX_STATES}", name="state")',
    ): "fixed tuple",
    (
        "src/shardwatch/store/tables.py",
        "CheckConstraint",
        'CheckConstraint(f"kind IN {NOTICE_KINDS}", name="kind")',
    ): "fixed tuple",
    (
        "src/shardwatch/store/tables.py",
        "CheckConstraint",
        'CheckConstraint(f"kind IN {BLOCKLIST_KINDS}", name="kind")',
    ): "fixed tuple",
    (
        "src/shardwatch/store/blocklist_rows.py",
        "exec_driver_sql",
        "s.connection().exec_driver_sql(_INSERT, [(shard_id, name, e) for e in chunk])",
    ): "a module constant, values bound (the COPY beside it is a constant too)",
    (
        "db/versions/2026_12_05_2300_f2b7c9d4e6a1_blocklists.py",
        "CheckConstraint",
        'sa.CheckConstraint(f"kind IN {KINDS}", name=op.f("ck_shard_blocklists_kind"))',
    ): "fixed tuple",
}
# Constant DDL in migrations is allowed as such (no interpolation possible).
SQLA_SINKS = {"text", "literal_column", "column", "table", "quoted_name", "DDL", "CheckConstraint"}
METHOD_SINKS = {"exec_driver_sql", "executescript", "like", "ilike", "notlike", "notilike"}
DBAPI_SINKS = {"execute", "executemany"}  # sinks when given a string, not a statement
SQL_WORDS = re.compile(
    r"\b(select\b[\s\S]*\bfrom|insert\s+into|delete\s+from|update\s+\w+\s+set|where\s+\w+\s*="
    r"|(drop|create|alter|truncate)\s+(table|index|database|schema)|pragma\s)",
    re.IGNORECASE,
)


def _built(node: ast.AST) -> bool:
    """A string built at run time: an f-string, `%` or `+` on strings, or `.format()`."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return any(isinstance(n, ast.Constant | ast.JoinedStr) for n in (node.left, node.right))
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def _literal_text(node: ast.AST) -> str:
    """The literal parts of a built string (where SQL keywords would be)."""
    return " ".join(
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def _fixed_tuples(tree: ast.Module) -> set[str]:
    """Module-level names bound to a tuple of string literals."""
    names = set()
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple)):
            continue
        if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts):
            names |= {n.id for n in node.targets if isinstance(n, ast.Name)}
    return names


def sql_sites(path: Path) -> list[tuple[str, str, ast.Call | ast.AST]]:
    """(callee, source) of each raw-SQL call in a file, and SQL-looking built strings."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    sqla: dict[str, str] = {}  # local name -> sqlalchemy name
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            sqla.update({a.asname or a.name: a.name for a in node.names})
        if isinstance(node, ast.Import):
            modules |= {
                a.asname or a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"
            }
    found: list[tuple[str, str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f, name = node.func, None
            if isinstance(f, ast.Name) and sqla.get(f.id) in SQLA_SINKS:
                name = sqla[f.id]
            elif isinstance(f, ast.Attribute):
                base = f.value
                on_module = isinstance(base, ast.Name) and base.id in modules
                if (on_module and f.attr in SQLA_SINKS) or f.attr in METHOD_SINKS:
                    name = f.attr
                elif f.attr in DBAPI_SINKS and node.args:
                    arg = node.args[0]
                    if _built(arg) or (
                        isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                    ):
                        name = f.attr
            if name is not None:
                found.append(
                    (name, " ".join((ast.get_source_segment(source, node) or "").split()), node)
                )
        if _built(node) and SQL_WORDS.search(_literal_text(node)):
            found.append(
                (
                    "built string",
                    " ".join((ast.get_source_segment(source, node) or "").split()),
                    node,
                )
            )
    # an f-string inside an allow-listed call must only interpolate fixed tuples
    fixed = _fixed_tuples(tree)
    for _, _, node in found:
        for inner in ast.walk(node):
            if isinstance(inner, ast.FormattedValue):
                value = inner.value
                assert isinstance(value, ast.Name) and value.id in fixed, (
                    f"{path}: {ast.get_source_segment(source, inner)} is not a fixed tuple"
                )
    return found


@pytest.mark.unit
def test_no_sql_is_built_from_strings_outside_the_allow_list(figure: Any, leaks: LeakWatch) -> None:
    files = sorted([*(REPO / "src/shardwatch").rglob("*.py"), *(REPO / "db").rglob("*.py")])
    assert len(files) > 30
    seen: set[tuple[str, str, str]] = set()
    unexpected = []
    for path in files:
        rel = str(path.relative_to(REPO))
        for callee, text, node in sql_sites(path):
            key = (rel, callee, text)
            constant_ddl = (
                rel.startswith("db/versions/")
                and callee == "CheckConstraint"
                and not any(isinstance(n, ast.JoinedStr) for n in ast.walk(node))
            )
            if key in SQL_ALLOWED:
                seen.add(key)
            elif not constant_ddl:
                unexpected.append(f"{rel}: {text}")
    assert not unexpected, "SQL built from strings, not on the allow-list:\n" + "\n".join(
        unexpected
    )
    stale = set(SQL_ALLOWED) - seen
    assert not stale, f"allow-listed SQL no longer found (update SQL_ALLOWED): {stale}"
    figure(S, "raw-SQL sites in src/ and db/ (all on the allow-list)", len(seen))
    leaks.text("sql scan", "\n".join(sorted(map(str, seen))))


@pytest.mark.unit
def test_the_scanner_catches_sql_built_from_strings(tmp_path: Path) -> None:
    """The scan would fail on each classic mistake (so its silence above means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from sqlalchemy import text, literal_column\n"
        "def f(conn, cur, name):\n"
        "    conn.execute(text(f'SELECT * FROM shards WHERE uri = {name}'))\n"
        "    cur.execute('DELETE FROM shards WHERE uri = %s' % name)\n"
        "    conn.exec_driver_sql('SELECT ' + name)\n"
        "    q = 'UPDATE shards SET status = {}'.format(name)\n"
        "    return literal_column(name)\n"
    )
    with pytest.raises(AssertionError, match="is not a fixed tuple"):
        sql_sites(bad)
    bad.write_text(bad.read_text().replace("text(f'SELECT * FROM shards WHERE uri = {name}')", "x"))
    callees = [c for c, _, _ in sql_sites(bad)]
    assert callees.count("execute") == 1 and "exec_driver_sql" in callees
    assert "literal_column" in callees and callees.count("built string") == 2
