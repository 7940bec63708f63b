"""Settings base: the error every configuration mistake raises, and the strict model every
section is built on (unknown keys refused, values frozen)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(Exception):
    """The configuration is invalid; the message says where and why."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def chain_error(kind: str, name: str, chain: tuple[str, ...], known: list[str]) -> ConfigError:
    """The error of an unknown name, or of a definition that `extends` itself."""
    if name in chain:
        return ConfigError(f"{kind} {name!r} extends itself: {' -> '.join((*chain, name))}")
    return ConfigError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
