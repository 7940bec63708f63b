"""A relay process that dies between a delivery and its mark (for the duplicate test).

    SHARDWATCH_TEST_WEBHOOK=URL python tests/support/relay_worker.py --url DB --lease SECONDS

Relays once to a Slack channel named `team` at the webhook; right after the channel accepts
the message (HTTP 200) and before the outbox is marked, the process exits with status 17, as
if killed. The hook lives here, never in the production code.
"""

from __future__ import annotations

import argparse
import os

from pydantic import SecretStr

from shardwatch.alerting.message import Retry
from shardwatch.alerting.relay import RelayPolicy, relay
from shardwatch.alerting.slack import SlackChannel
from shardwatch.store.database import make_engine
from shardwatch.store.outbox import Outbox


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--lease", type=float, required=True)
    args = parser.parse_args()
    channel = SlackChannel(
        SecretStr(os.environ["SHARDWATCH_TEST_WEBHOOK"]), name="team", retry=Retry(attempts=1)
    )

    def die(_channel: str) -> None:
        os._exit(17)

    relay(
        Outbox(make_engine(args.url)),
        {"team": channel},
        owner="doomed-relay",
        policy=RelayPolicy(lease_seconds=args.lease),
        after_send=die,
    )
    raise SystemExit("relay_worker: nothing was sent")


if __name__ == "__main__":
    main()
