"""The worker of the killed-relay scenario (test_relay_faults.py): forks one relay pass per
job, one after the other, each SIGKILLing itself at a chosen point.

    SHARDWATCH_TEST_WEBHOOK=URL PYTHONPATH=src:tests \
        python tests/support/reliability/relay_kill_worker.py \
        --url DB --file PATH --lease SECONDS POINT...

Each pass relays to a Slack channel `team` (the webhook) and a file channel `log` (PATH),
one notice per message (batch 1), with `--lease`. POINT is where the pass kills itself:
- `commit:K`: just before its K-th COMMIT (taking a channel's turn, claiming, marking sent,
  giving the turn back: whatever the K-th is);
- `statement:K`: just before its K-th SQL statement (e.g. right after a COMMIT);
- `sent:K`: after the K-th message was accepted by its channel, before its notices are marked.
Before each pass the parent waits `--lease` seconds and a little more, so that the leases of
the pass before have expired. It prints `{"point", "signal", "code"}` per pass. The hooks live
here, never in the production code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, event

from shardwatch.alerting.local import FileChannel
from shardwatch.alerting.message import Retry
from shardwatch.alerting.relay import RelayPolicy, relay
from shardwatch.alerting.slack import SlackChannel
from shardwatch.store.database import make_engine
from shardwatch.store.outbox import Outbox


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def one_pass(args: argparse.Namespace, point: str) -> None:
    kind, _, number = point.partition(":")
    at = int(number)
    count = {"commit": 0, "statement": 0, "sent": 0}

    def on(what: str) -> None:
        count[what] += 1
        if kind == what and count[what] == at:
            die()

    event.listen(Engine, "commit", lambda *_: on("commit"))
    event.listen(Engine, "before_cursor_execute", lambda *_: on("statement"))
    channels: dict[str, Any] = {
        "team": SlackChannel(
            SecretStr(os.environ["SHARDWATCH_TEST_WEBHOOK"]), name="team", retry=Retry(attempts=1)
        ),
        "log": FileChannel(Path(args.file), name="log"),
    }
    policy = RelayPolicy(
        lease_seconds=args.lease, renotify_hours=0, min_interval=0.0, max_wait=30, batch=1
    )
    relay(
        Outbox(make_engine(args.url)),
        channels,
        owner=f"relay-{os.getpid()}",
        policy=policy,
        after_send=lambda _channel: on("sent"),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--lease", type=float, required=True)
    parser.add_argument("points", nargs="+")
    args = parser.parse_args()
    for point in args.points:
        time.sleep(args.lease + 0.2)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                one_pass(args, point)
            except BaseException as exc:
                print(f"{point}: {type(exc).__name__}: {exc}", flush=True)
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(
            json.dumps(
                {
                    "point": point,
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
                    "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
