"""The store's tables: constants spelled out for SQL stay equal to the domain's."""

from __future__ import annotations

import pytest
from sqlalchemy import CheckConstraint

from shardwatch.core import blocklist
from shardwatch.store import tables

pytestmark = pytest.mark.unit


def test_the_blocklist_kind_constraint_allows_exactly_the_domain_kinds() -> None:
    assert tables.BLOCKLIST_KINDS == blocklist.BLOCKLIST_KINDS
    [check] = [c for c in tables.shard_blocklists.constraints if isinstance(c, CheckConstraint)]
    assert all(f"'{kind}'" in str(check.sqltext) for kind in blocklist.BLOCKLIST_KINDS)
