"""Prefect secrets: a secret setting written `prefect-secret:<block-name>` is read from that
Prefect `Secret` block when the settings load.

Any `SecretStr` setting may use it (the database URL, a Slack webhook, the SMTP password, a
Hub token), in the TOML file or in its `SHARDWATCH_*` environment variable; plain values stay
supported. The block is read from the Prefect API the environment points at
(PREFECT_API_URL or the active Prefect profile). A missing block or an unreachable API is a
`ConfigError` naming the setting and the block, never the value.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr

PREFIX = "prefect-secret:"
M = TypeVar("M", bound=BaseModel)


class SecretBlockError(Exception):
    """A `prefect-secret:` reference could not be resolved; the message holds no value."""


def reference(value: SecretStr) -> str | None:
    """The block name `value` refers to, or None for a plain secret."""
    raw = value.get_secret_value()
    if not raw.startswith(PREFIX):
        return None
    return raw.removeprefix(PREFIX).strip()


def read_block(name: str, where: str) -> SecretStr:
    """The value of the Prefect Secret block `name` (for the setting `where`)."""
    if not name:
        raise SecretBlockError(f"{where}: '{PREFIX}' needs a block name")
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise SecretBlockError(
            f"{where} refers to the Prefect Secret block '{name}' but no Prefect API is "
            "configured: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)"
        )
    from prefect.blocks.system import Secret

    try:
        block: Secret[Any] = Secret.load(name, _sync=True)  # type: ignore[call-arg,assignment]
    except ValueError:
        raise SecretBlockError(
            f"{where}: the Prefect Secret block '{name}' does not exist "
            f"(create it: prefect block create secret, or Secret(value=...).save('{name}'))"
        ) from None
    except Exception as exc:  # the API is down, refused us, ...
        raise SecretBlockError(
            f"{where}: the Prefect Secret block '{name}' could not be read ({type(exc).__name__})"
        ) from None
    value = block.value.get_secret_value()
    if not isinstance(value, str) or not value:
        raise SecretBlockError(f"{where}: the Prefect Secret block '{name}' is not a text value")
    return SecretStr(value)


def resolve(model: M, where: str = "") -> M:
    """`model` with every `prefect-secret:` `SecretStr` (at any depth, in nested models,
    dicts and lists) replaced by its block's value; the same object when there is none."""
    updates: dict[str, Any] = {}
    for field in type(model).model_fields:
        value = getattr(model, field)
        new = _resolved(value, f"{where}.{field}" if where else field)
        if new is not value:
            updates[field] = new
    return model.model_copy(update=updates) if updates else model


def _resolved(value: Any, where: str) -> Any:
    if isinstance(value, SecretStr):
        name = reference(value)
        return value if name is None else read_block(name, where)
    if isinstance(value, BaseModel):
        return resolve(value, where)
    if isinstance(value, dict):
        items = {k: _resolved(v, f"{where}.{k}") for k, v in value.items()}
        changed = any(items[k] is not v for k, v in value.items())
        return items if changed else value
    if isinstance(value, list | tuple):
        seq = [_resolved(v, f"{where}[{i}]") for i, v in enumerate(value)]
        changed = any(a is not b for a, b in zip(seq, value, strict=True))
        return type(value)(seq) if changed else value
    return value
