"""The two ways an error becomes one line: its first line, or all of it on one line."""

from __future__ import annotations

import pytest

from shardwatch.core.errors import first_line, one_line

pytestmark = pytest.mark.unit


class _Wrapped(Exception):
    def __init__(self, text: str, orig: BaseException) -> None:
        super().__init__(text)
        self.orig = orig


def test_first_line_keeps_the_first_line_and_names_an_empty_error() -> None:
    assert first_line(ValueError("  bad\nsecond line")) == "bad"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(ValueError("abcdef"), limit=3) == "abc"
    wrapped = _Wrapped("outer text", OSError("driver says no\ndetail"))
    assert first_line(wrapped) == "outer text"
    assert first_line(wrapped, cause=True) == "driver says no"


def test_one_line_joins_every_line_and_collapses_whitespace() -> None:
    exc = OSError("Parquet magic bytes not found\n\n  in footer:\tfile  ends\r\nearly")
    assert one_line(exc) == "Parquet magic bytes not found; in footer: file ends; early"
    assert "\n" not in one_line("a\u2028b\nc") and "\r" not in one_line("a\rb")
    assert one_line(RuntimeError("")) == "RuntimeError"
    assert one_line("   ") == ""


def test_one_line_cuts_at_the_limit_with_an_ellipsis() -> None:
    text = "x" * 50
    assert one_line(text, limit=50) == text
    cut = one_line(text, limit=10)
    assert cut == "x" * 7 + "..." and len(cut) == 10
