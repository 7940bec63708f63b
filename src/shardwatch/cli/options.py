"""Shared CLI options and inputs: `--config`, `--profile`, `--lexicon`, `--dataset`,
`--progress`, the settings they load, and the shard paths that `scan` and `ingest` take."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shardwatch.cli.outcomes import Failed, Outcome

if TYPE_CHECKING:
    from shardwatch.settings.config import Settings

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A shardwatch.toml file (default: $SHARDWATCH_CONFIG, else ./shardwatch.toml).",
        dir_okay=False,
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="Dataset profile (default: laion400m).")
]
LexiconOpt = Annotated[
    str | None,
    typer.Option(
        "--lexicon",
        help="Lexicon (default: the profile's, precise2026; birhane2021 is the paper's rule).",
    ),
]
DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", help="Dataset name (default: 'default').")
]
ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show progress on stderr (default: when stderr is a terminal).",
    ),
]


def load(config: Path | None, **overrides: Any) -> Settings:
    """The effective settings (CONFIG, the environment, then OVERRIDES); a bad configuration
    is a usage error."""
    from shardwatch.settings.config import ConfigError, load_settings

    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise Failed(Outcome.BAD_USAGE, str(exc)) from None


def expand(paths: list[Path]) -> list[Path]:
    """Directories stand for the `*.parquet` files directly inside them, in name order; a
    file (parquet, or CSV/TSV: .csv, .tsv, .csv.gz, .tsv.gz) stands for itself."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.parquet"))
            out.extend(found if found else [path])  # an empty directory is reported as input
        else:
            out.append(path)
    return out


def check_profile_fit(paths: list[Path], settings: Settings) -> None:
    """Stop (exit 2) when a CSV/TSV shard does not fit the default profile (profile_hint.py)."""
    from shardwatch.scan.profile_hint import profile_problem

    problem = profile_problem(paths, settings)
    if problem is not None:
        raise Failed(Outcome.BAD_USAGE, problem)
