"""Blocklist files, opened safely and split into lines (text and CSV lists).

- `open_list` opens a list once, without blocking (a FIFO has no writer to wait for), and
  accepts a regular file only: a FIFO, a device (`/dev/zero`), a socket or a folder is
  refused before a byte is read, so reading it always ends.
- `line_blocks` reads blocks of whole lines, with every line end (`\\n`, `\\r\\n` and a lone
  `\\r`, old Mac and some Excel exports) made `\\n`, and a UTF-8 byte-order mark at the start
  dropped. A line longer than `MAX_ENTRY_BYTES`, or more than `MAX_TEXT_BYTES` of text (a
  gzip bomb), is an error: memory and copying stay bounded whatever the file holds.
- `csv_lines` gives each line decoded, so a decoding error names its own line.

Errors (`ListProblem`) give the line number and the problem, never the entry.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Final

BLOCK_BYTES: Final = 1 << 24  # text read per block (whole lines)
MAX_ENTRY_BYTES: Final = 1 << 16  # one line (entry) at most
MAX_TEXT_BYTES: Final = 8 << 30  # a list's text (a gzipped list: once decompressed)
_BOM: Final = b"\xef\xbb\xbf"


class ListProblem(ValueError):
    """A list that cannot be used; the message holds no entry."""


def open_list(path: Path) -> BinaryIO:
    """The list's file, opened for reading (raises ListProblem for anything but a regular
    file, OSError when it cannot be opened)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ListProblem("not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def too_long(line: int) -> ListProblem:
    return ListProblem(f"line {line}: longer than {MAX_ENTRY_BYTES} bytes")


def _cut(data: bytes) -> int:
    """Where the last complete line of `data` ends (0: none). A `\\r` ending the data may be
    the first half of a `\\r\\n` split across reads: it waits for the next read."""
    end = max(data.rfind(b"\n"), data.rfind(b"\r"))
    if end == len(data) - 1 and data[end] == 0x0D:
        end = max(data.rfind(b"\n", 0, end), data.rfind(b"\r", 0, end))
    return end + 1


def line_blocks(raw: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Blocks of whole lines, each with the number of its first line; every line (the last
    one too) ends with `\\n`. A line inside a block is not checked against MAX_ENTRY_BYTES
    here (the caller does, per line); one spanning reads is."""
    first = 1
    rest = b""
    total = 0
    start = True
    while True:
        block = raw.read(BLOCK_BYTES)
        total += len(block)
        if total > MAX_TEXT_BYTES:
            raise ListProblem(f"holds more than {MAX_TEXT_BYTES:,} bytes of text")
        eof = not block
        data = rest + block
        if start:
            if len(data) < len(_BOM) and not eof:
                rest = data
                continue
            data = data.removeprefix(_BOM)
            start = False
        cut = len(data) if eof else _cut(data)
        chunk, rest = data[:cut], data[cut:]
        if chunk:
            if b"\r" in chunk:
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if not chunk.endswith(b"\n"):  # the last line, at the end of the file
                chunk += b"\n"
            yield first, chunk
            first += chunk.count(b"\n")
        if eof:
            return
        if len(rest) > MAX_ENTRY_BYTES:
            raise too_long(first)


def csv_lines(raw: IO[bytes]) -> Iterator[str]:
    """The file's lines, decoded from UTF-8 one by one (each ends with `\\n`)."""
    for first, chunk in line_blocks(raw):
        for i, line in enumerate(chunk.split(b"\n")[:-1]):
            if len(line) > MAX_ENTRY_BYTES:
                raise too_long(first + i)
            try:
                yield line.decode("utf-8") + "\n"
            except UnicodeDecodeError:
                raise ListProblem(f"line {first + i}: not UTF-8 text") from None
