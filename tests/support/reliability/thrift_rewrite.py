"""Rewrite integer fields of thrift compact structs (a parquet footer, a page header): the
attacker's tool for files whose declared sizes lie. Written from the thrift compact protocol
spec, independent of shardwatch's own reader (footer_thrift.py)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

# A field's path: the field ids from the outermost struct down (list elements add nothing).
Rewrite = Callable[[tuple[int, ...], int], int]

_BOOL_TRUE, _BOOL_FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY = 1, 2, 3, 4, 5, 6, 7, 8
_LIST, _SET, _MAP, _STRUCT = 9, 10, 11, 12


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


class _Copier:
    def __init__(self, data: bytes, rewrite: Rewrite) -> None:
        self.data, self.pos, self.rewrite = data, 0, rewrite
        self.out = bytearray()

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def value(self, kind: int, path: tuple[int, ...], in_list: bool = False) -> None:
        if kind in (_BOOL_TRUE, _BOOL_FALSE):
            if in_list:
                self.out.append(self.byte())
        elif kind == _BYTE:
            self.out.append(self.byte())
        elif kind in (_I16, _I32, _I64):
            n = self.varint()
            self.out += _zigzag(self.rewrite(path, (n >> 1) ^ -(n & 1)))
        elif kind == _DOUBLE:
            self.out += self.data[self.pos : self.pos + 8]
            self.pos += 8
        elif kind == _BINARY:
            n = self.varint()
            self.out += _varint(n) + self.data[self.pos : self.pos + n]
            self.pos += n
        elif kind in (_LIST, _SET):
            header = self.byte()
            self.out.append(header)
            size = header >> 4
            if size == 15:
                size = self.varint()
                self.out += _varint(size)
            for _ in range(size):
                self.value(header & 0x0F, path, in_list=True)
        elif kind == _MAP:
            size = self.varint()
            self.out += _varint(size)
            if size:
                types = self.byte()
                self.out.append(types)
                for _ in range(size):
                    self.value(types >> 4, path, in_list=True)
                    self.value(types & 0x0F, path, in_list=True)
        elif kind == _STRUCT:
            self.struct(path)
        else:
            raise ValueError(f"unknown thrift type {kind}")

    def struct(self, path: tuple[int, ...]) -> None:
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                self.out.append(0)
                return
            delta, kind = header >> 4, header & 0x0F
            if delta:
                field = last + delta
                self.out.append(header)
            else:
                n = self.varint()
                field = (n >> 1) ^ -(n & 1)
                self.out.append(kind)
                self.out += _zigzag(field)
            last = field
            self.value(kind, (*path, field))


def rewrite_struct(data: bytes, rewrite: Rewrite) -> tuple[bytes, int]:
    """The struct `data` starts with, its integers passed through `rewrite`; and the length
    of the original struct in bytes."""
    copier = _Copier(data, rewrite)
    copier.struct(())
    return bytes(copier.out), copier.pos


def rewrite_footer(path: Path, rewrite: Rewrite) -> None:
    """Rewrite the FileMetaData of a parquet file in place (offsets before it keep)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<I", data[-8:-4])
    start = len(data) - 8 - length
    footer, _ = rewrite_struct(data[start : start + length], rewrite)
    path.write_bytes(data[:start] + footer + struct.pack("<I", len(footer)) + b"PAR1")


# FileMetaData paths of the declared sizes: RowGroup.total_byte_size (4, 2) and
# ColumnMetaData.total_uncompressed_size (4, 1, 3, 6).
ROW_GROUP_BYTES = (4, 2)
CHUNK_UNCOMPRESSED = (4, 1, 3, 6)


def understate_sizes(path: Path, declared: int = 1000) -> None:
    """The lie of scenario 'lying footer': every declared uncompressed size becomes
    `declared` bytes; the pages are untouched."""

    def lie(field: tuple[int, ...], value: int) -> int:
        return declared if field in (ROW_GROUP_BYTES, CHUNK_UNCOMPRESSED) else value

    rewrite_footer(path, lie)
