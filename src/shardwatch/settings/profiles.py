"""Profile settings: `[profiles.<name>]`, a user-defined dataset profile, and how a profile
name resolves (built-in, or from the config through `extends`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shardwatch.core.lexicon import DEFAULT_LEXICON
from shardwatch.core.profiles import BUILTIN_PROFILES, DatasetProfile, LogicalField
from shardwatch.settings.base import ConfigError, StrictModel, chain_error


class ProfileSpec(StrictModel):
    description: str = ""
    extends: str | None = Field(default=None, description="Start from this profile.")
    columns: dict[LogicalField, str | None] = Field(
        default_factory=dict, description="Logical field -> column name (null: absent)."
    )
    similarity_threshold: float | None = Field(
        default=None, description="The dataset's CLIP-similarity cut-off."
    )
    nsfw_labels: list[str] | None = Field(default=None, description="The NSFW tag's label set.")
    nsfw_signal: Literal["label", "score"] | None = Field(
        default=None,
        description="Whether the nsfw_tag column holds labels or a score (NSFW above "
        "nsfw_threshold).",
    )
    nsfw_threshold: float | None = Field(
        default=None, description="For a score signal: NSFW when the score is above this."
    )
    unsafe_threshold: float | None = Field(
        default=None, description="The unsafe_score column counts as unsafe above this."
    )
    header: list[str] | None = Field(
        default=None, description="Column names of a header-less CSV/TSV file, in order."
    )
    other_columns: list[str] | None = Field(
        default=None,
        description="Columns the dataset carries that no field maps; any other column is "
        "schema drift (unexpected). Unset: extra columns are not judged (or as `extends`).",
    )
    lexicon: str | None = Field(
        default=None,
        description="The lexicon this dataset is scanned with unless `lexicon` is set "
        "(default: as `extends`, else precise2026).",
    )


def resolve_profile(
    name: str, specs: dict[str, ProfileSpec], chain: tuple[str, ...]
) -> DatasetProfile:
    """The profile `name`, built-in or from `specs` (`chain`: the names extending it)."""
    known = sorted(set(BUILTIN_PROFILES) | set(specs))
    if name in chain or (name not in specs and name not in BUILTIN_PROFILES):
        raise chain_error("profile", name, chain, known)
    if name not in specs:
        return BUILTIN_PROFILES[name]
    spec = specs[name]
    base = resolve_profile(spec.extends, specs, (*chain, name)) if spec.extends else None
    columns: dict[LogicalField, str | None] = dict(base.columns) if base else {}
    columns.update(spec.columns)
    threshold = spec.similarity_threshold
    if threshold is None:
        if base is None:
            raise ConfigError(f"profile {name!r} needs similarity_threshold (or extends)")
        threshold = base.similarity_threshold
    signal = spec.nsfw_signal or (base.nsfw_signal if base else "label")
    same_signal = base is not None and base.nsfw_signal == signal
    labels = (
        spec.nsfw_labels
        if spec.nsfw_labels is not None
        else (base.nsfw_labels if base and same_signal else [])
    )
    nsfw_threshold = spec.nsfw_threshold
    if nsfw_threshold is None and base is not None and same_signal:
        nsfw_threshold = base.nsfw_threshold
    unsafe = spec.unsafe_threshold
    if unsafe is None:
        unsafe = base.unsafe_threshold if base else 0.5
    header = spec.header if spec.header is not None else (base.header if base else None)
    other = spec.other_columns
    other_columns = tuple(other) if other is not None else (base.other_columns if base else None)
    try:
        return DatasetProfile(
            name=name,
            columns=columns,
            similarity_threshold=threshold,
            nsfw_labels=tuple(labels),
            description=spec.description or (base.description if base else ""),
            nsfw_signal=signal,
            nsfw_threshold=nsfw_threshold,
            unsafe_threshold=unsafe,
            header=tuple(header) if header is not None else None,
            other_columns=other_columns,
            lexicon=spec.lexicon or (base.lexicon if base else DEFAULT_LEXICON),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
