"""Footer thrift: the sizes a parquet footer declares, read from its bytes in pure Python.

The footer check needs every row group's `total_byte_size` and `num_rows` and every column
chunk's `total_uncompressed_size` and `total_compressed_size`. pyarrow exposes them through
`RowGroupMetaData.column(j)`, whose C++ constructor validates the chunk's size statistics and
throws an exception pyarrow does not catch: a footer with a malformed histogram aborts the
whole process (SIGABRT, found by the fuzzing in tests/reliability). This module walks the
thrift compact protocol of `FileMetaData` instead, skipping every field it does not need, and
raises `FooterSyntaxError` on anything malformed. Structs may nest at most `_MAX_DEPTH` deep.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_DEPTH = 16
# Compact protocol types.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY = 1, 2, 3, 4, 5, 6, 7, 8
_LIST, _SET, _MAP, _STRUCT = 9, 10, 11, 12


class FooterSyntaxError(ValueError):
    """The footer's thrift bytes are malformed (cut short, bad type, nested too deep)."""


class CutShort(FooterSyntaxError):
    """The bytes end inside a thrift value (more bytes may complete it)."""


@dataclass(frozen=True)
class ChunkSizes:
    """What a column chunk's ColumnMetaData declares (a field it lacks counts as 0)."""

    uncompressed: int  # total_uncompressed_size: every page, headers included
    compressed: int  # total_compressed_size
    column: str = ""  # the first element of path_in_schema (the top-level column)
    physical_type: int = 0  # parquet Type: 6 = BYTE_ARRAY, 7 = FIXED_LEN_BYTE_ARRAY
    codec: int = 0  # CompressionCodec
    data_page_offset: int = 0
    dictionary_page_offset: int = 0


@dataclass(frozen=True)
class RowGroupSizes:
    total_byte_size: int
    num_rows: int
    chunks: tuple[ChunkSizes, ...]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise CutShort("footer cut short")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        value = shift = 0
        while shift < 70:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise FooterSyntaxError("varint longer than 10 bytes")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def skip_bytes(self, n: int) -> None:
        if n < 0:
            raise FooterSyntaxError("negative length")
        if self.pos + n > len(self.data):
            raise CutShort("footer cut short")
        self.pos += n

    def next_field(self, last: int) -> tuple[int, int] | None:
        """(field id, type) of the next field of a struct, or None at its end."""
        header = self.byte()
        if header == 0:
            return None
        delta, kind = header >> 4, header & 0x0F
        return (last + delta if delta else self.zigzag()), kind

    def list_header(self) -> tuple[int, int]:
        header = self.byte()
        size = header >> 4
        if size == 15:
            size = self.varint()
        return size, header & 0x0F

    def skip(self, kind: int, depth: int, in_list: bool = False) -> None:
        if kind in (_TRUE, _FALSE):
            if in_list:  # a bool element is one byte; a bool field has none
                self.byte()
        elif kind == _BYTE:
            self.byte()
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _DOUBLE:
            self.skip_bytes(8)
        elif kind == _BINARY:
            self.skip_bytes(self.varint())
        elif kind in (_LIST, _SET):
            size, element = self.list_header()
            for _ in range(size):
                self.skip(element, depth, in_list=True)
        elif kind == _MAP:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.skip(types >> 4, depth, in_list=True)
                    self.skip(types & 0x0F, depth, in_list=True)
        elif kind == _STRUCT:
            self.struct(depth + 1, {})
        else:
            raise FooterSyntaxError(f"unknown thrift type {kind}")

    def struct(self, depth: int, wanted: dict[int, int]) -> dict[int, int]:
        """Skip a struct, returning the integer fields in `wanted` ({id: type})."""
        if depth > _MAX_DEPTH:
            raise FooterSyntaxError(f"thrift structs nested more than {_MAX_DEPTH} deep")
        found: dict[int, int] = {}
        last = 0
        while (field := self.next_field(last)) is not None:
            last, kind = field
            if wanted.get(last) == kind:
                found[last] = self.zigzag()
            else:
                self.skip(kind, depth)
        return found


def row_group_sizes(footer: bytes) -> list[RowGroupSizes]:
    """The sizes each row group of a FileMetaData (thrift compact bytes) declares; a field
    it lacks counts as 0."""
    reader = _Reader(footer)
    groups: list[RowGroupSizes] = []
    last = 0
    while (field := reader.next_field(last)) is not None:
        last, kind = field
        if last == 4 and kind == _LIST:  # row_groups: list<RowGroup>
            size, element = reader.list_header()
            if size and element != _STRUCT:
                raise FooterSyntaxError("row_groups is not a list of structs")
            groups.extend(_row_group(reader) for _ in range(size))
        else:
            reader.skip(kind, 1)
    return groups


def _row_group(reader: _Reader) -> RowGroupSizes:
    found: dict[int, int] = {}
    chunks: list[ChunkSizes] = []
    last = 0
    while (field := reader.next_field(last)) is not None:
        last, kind = field
        if last == 1 and kind == _LIST:  # columns: list<ColumnChunk>
            size, element = reader.list_header()
            if size and element != _STRUCT:
                raise FooterSyntaxError("columns is not a list of structs")
            chunks.extend(_column_chunk(reader) for _ in range(size))
        elif last in (2, 3) and kind == _I64:  # total_byte_size, num_rows
            found[last] = reader.zigzag()
        else:
            reader.skip(kind, 2)
    return RowGroupSizes(found.get(2, 0), found.get(3, 0), tuple(chunks))


def _column_chunk(reader: _Reader) -> ChunkSizes:
    chunk = ChunkSizes(0, 0)
    last = 0
    while (field := reader.next_field(last)) is not None:
        last, kind = field
        if last == 3 and kind == _STRUCT:  # meta_data: ColumnMetaData
            chunk = _column_meta(reader)
        else:
            reader.skip(kind, 3)
    return chunk


# ColumnMetaData fields kept: type (1), codec (4), total_uncompressed_size (6),
# total_compressed_size (7), data_page_offset (9), dictionary_page_offset (11).
_META_INTS = {1: _I32, 4: _I32, 6: _I64, 7: _I64, 9: _I64, 11: _I64}


def _column_meta(reader: _Reader) -> ChunkSizes:
    found: dict[int, int] = {}
    column = ""
    last = 0
    while (field := reader.next_field(last)) is not None:
        last, kind = field
        if _META_INTS.get(last) == kind:
            found[last] = reader.zigzag()
        elif last == 3 and kind == _LIST:  # path_in_schema: list<string>
            size, element = reader.list_header()
            for i in range(size):
                if element != _BINARY:
                    reader.skip(element, 4, in_list=True)
                    continue
                n = reader.varint()
                start = reader.pos
                reader.skip_bytes(n)
                if i == 0:
                    column = reader.data[start : start + n].decode("utf-8", "replace")
        else:
            reader.skip(kind, 4)
    return ChunkSizes(
        uncompressed=found.get(6, 0),
        compressed=found.get(7, 0),
        column=column,
        physical_type=found.get(1, 0),
        codec=found.get(4, 0),
        data_page_offset=found.get(9, 0),
        dictionary_page_offset=found.get(11, 0),
    )


def page_header(data: bytes) -> tuple[tuple[int, int, int, int], int]:
    """(type, uncompressed_page_size, compressed_page_size, the dictionary page's
    num_values or 0) of the PageHeader that `data` starts with, and its length in bytes.
    Raises CutShort when `data` ends inside it."""
    reader = _Reader(data)
    found: dict[int, int] = {}
    values = 0
    last = 0
    while (field := reader.next_field(last)) is not None:
        last, kind = field
        if last in (1, 2, 3) and kind == _I32:
            found[last] = reader.zigzag()
        elif last == 7 and kind == _STRUCT:  # dictionary_page_header: num_values (1)
            values = reader.struct(2, {1: _I32}).get(1, 0)
        else:
            reader.skip(kind, 1)
    if not {1, 2, 3} <= found.keys():
        raise FooterSyntaxError("a page header lacks its type or sizes")
    return (found[1], found[2], found[3], max(0, values)), reader.pos
