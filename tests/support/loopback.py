"""Real servers on loopback: for the alert tests a Slack-like HTTP receiver and aiosmtpd,
both with scripted faults (429 + Retry-After, 5xx, a hang, a reset; 421, 451, 550, a drop
during DATA), made by the `slack` and `smtp` fixtures (conftest.py); and `GetServer`, an
HTTP server whose GET replies are scripted per path and which records every request's
headers (the HTTP client's redirect and credential tests)."""

from __future__ import annotations

import atexit
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

CANARY = "CANARY-7f3a9c"  # stands for a secret: it must never show up in errors or logs


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


@dataclass(frozen=True)
class Reply:
    """A scripted GET reply."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One GET a `GetServer` received: its path (query included) and lower-case headers."""

    path: str
    headers: dict[str, str]


class GetServer:
    """A threaded HTTP server on 127.0.0.1 (a port the OS picks): GET `routes[path]` is
    served (404 when absent), and every request is recorded in `seen`."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.seen: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.seen.append(Request(self.path, headers))
                reply = server.routes.get(self.path, Reply(404, b"not found"))
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def origin(self) -> str:
        """The allow-list entry of this server: `127.0.0.1:<port>`."""
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def base(self) -> str:
        return f"http://{self.origin}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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


class LoopbackController(Controller):
    """aiosmtpd's Controller on 127.0.0.1 and a port the OS picks (port 0), read back once
    the server is bound: no probing for a free port that another process could take."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)

    def _create_server(self) -> Any:
        async def create() -> Any:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


_REFUSING: list[socket.socket] = []


def _close_refusing() -> None:
    for sock in _REFUSING:
        sock.close()


def refused_port() -> int:
    """A loopback port where nothing listens, for the rest of the session: a socket bound to
    port 0 (the OS picks) that never listens and stays open, so connections to it are
    refused and no server can take the port meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    if not _REFUSING:
        atexit.register(_close_refusing)
    _REFUSING.append(sock)
    port: int = sock.getsockname()[1]
    return port


def free_port() -> int:
    """A port that was free a moment ago, for a server in another process that must be
    told its port before it starts (`prefect server start`); servers in this process bind
    port 0 instead (`LoopbackController`, `SlackReceiver`)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def mime_parts(mail: bytes | Message) -> list[Message]:
    """The parts of a multipart email, typed (`get_payload()` of a multipart message)."""
    message = mail if isinstance(mail, Message) else message_from_bytes(mail)
    payload = message.get_payload()
    assert isinstance(payload, list)
    parts = [part for part in payload if isinstance(part, Message)]
    assert len(parts) == len(payload)
    return parts


def decoded(part: Message) -> bytes:
    """A part's body with its transfer encoding undone (`get_payload(decode=True)`)."""
    body = part.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == CANARY.encode()
    return AuthResult(success=ok)
