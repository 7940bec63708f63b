"""The domains contributing most NSFW to a dataset, summed from the stored top-k sketches."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, case, func, literal, select

from shardwatch.core.stats import rate_bounds
from shardwatch.store import tables as t
from shardwatch.store.boundary import translated
from shardwatch.store.errors import ReportError, UnknownDataset
from shardwatch.store.report_model import as_int
from shardwatch.store.snapshots import latest_done, read_snapshot


@dataclass(frozen=True)
class DomainRow:
    """One domain summed over a dataset's current shards: lower bounds, and how much more
    each true count can be (the floors of the shards that did not list the domain)."""

    domain: str
    rows: int
    keyword_nsfw: int
    tag_nsfw: int
    rows_error: int
    keyword_error: int
    tag_error: int
    shards: int  # shards that listed it

    @property
    def exact(self) -> bool:
        """Every count of this row is exact (every current shard listed the domain)."""
        return not (self.rows_error or self.keyword_error or self.tag_error)

    def keyword_rate(self) -> tuple[float, float] | None:
        """The keyword-NSFW share of the domain's rows: (low, high) bounds, equal when exact;
        None without rows."""
        return rate_bounds(self.keyword_nsfw, self.keyword_error, self.rows, self.rows_error)


def _bounds(bounds: tuple[float, float] | None) -> dict[str, float] | None:
    return None if bounds is None else {"low": bounds[0], "high": bounds[1]}


@dataclass(frozen=True)
class DomainReport:
    """The domains contributing most NSFW to a dataset, from the stored top-k sketches."""

    dataset: str
    by: str
    shards: int  # current shards with a URL column (a domain sketch)
    rows: int  # their rows
    keyword_nsfw: int  # their keyword-NSFW rows
    tag_nsfw: int  # their tag-NSFW rows (0 without a tag)
    has_tag: bool
    k: int  # the largest top-k used
    floor_rows: int  # an unlisted domain holds at most this many rows (and so on)
    floor_keyword: int
    floor_tag: int
    top: tuple[DomainRow, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["top"] = [
            {**asdict(row), "exact": row.exact, "keyword_rate": _bounds(row.keyword_rate())}
            for row in self.top
        ]
        return out


DOMAIN_ORDER = {"keyword": "keyword_nsfw", "tag": "tag_nsfw", "rows": "rows"}


@translated
def domain_report(
    engine: Engine, dataset: str, *, top: int = 20, by: str = "keyword"
) -> DomainReport:
    """The `top` domains of `dataset` by keyword-NSFW rows (or tag-NSFW rows, or rows),
    summed in SQL over the latest done version of every shard (raises UnknownDataset)."""
    if by not in DOMAIN_ORDER:
        raise ReportError(f"unknown domain order {by!r}; use one of {', '.join(DOMAIN_ORDER)}")
    sm, sd = t.shard_metrics, t.shard_domains
    with read_snapshot(engine) as conn:
        dataset_id = conn.scalar(select(t.datasets.c.id).where(t.datasets.c.name == dataset))
        if dataset_id is None:
            known = conn.scalars(select(t.datasets.c.name).order_by(t.datasets.c.name)).all()
            raise UnknownDataset(dataset, known)
        latest = latest_done(dataset_id)
        totals = conn.execute(
            select(
                func.count().label("shards"),
                func.sum(sm.c.rows).label("rows"),
                func.sum(sm.c.domain_rest_rows).label("rest_rows"),
                func.sum(sm.c.domain_rest_keyword).label("rest_keyword"),
                func.sum(sm.c.domain_rest_tag).label("rest_tag"),
                func.sum(sm.c.domain_floor_rows).label("floor_rows"),
                func.sum(sm.c.domain_floor_keyword).label("floor_keyword"),
                func.sum(sm.c.domain_floor_tag).label("floor_tag"),
                func.max(sm.c.domain_k).label("k"),
                func.max(case((sm.c.has_nsfw_tag, literal(1)), else_=literal(0))).label("tag"),
            )
            .join(latest, latest.c.id == sm.c.shard_id)
            .where(sm.c.domain_k.is_not(None))
        ).one()
        listed = conn.execute(
            select(
                func.sum(sd.c.rows).label("rows"),
                func.sum(sd.c.keyword_nsfw).label("keyword"),
                func.sum(sd.c.tag_nsfw).label("tag"),
            ).join(latest, latest.c.id == sd.c.shard_id)
        ).one()
        rows_sum = func.sum(sd.c.rows)
        order = {"rows": rows_sum, "keyword_nsfw": func.sum(sd.c.keyword_nsfw)}
        order["tag_nsfw"] = func.sum(sd.c.tag_nsfw)
        first = order[DOMAIN_ORDER[by]]
        found = conn.execute(
            select(
                sd.c.domain,
                rows_sum.label("rows"),
                func.sum(sd.c.keyword_nsfw).label("keyword"),
                func.sum(sd.c.tag_nsfw).label("tag"),
                func.sum(sm.c.domain_floor_rows).label("floor_rows"),
                func.sum(sm.c.domain_floor_keyword).label("floor_keyword"),
                func.sum(sm.c.domain_floor_tag).label("floor_tag"),
                func.count().label("shards"),
            )
            .join(latest, latest.c.id == sd.c.shard_id)
            .join(sm, sm.c.shard_id == sd.c.shard_id)
            .group_by(sd.c.domain)
            .order_by(first.desc(), rows_sum.desc(), sd.c.domain)
            .limit(top)
        ).all()
    floor_rows, floor_kw, floor_tag = (
        as_int(totals.floor_rows),
        as_int(totals.floor_keyword),
        as_int(totals.floor_tag),
    )
    return DomainReport(
        dataset=dataset,
        by=by,
        shards=as_int(totals.shards),
        rows=as_int(listed.rows) + as_int(totals.rest_rows),
        keyword_nsfw=as_int(listed.keyword) + as_int(totals.rest_keyword),
        tag_nsfw=as_int(listed.tag) + as_int(totals.rest_tag),
        has_tag=bool(totals.tag),
        k=as_int(totals.k),
        floor_rows=floor_rows,
        floor_keyword=floor_kw,
        floor_tag=floor_tag,
        top=tuple(
            DomainRow(
                domain=r.domain,
                rows=as_int(r.rows),
                keyword_nsfw=as_int(r.keyword),
                tag_nsfw=as_int(r.tag),
                rows_error=floor_rows - as_int(r.floor_rows),
                keyword_error=floor_kw - as_int(r.floor_keyword),
                tag_error=floor_tag - as_int(r.floor_tag),
                shards=as_int(r.shards),
            )
            for r in found
        ),
    )
