"""Features: the compact per-row table validation sees; ids, codes, numbers and flags, no text.

Raw captions and URLs never enter it, and no column holds an untrusted string: the NSFW tag
is a category over the profile's labels plus `other` and `null`, the URL is reduced to
`http(s)`/`other`, and term flags are named after the lexicon's terms. So nothing downstream
(GX, Data Docs) can show a caption, and nothing it renders can carry a payload. Text ids are
the one exception: the validation adapter replaces them with integer codes before GX sees them.

A feature column exists only when the shard has the source column it comes from, so a GX
expectation on a missing column errors ("check errored") instead of failing on nulls.

Each configured blocklist gets a flag column `blocklist_<name>` (`blocklist_column`): True
where the row matches the list (scan/blocklists.py), when the shard has the column the list
needs (URL; id for an id list). It holds no URL, id or entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shardwatch.core.blocklist import FLAG_PREFIX
from shardwatch.core.lexicon import Lexicon
from shardwatch.core.profiles import DatasetProfile, LogicalField, tag_keys
from shardwatch.scan.columns import ResolvedColumns, as_text

ID, TAG, SIMILARITY, WIDTH, HEIGHT, URL_SCHEME, KEYWORD = (
    "id",
    "nsfw_tag",
    "similarity",
    "width",
    "height",
    "url_scheme",
    "keyword_nsfw",
)
TERMS_METADATA_KEY: Final = b"shardwatch.terms"
URL_CATEGORIES: Final = ("http(s)", "other")
# A URL "looks like http(s)" when it starts with the scheme, `://` and a non-empty host.
HTTP_URL: Final = r"^https?://[^\s/?#]+"
_SLUG = re.compile(r"[^0-9a-z]+")
_TAG_CODE = pa.int8()
_CATEGORY = pa.dictionary(_TAG_CODE, pa.large_string())
_NUMBERS: Final[tuple[tuple[str, LogicalField], ...]] = (
    (SIMILARITY, "similarity"),
    (WIDTH, "width"),
    (HEIGHT, "height"),
)


def term_columns(lexicon: Lexicon) -> list[str]:
    """The flag column of each of the lexicon's terms, in order: `term_<ascii slug>`.

    Names are unique and use only [a-z0-9_], so they are safe in Data Docs and readable in
    hand-written suites (`term_desi`, `term_black_woman`).
    """
    names: list[str] = []
    for i, pattern in enumerate(lexicon.terms):
        slug = _SLUG.sub("_", pattern.term.casefold()).strip("_")
        name = f"term_{slug}" if slug else f"term_{i:03d}"
        if name in names:
            name = f"{name}_{i:03d}"
        names.append(name)
    return names


def blocklist_column(name: str) -> str:
    """The flag column of the blocklist `name` (a slug, settings/blocklists.py)."""
    return FLAG_PREFIX + name


def id_type(source: pa.DataType | None) -> pa.DataType:
    """Ids keep their kind: integers as int64, floats as float64, anything else as text."""
    if source is not None and pa.types.is_dictionary(source):
        source = source.value_type
    if source is not None and pa.types.is_integer(source):
        return pa.int64()
    if source is not None and pa.types.is_floating(source):
        return pa.float64()
    return pa.large_string()


def terms_of(schema: pa.Schema) -> dict[str, str]:
    """Feature column name -> term, from a feature schema's metadata."""
    raw = (schema.metadata or {}).get(TERMS_METADATA_KEY, b"{}")
    terms: dict[str, str] = json.loads(raw)
    return terms


def _category_array(codes: npt.NDArray[np.int64], values: tuple[str, ...]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8), _TAG_CODE), pa.array(values, pa.large_string())
    )


@dataclass(frozen=True)
class FeatureSpec:
    """Which feature columns one shard gets, given its resolved columns; builds the batches."""

    schema: pa.Schema
    tag_values: tuple[str, ...]

    @classmethod
    def for_shard(
        cls,
        profile: DatasetProfile,
        lexicon: Lexicon,
        columns: ResolvedColumns,
        source_id_type: pa.DataType | None = None,
        blocklists: Sequence[str] = (),
    ) -> FeatureSpec:
        """`blocklists`: the names of the lists this shard is matched against (those whose
        column it has), each getting its flag column after the term columns."""
        tag_values = tag_keys(profile.nsfw_labels)
        fields: list[pa.Field] = []
        if columns.has("id"):
            fields.append(pa.field(ID, id_type(source_id_type)))
        if columns.has("nsfw_tag"):
            fields.append(pa.field(TAG, _CATEGORY, nullable=False))
        for name, logical in _NUMBERS:
            if columns.has(logical):
                fields.append(pa.field(name, pa.float64()))
        if columns.has("url"):
            fields.append(pa.field(URL_SCHEME, _CATEGORY))
        if columns.has("text") or columns.has("url"):
            fields.append(pa.field(KEYWORD, pa.bool_(), nullable=False))
        terms: dict[str, str] = {}
        if columns.has("text"):
            for name, pattern in zip(term_columns(lexicon), lexicon.terms, strict=True):
                fields.append(pa.field(name, pa.bool_(), nullable=False))
                terms[name] = pattern.term
        for name in blocklists:
            fields.append(pa.field(blocklist_column(name), pa.bool_(), nullable=False))
        metadata = {TERMS_METADATA_KEY: json.dumps(terms).encode()}
        return cls(pa.schema(fields, metadata=metadata), tag_values)

    @property
    def term_names(self) -> list[str]:
        return list(terms_of(self.schema))

    def batch(
        self,
        num_rows: int,
        *,
        ids: pa.Array | None,
        tag_codes: npt.NDArray[np.int64] | None,
        similarity: pa.Array | None,
        width: pa.Array | None,
        height: pa.Array | None,
        url: pa.Array | None,
        keyword: npt.NDArray[np.bool_] | None,
        match_rows: npt.NDArray[np.int64] | None,
        match_terms: npt.NDArray[np.int64] | None,
        blocklists: Mapping[str, npt.NDArray[np.bool_]] | None = None,
    ) -> pa.RecordBatch:
        """One batch of features; every source the schema has must be given (decoded text)."""
        values: dict[str, pa.Array] = {}
        if ids is not None and ID in self.schema.names:
            values[ID] = _cast(ids, self.schema.field(ID).type)
        if tag_codes is not None:
            values[TAG] = _category_array(tag_codes, self.tag_values)
        for name, arr in ((SIMILARITY, similarity), (WIDTH, width), (HEIGHT, height)):
            if arr is not None:
                values[name] = finite_or_null(_cast(arr, pa.float64()))
        if url is not None:
            values[URL_SCHEME] = url_schemes(url)
        if keyword is not None:
            values[KEYWORD] = pa.array(keyword)
        terms = self.term_names
        if terms:
            matrix = np.zeros((len(terms), num_rows), dtype=bool)
            if match_rows is not None and match_terms is not None:
                matrix[match_terms, match_rows] = True
            values.update({name: pa.array(row) for name, row in zip(terms, matrix, strict=True)})
        for name, rows in (blocklists or {}).items():
            column = blocklist_column(name)
            if column in self.schema.names:
                values[column] = pa.array(rows, pa.bool_())
        missing = [name for name in self.schema.names if name not in values]
        if missing:
            raise ValueError(f"feature batch lacks {missing}")
        return pa.RecordBatch.from_arrays(
            [values[name] for name in self.schema.names], schema=self.schema
        )


def url_schemes(url: pa.Array) -> pa.Array:
    """`http(s)` where a URL looks like an http(s) link, `other` elsewhere, null where null."""
    looks_http = pc.match_substring_regex(as_text(url), HTTP_URL, ignore_case=True)
    codes = pc.if_else(looks_http, 0, 1).cast(_TAG_CODE)
    return pa.DictionaryArray.from_arrays(codes, pa.array(URL_CATEGORIES, pa.large_string()))


def finite_or_null(arr: pa.Array) -> pa.Array:
    """NaN and +-inf become null, as the engine counts them (docs/metrics.md)."""
    return pc.if_else(pc.is_finite(arr), arr, pa.scalar(None, arr.type))


def _cast(arr: pa.Array, to: pa.DataType) -> pa.Array:
    if pa.types.is_large_string(to):
        return as_text(arr)  # decodes invalid UTF-8 with replacement, as the engine does
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr.cast(to)
