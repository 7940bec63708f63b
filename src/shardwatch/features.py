"""Features: the compact per-row table validation sees; ids, tags, numbers and flags, no text.

Raw captions and URLs never enter it, so nothing downstream (GX, Data Docs) can show them.
Term flags are named `term_000`, `term_001`, ... in lexicon order; the schema metadata maps
each name back to its term.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shardwatch.lexicon import Lexicon
from shardwatch.reader import as_text

ID, TAG, SIMILARITY, WIDTH, HEIGHT, KEYWORD = (
    "id",
    "nsfw_tag",
    "similarity",
    "width",
    "height",
    "keyword_nsfw",
)
TERMS_METADATA_KEY = b"shardwatch.terms"


def term_column(index: int) -> str:
    """The feature column holding the match flag of the lexicon's `index`-th term."""
    return f"term_{index:03d}"


def id_type(source: pa.DataType | None) -> pa.DataType:
    """Ids keep their kind: integers as int64, floats as float64, anything else as text."""
    if source is not None and pa.types.is_dictionary(source):
        source = source.value_type
    if source is not None and pa.types.is_integer(source):
        return pa.int64()
    if source is not None and pa.types.is_floating(source):
        return pa.float64()
    return pa.large_string()


def feature_schema(lexicon: Lexicon, source_id_type: pa.DataType | None = None) -> pa.Schema:
    """The schema of every feature batch for `lexicon` and a shard's id column type."""
    fields = [
        pa.field(ID, id_type(source_id_type)),
        pa.field(TAG, pa.large_string()),
        pa.field(SIMILARITY, pa.float64()),
        pa.field(WIDTH, pa.float64()),
        pa.field(HEIGHT, pa.float64()),
        pa.field(KEYWORD, pa.bool_()),
        *(pa.field(term_column(i), pa.bool_()) for i in range(len(lexicon.terms))),
    ]
    terms = {term_column(i): p.term for i, p in enumerate(lexicon.terms)}
    return pa.schema(fields, metadata={TERMS_METADATA_KEY: json.dumps(terms).encode()})


def terms_of(schema: pa.Schema) -> dict[str, str]:
    """Feature column name -> term, from a feature schema's metadata."""
    raw = (schema.metadata or {}).get(TERMS_METADATA_KEY, b"{}")
    terms: dict[str, str] = json.loads(raw)
    return terms


def _cast(arr: pa.Array | None, n: int, to: pa.DataType) -> pa.Array:
    if arr is None:
        return pa.nulls(n, to)
    if pa.types.is_large_string(to):
        return as_text(arr)  # decodes invalid UTF-8 with replacement, as the engine does
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr.cast(to)


def build_features(
    schema: pa.Schema,
    num_rows: int,
    *,
    ids: pa.Array | None,
    tags: pa.Array | None,
    similarity: pa.Array | None,
    width: pa.Array | None,
    height: pa.Array | None,
    keyword: npt.NDArray[np.bool_] | None,
    match_rows: npt.NDArray[np.int64] | None,
    match_terms: npt.NDArray[np.int64] | None,
) -> pa.RecordBatch:
    """One batch of features. A flag whose column is missing (no TEXT: terms; neither TEXT
    nor URL: keyword) is null, not False."""
    n_terms = len(schema) - 6
    flags: list[pa.Array] = []
    if match_rows is None or match_terms is None:
        flags = [pa.nulls(num_rows, pa.bool_()) for _ in range(n_terms)]
    else:
        matrix = np.zeros((n_terms, num_rows), dtype=bool)
        matrix[match_terms, match_rows] = True
        flags = [pa.array(row) for row in matrix]
    f64 = pa.float64()
    columns = [
        _cast(ids, num_rows, schema.field(ID).type),
        tags if tags is not None else pa.nulls(num_rows, pa.large_string()),
        _cast(similarity, num_rows, f64),
        _cast(width, num_rows, f64),
        _cast(height, num_rows, f64),
        pa.array(keyword) if keyword is not None else pa.nulls(num_rows, pa.bool_()),
        *flags,
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
