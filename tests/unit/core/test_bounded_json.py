"""bounded_json: the limits are checked on the structure outside strings, exactly at the
limit, and a body within them parses as json.loads would."""

from __future__ import annotations

import json

import pytest

from shardwatch.core.bounded_json import ListingLimits, ListingRefused, parse

pytestmark = pytest.mark.unit


def test_within_limits_it_parses_like_json_loads() -> None:
    doc = {"shards": [{"url": 'a"[[[{{{,,,\\', "size": 1}, "b"], "x": [[], {}]}
    body = "\ufeff".encode() + json.dumps(doc).encode()
    assert parse(body, ListingLimits()) == doc


def test_brackets_and_commas_inside_strings_do_not_count() -> None:
    body = json.dumps(["[" * 1000 + "," * 1000 + '\\"[' * 100]).encode()
    assert parse(body, ListingLimits(max_depth=1, max_entries=1)) == [json.loads(body)[0]]


@pytest.mark.parametrize("depth", [1, 5, 64])
def test_depth_is_refused_one_level_past_the_limit(depth: int) -> None:
    at = b"[" * depth + b"]" * depth
    assert parse(at, ListingLimits(max_depth=depth)) is not None
    with pytest.raises(ListingRefused, match=f"nested {depth + 1} levels deep"):
        parse(b"[" + at + b"]", ListingLimits(max_depth=depth))


def test_values_are_counted_by_their_openings_and_commas() -> None:
    body = b'[1,2,{"a":3}]'  # "[", 2 commas inside the list, "{" : 4 (the scalars after "[")
    assert parse(body, ListingLimits(max_entries=4)) == [1, 2, {"a": 3}]
    with pytest.raises(ListingRefused, match="holds 4 values or more, above the limit of 3"):
        parse(body, ListingLimits(max_entries=3))


def test_bytes_over_the_limit_are_refused_unparsed() -> None:
    with pytest.raises(ListingRefused, match="11 bytes, above the limit of 10"):
        parse(b'"0123456789"'[:11], ListingLimits(max_bytes=10))


def test_invalid_json_is_a_value_error_not_a_refusal() -> None:
    with pytest.raises(json.JSONDecodeError):
        parse(b'["unterminated', ListingLimits())
