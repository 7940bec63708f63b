"""Local channels: plain text on the console, or JSON lines appended to a file."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from shardwatch.alerting.message import DeliveryError, Message


class ConsoleChannel:
    """Plain text on a stream (stdout by default); for the demo."""

    def __init__(self, write: Callable[[str], Any] | None = None, name: str = "console"):
        self.name = name
        self._write = write

    def send(self, message: Message) -> None:
        if self._write is not None:
            self._write(message.text() + "\n")
        else:
            print(message.text(), flush=True)


class FileChannel:
    """One JSON line per item, appended to a file (for people without Slack)."""

    def __init__(self, path: Path, name: str = "file") -> None:
        self.name = name
        self.path = path

    def send(self, message: Message) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"title": message.title, **asdict(i)}) for i in message.items]
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in lines))
        except OSError as exc:
            raise DeliveryError(f"file: cannot append ({exc.strerror})", permanent=False) from None
