"""`shardwatch config ...`: the effective settings, the dataset profiles and the lexicons."""

from __future__ import annotations

import json

import typer

from shardwatch.cli import options
from shardwatch.cli.options import ConfigOpt
from shardwatch.cli.outcomes import command
from shardwatch.core.names import json_shown, shown

app = typer.Typer(
    help="Inspect the effective configuration.", no_args_is_help=True, rich_markup_mode=None
)


@command(app, "show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective settings as JSON (secrets masked; `lexicon` is the one in effect,
    the profile's unless set)."""
    from shardwatch.core.redact import redact_tree

    settings = options.load(config)
    effective = json.loads(settings.model_dump_json())
    effective["lexicon"] = settings.lexicon_name()
    typer.echo(json_shown(json.dumps(redact_tree(effective), indent=2, ensure_ascii=False)))


@command(app, "profiles")
def config_profiles(config: ConfigOpt = None) -> None:
    """List dataset profiles and their column mappings."""
    settings = options.load(config)
    for name in settings.available_profiles():
        prof = settings.dataset_profile(name)
        cols = ", ".join(f"{k}={v}" for k, v in prof.columns.items() if v)
        typer.echo(f"{name}: threshold {prof.similarity_threshold}; lexicon {prof.lexicon}; {cols}")


@command(app, "lexicons")
def config_lexicons(config: ConfigOpt = None) -> None:
    """List lexicons with their terms and keywords."""
    settings = options.load(config)
    for name in settings.available_lexicons():
        lex = settings.active_lexicon(name)
        default = " (selected)" if name == settings.lexicon_name() else ""
        typer.echo(f"{shown(name)}{default}: {shown(lex.description)}")
        for kind, patterns in (("keywords", lex.keywords), ("terms", lex.terms)):
            typer.echo(f"  {kind}:")
            for p in patterns:
                forms = f"; forms: {', '.join(shown(f) for f in p.forms)}" if p.forms else ""
                typer.echo(f"    {shown(p.term)} ({p.mode}{forms})")
