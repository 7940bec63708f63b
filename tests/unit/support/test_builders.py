"""The adversarial generator really covers every decoy class the engine is tested against."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from support.builders import adversarial_table, edge_case_table

pytestmark = pytest.mark.unit

DECOYS = (
    "photo",
    "hotel",
    "shot",
    "design",
    "announcement",
    "grapes",
    "therapeutic",
    "sussex",
    "adulthood",
)


@pytest.mark.parametrize(
    "table", [adversarial_table(3000, 1), edge_case_table()], ids=["adversarial", "edge"]
)
def test_every_decoy_class_is_present(table: pa.Table) -> None:
    texts = table.column("TEXT").to_pylist()
    urls = table.column("URL").to_pylist()
    lowered = [t.lower() for t in texts if t]
    for decoy in DECOYS:
        assert any(decoy in t for t in lowered), decoy
    present = [t for t in texts if t]
    # case and punctuation variants of terms
    assert any("DESI" in t for t in present)
    assert any("#" in t and "desi" in t.lower() for t in present)
    assert any("desi-" in t.lower() or "desi's" in t.lower() for t in present)
    # non-ASCII neighbours of a term
    assert any("desi" in t.lower() and any(not c.isascii() for c in t) for t in present)
    # nulls and empty strings in TEXT and URL
    assert None in texts and "" in texts
    assert None in urls and "" in urls
    # NSFW values outside the label set, and null tags
    tags = set(table.column("NSFW").to_pylist())
    assert None in tags
    assert tags - {"UNLIKELY", "UNSURE", "NSFW", None}


def test_float_typed_ids_and_sizes_and_shuffled_height_width() -> None:
    table = adversarial_table(3000, 1)
    for name in ("SAMPLE_ID", "WIDTH", "HEIGHT"):
        assert pa.types.is_floating(table.schema.field(name).type), name
    ids = table.column("SAMPLE_ID").to_pylist()
    assert any(v is not None and not math.isnan(v) and v == int(v) for v in ids)
    ordered = [n for n in table.schema.names if n in ("HEIGHT", "WIDTH")]
    unshuffled = adversarial_table(3000, 1, shuffle=False).schema.names
    assert unshuffled.index("HEIGHT") < unshuffled.index("WIDTH")
    assert set(ordered) == {"HEIGHT", "WIDTH"}
