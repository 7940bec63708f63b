"""`shardwatch report`: a dataset's Table 1 and totals from the results store, or its drift
or domains view."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt, DatasetOpt
from shardwatch.cli.outcomes import Failed, Outcome, command
from shardwatch.cli.printing import ReportFormat, print_domains, print_drift, print_report
from shardwatch.cli.store_access import db_error, no_results_yet, require_store_file, store_engine

if TYPE_CHECKING:
    from shardwatch.core.profiles import DatasetProfile
    from shardwatch.settings.config import Settings

app = typer.Typer()


def _profile_resolver(settings: Settings) -> Callable[[str], DatasetProfile | None]:
    from shardwatch.settings.config import ConfigError

    def resolve(name: str) -> DatasetProfile | None:
        try:
            return settings.dataset_profile(name)
        except ConfigError:
            return None  # a profile no longer configured: its labels are sorted instead

    return resolve


def _format(
    as_json: bool, fmt: ReportFormat | None, paper: bool, drift: bool, domains: bool, by: str
) -> ReportFormat:
    """The one format the options ask for; alternatives given together are a usage error."""
    if drift and domains:
        raise Failed(Outcome.BAD_USAGE, "--drift and --domains are alternatives: give one")
    if (drift or domains) and (paper or fmt not in (None, ReportFormat.text)):
        view = "--drift" if drift else "--domains"
        message = f"{view} prints its own table: give it alone or with --json"
        raise Failed(Outcome.BAD_USAGE, message)
    if by not in ("keyword", "tag", "rows"):
        raise Failed(Outcome.BAD_USAGE, f"--by must be keyword, tag or rows, not {by!r}")
    if as_json + paper + (fmt is not None) > 1:
        message = "--json, --paper and --format are alternatives: give one"
        raise Failed(Outcome.BAD_USAGE, message)
    fmt = ReportFormat.json if as_json else ReportFormat.paper if paper else fmt
    return fmt or ReportFormat.text


@command(app)
def report(
    dataset: DatasetOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (same as --format json).")
    ] = False,
    fmt: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format",
            help="text (default), json, markdown, csv (Table 1 only) or paper (Table 1 by "
            "the audit paper's method, beside the lexicon's).",
        ),
    ] = None,
    paper: Annotated[bool, typer.Option("--paper", help="Same as --format paper.")] = False,
    drift: Annotated[
        bool,
        typer.Option(
            "--drift",
            help="Instead: each shard against the rest of the dataset: similarity PSI and "
            "two-proportion tests of the NSFW tag and keyword rates (text, or --json).",
        ),
    ] = False,
    domains: Annotated[
        bool,
        typer.Option(
            "--domains",
            help="Instead: the registrable URL domains contributing most NSFW, from each "
            "shard's exact top-k domain counts (text, or --json).",
        ),
    ] = False,
    top: Annotated[
        int, typer.Option("--top", min=1, max=100_000, help="Domains listed by --domains.")
    ] = 20,
    by: Annotated[
        str,
        typer.Option("--by", help="--domains order: keyword (default), tag or rows."),
    ] = "keyword",
    config: ConfigOpt = None,
) -> None:
    """Print a dataset's Table 1 and totals from the results store.

    Table 1 shows each term's keyword-NSFW lift over the dataset's rate with a Wilson 95%
    interval, and the NSFW tag among each term's keyword-NSFW matches (the paper's column).
    `--paper` computes Table 1 by the audit paper's method (the term and its 7 keywords as
    plain substrings: N_match, N_nsfw and the tag among N_nsfw), beside the same figures by
    the dataset's lexicon, so the effect of the matching rule is plain.

    The totals are summed in SQL over the latest done version of every shard; they equal
    `shardwatch scan --json`'s total over the same files. Failed or quarantined shards are
    counted and listed, not summed.
    """

    from shardwatch.store.database import current
    from shardwatch.store.errors import ReportError, StoreFailed
    from shardwatch.store.report import dataset_report

    fmt = _format(as_json, fmt, paper, drift, domains, by)
    settings = options.load(config, dataset=dataset)
    url = require_store_file(settings)
    engine = store_engine(settings)
    try:
        if current(engine) is None:
            raise no_results_yet(url)
        if domains:
            from shardwatch.store.domain_report import domain_report

            print_domains(domain_report(engine, settings.dataset, top=top, by=by), as_json)
            return
        result = dataset_report(engine, settings.dataset, profiles=_profile_resolver(settings))
        if drift:
            from shardwatch.store.drift import shard_drift

            print_drift(result.dataset, shard_drift(engine, settings.dataset), as_json)
            return
    except ReportError as exc:
        raise Failed(Outcome.BAD_USAGE, str(exc)) from None
    except StoreFailed as exc:
        raise db_error(exc, settings) from None
    print_report(result, fmt)
