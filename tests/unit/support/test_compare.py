"""The comparator must see every kind of difference, or the engine tests prove nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support.builders import edge_case_table
from support.compare import diff_metrics
from support.reference import reference_metrics

from shardwatch.core.lexicon import BIRHANE2021
from shardwatch.core.profiles import LAION400M

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def ref() -> dict[str, Any]:
    return reference_metrics(edge_case_table(), LAION400M, BIRHANE2021)


def test_identical_and_extra_keys_pass(ref: dict[str, Any]) -> None:
    other = copy.deepcopy(ref)
    other["notes"] = ["extra keys are not part of the comparison"]
    other["terms"]["desi"]["note"] = "extra term keys too"
    assert diff_metrics(other, ref) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(rows=m["rows"] + 1),
        lambda m: m.update(rows=float(m["rows"])),
        lambda m: m["nulls"].pop("text"),
        lambda m: m["nsfw_flag_counts"].update(other=m["nsfw_flag_counts"]["other"] - 1),
        lambda m: m.pop("keyword_nsfw_rows"),
        lambda m: m["similarity"].update(min=m["similarity"]["min"] + 1e-15),
        lambda m: m["similarity"]["quantiles"].update(p50=0.125),
        lambda m: m.update(paper_keyword_nsfw_rows=m["paper_keyword_nsfw_rows"] + 1),
        lambda m: m["terms"]["desi"]["keyword_nsfw_by_tag"].update(NSFW=7),
        lambda m: m["similarity"].update(sum=m["similarity"]["sum"] * (1 + 1e-8)),
        lambda m: m["similarity"].update(sum=None),
        lambda m: m["similarity"]["histogram"]["counts"].append(0),
        lambda m: m["similarity"]["histogram"]["counts"].__setitem__(3, 1000),
        lambda m: m["similarity"]["histogram"].update(underflow=0),
        lambda m: m["terms"]["desi"].update(matches=m["terms"]["desi"]["matches"] + 1),
        lambda m: m["terms"]["nun"]["nsfw_flag_counts"].update(NSFW=-1),
        lambda m: m["terms"]["nun"].pop("nsfw_flag_counts"),
        lambda m: m["terms"]["nun"].update(mode="substring"),
        lambda m: m["terms"].pop("latina"),
        lambda m: m["duplicates"].update(id=m["duplicates"]["id"] + 1),
        lambda m: m["unavailable"].append("similarity"),
    ],
)
def test_every_difference_is_reported(ref: dict[str, Any], mutate: Any) -> None:
    other = copy.deepcopy(ref)
    mutate(other)
    assert diff_metrics(other, ref) != []
