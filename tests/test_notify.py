"""Alert delivery against real servers on loopback: a Slack-like HTTP receiver and aiosmtpd,
both with scripted faults (429 + Retry-After, 5xx, a hang, a reset; 421, 451, 550, a drop
during DATA)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from shardwatch.notify import (
    AlertItem,
    ConsoleChannel,
    DeliveryError,
    EmailChannel,
    FileChannel,
    Message,
    Retry,
    SlackChannel,
    slack_escape,
)

pytestmark = pytest.mark.integration

CANARY = "CANARY-7f3a9c"  # stands for a secret: it must never show up in errors or logs
HOSTILE = "<!channel> <http://evil.example|click> & <script>alert(1)</script>"


def message(n: int = 2) -> Message:
    items = tuple(
        AlertItem(rule="nsfw_tag_rate", severity="critical", dataset=HOSTILE,
                  scope=f"shard-{i}.parquet", observed=0.03, threshold=0.01, run_id=7,
                  link=f"/docs/validations/shard-{i}.html")
        for i in range(n)
    )
    return Message(title=f"shardwatch: {n} breaches", items=items)


# --- a Slack-like receiver with scripted faults --------------------------------------------

class SlackReceiver:
    """Each request takes the next scripted behaviour: "200", "429:<seconds>", "500", "400",
    "hang:<seconds>" or "reset"; after the script, 200."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.times.append(time.monotonic())
                receiver.paths.append(self.path)
                step = receiver.script.pop(0) if receiver.script else "200"
                kind, _, arg = step.partition(":")
                if kind == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.connection.close()
                    return
                if kind == "hang":
                    time.sleep(float(arg))
                    return
                if kind == "200":
                    receiver.bodies.append(json.loads(body))
                self.send_response(int(kind))
                if kind == "429":
                    self.send_header("Retry-After", arg)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> SecretStr:
        port = self.server.server_address[1]
        return SecretStr(f"http://127.0.0.1:{port}/services/T000/B000/{CANARY}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack() -> Iterator[Any]:
    receivers: list[SlackReceiver] = []

    def make(*script: str) -> SlackReceiver:
        receivers.append(SlackReceiver(list(script)))
        return receivers[-1]

    yield make
    for r in receivers:
        r.close()


def fast(attempts: int = 4) -> Retry:
    return Retry(attempts=attempts, base=0.05, cap=2.0)


def test_slack_delivers_block_kit_with_every_hostile_string_escaped(slack: Any) -> None:
    receiver = slack("200")
    SlackChannel(receiver.url, retry=fast()).send(message(3))
    (body,) = receiver.bodies
    raw = json.dumps(body)
    assert "<!channel>" not in raw and "<http://evil" not in raw and "<script>" not in raw
    sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert len(sections) == 3
    assert slack_escape(HOSTILE) in sections[0]
    assert "&lt;!channel&gt; &lt;http://evil.example|click&gt; &amp;" in sections[0]
    assert "observed 0.03, threshold 0.01 (run 7) /docs/validations/shard-0.html" in sections[0]


def test_slack_honours_retry_after(slack: Any) -> None:
    receiver = slack("429:1", "200")
    start = time.monotonic()
    SlackChannel(receiver.url, retry=fast()).send(message())
    assert len(receiver.times) == 2 and len(receiver.bodies) == 1
    assert receiver.times[1] - receiver.times[0] >= 1.0  # waited as told
    assert time.monotonic() - start < 5


def test_slack_retries_5xx_with_bounded_backoff_then_gives_up(slack: Any) -> None:
    receiver = slack("500", "500", "200")
    SlackChannel(receiver.url, retry=fast()).send(message())
    assert len(receiver.times) == 3 and len(receiver.bodies) == 1
    always = slack(*["500"] * 10)
    with pytest.raises(DeliveryError) as info:
        SlackChannel(always.url, retry=fast(attempts=3)).send(message())
    assert not info.value.permanent and info.value.reason == "slack: HTTP 500"
    assert len(always.times) == 3  # bounded


def test_slack_cuts_a_hang_off_with_the_read_timeout(slack: Any) -> None:
    receiver = slack("hang:5")
    start = time.monotonic()
    with pytest.raises(DeliveryError) as info:
        SlackChannel(receiver.url, read_timeout=0.5, retry=fast(attempts=1)).send(message())
    elapsed = time.monotonic() - start
    assert elapsed < 2.0, elapsed
    assert not info.value.permanent and "timed out" in info.value.reason


def test_slack_reset_is_transient_and_a_4xx_is_permanent(slack: Any) -> None:
    reset = slack("reset", "reset")
    with pytest.raises(DeliveryError) as info:
        SlackChannel(reset.url, retry=fast(attempts=2)).send(message())
    assert not info.value.permanent and "reset" in info.value.reason
    bad = slack("400")
    with pytest.raises(DeliveryError) as info:
        SlackChannel(bad.url, retry=fast()).send(message())
    assert info.value.permanent and len(bad.times) == 1


def test_slack_errors_and_logs_never_carry_the_webhook(
    slack: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs requests at DEBUG
    errors = []
    for script in (["reset"], ["hang:3"], ["404"], ["500"]):
        receiver = slack(*script)
        channel = SlackChannel(receiver.url, read_timeout=0.3, retry=fast(attempts=1))
        with pytest.raises(DeliveryError) as info:
            channel.send(message())
        errors.append(info.value)
        assert CANARY not in repr(channel)
    port = free_port()  # nothing listens here: connection refused
    url = SecretStr(f"http://127.0.0.1:{port}/hooks/{CANARY}")
    with pytest.raises(DeliveryError) as info:
        SlackChannel(url, retry=fast(attempts=1)).send(message())
    errors.append(info.value)
    for error in errors:
        assert CANARY not in str(error) and CANARY not in repr(error)
        assert error.__cause__ is None or CANARY not in str(error.__cause__)
    assert CANARY not in caplog.text


# --- aiosmtpd with scripted faults ---------------------------------------------------------

class SmtpHandler:
    """DATA replies from a script: "250", "421", "451", "550" or "drop"; then 250."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.messages: list[bytes] = []
        self.attempts = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        step = self.script.pop(0) if self.script else "250"
        if step == "drop":
            server.transport.close()
            return "421 dropped"
        if step == "250":
            self.messages.append(envelope.content)
            return "250 OK"
        return {"421": "421 4.3.2 try later", "451": "451 4.7.1 greylisted",
                "550": "550 5.1.1 no such mailbox"}[step]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == CANARY.encode()
    return AuthResult(success=ok)


@pytest.fixture
def smtp() -> Iterator[Any]:
    controllers: list[Controller] = []

    def make(*script: str, auth: bool = False) -> tuple[SmtpHandler, int]:
        handler = SmtpHandler(list(script))
        options: dict[str, Any] = {}
        if auth:
            options = {"authenticator": authenticator, "auth_require_tls": False}
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return handler, port

    yield make
    for c in controllers:
        c.stop()


def email(port: int, **kwargs: Any) -> EmailChannel:
    options: dict[str, Any] = {"host": "127.0.0.1", "port": port, "sender": "sw@example.org",
                               "recipients": ["curator@example.org"], "timeout": 5.0,
                               "retry": fast(attempts=3)}
    options.update(kwargs)
    return EmailChannel(**options)


def test_email_has_a_text_part_and_an_escaped_html_part(smtp: Any) -> None:
    handler, port = smtp("250", auth=True)
    email(port, username="sw", password=SecretStr(CANARY)).send(message())
    (raw,) = handler.messages
    mail = message_from_bytes(raw)
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in mail.walk()
             if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert HOSTILE in parts["text/plain"]  # plain text is shown as text
    assert "<script>" not in parts["text/html"] and "&lt;script&gt;" in parts["text/html"]
    assert "&lt;!channel&gt;" in parts["text/html"]
    assert CANARY.encode() not in raw


def test_email_4xx_is_retried_and_a_drop_during_data_too(smtp: Any) -> None:
    handler, port = smtp("451", "drop", "250")
    email(port).send(message())
    assert handler.attempts == 3 and len(handler.messages) == 1


def test_email_4xx_that_persists_is_transient_after_bounded_attempts(smtp: Any) -> None:
    handler, port = smtp("421", "421", "421", "421")
    with pytest.raises(DeliveryError) as info:
        email(port).send(message())
    assert not info.value.permanent and info.value.reason.startswith("smtp: 421")
    assert handler.attempts == 3 and handler.messages == []


def test_email_5xx_is_permanent_at_once_with_its_reason(smtp: Any) -> None:
    handler, port = smtp("550")
    with pytest.raises(DeliveryError) as info:
        email(port).send(message())
    assert info.value.permanent
    assert info.value.reason == "smtp: 550 5.1.1 no such mailbox"
    assert handler.attempts == 1


def test_email_bad_password_never_appears_in_the_error(smtp: Any) -> None:
    handler, port = smtp(auth=True)
    wrong = SecretStr(CANARY + "-wrong")
    channel = email(port, username="sw", password=wrong, timeout=1.0, retry=fast(attempts=1))
    with pytest.raises(DeliveryError) as info:  # aiosmtpd stalls a failed AUTH: timeout
        channel.send(message())
    assert CANARY not in str(info.value) and CANARY not in repr(channel)
    assert handler.messages == []


# --- demo channels ---------------------------------------------------------------------------

def test_file_channel_appends_one_json_line_per_item(tmp_path: Path) -> None:
    path = tmp_path / "alerts" / "alerts.jsonl"
    FileChannel(path).send(message(2))
    FileChannel(path).send(message(1))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 3 and lines[0]["dataset"] == HOSTILE and lines[0]["observed"] == 0.03


def test_console_channel_writes_plain_text() -> None:
    out: list[str] = []
    ConsoleChannel(out.append).send(message(1))
    assert out == [message(1).text() + "\n"]
    assert "[CRITICAL] nsfw_tag_rate on " in out[0]
