"""store/urls.py: a malformed database URL is described in one line that shows no secret."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from shardwatch.store.database import parse_url
from shardwatch.store.errors import StoreConfigError
from shardwatch.store.urls import url_problem

pytestmark = pytest.mark.unit

CANARY = "c4n4ry-Pa55"

MALFORMED = {
    "no scheme": (f"notaurl{CANARY}", "has no scheme"),
    "non-numeric port": (f"postgresql://u:{CANARY}@db.example:abc/x", "port is not a number"),
    "password parsed as port": (f"postgresql://u:{CANARY}/x", "port is not a number"),
    "unclosed IPv6 host": (f"postgresql://u:{CANARY}@[::1/x", "no closing ']'"),
    "postgres scheme": (f"postgres://u:{CANARY}@127.0.0.1/x", "use postgresql://"),
    "postgres+driver scheme": (f"postgres+psycopg2://u:{CANARY}@h/x", "use postgresql://"),
    "empty": ("", "is empty"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_each_malformed_url_gets_one_line_without_the_password(case: str) -> None:
    raw, expected = MALFORMED[case]
    problem = url_problem(raw)
    assert problem is not None and expected in problem
    assert "\n" not in problem
    assert CANARY not in problem and CANARY[:5] not in problem
    with pytest.raises(StoreConfigError) as info:
        parse_url(raw)
    assert str(info.value) == problem


@pytest.mark.parametrize(
    "raw",
    [
        f"postgresql://u:{CANARY}@127.0.0.1:5432/x",
        f"postgresql+psycopg2://u:{CANARY}@[::1]:5432/x",
        "sqlite:///relative/path.sqlite",
        "sqlite://",
        "postgresql://u:p%40ss@host/x",
    ],
)
def test_well_formed_urls_pass(raw: str) -> None:
    assert url_problem(raw) is None
    assert parse_url(raw) == make_url(raw)
