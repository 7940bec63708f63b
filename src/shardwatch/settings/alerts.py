"""Alert settings: `[alerts]`, the alert rules, the channels notices go to, and the relay's
pacing and retries."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shardwatch.core.alerts import DEFAULT_RULES, AlertPlan, Level, Metric, Rule, Severity
from shardwatch.core.public_urls import normalise_base_url
from shardwatch.settings.base import ConfigError, StrictModel


class SlackChannelSpec(StrictModel):
    type: Literal["slack"]
    webhook_url: SecretStr = Field(description="Incoming-webhook URL (a secret: never shown).")
    connect_timeout: float = Field(default=3.05, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    attempts: int = Field(default=4, ge=1, le=10, description="Tries per message, bounded.")


class EmailChannelSpec(StrictModel):
    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "starttls"
    sender: str
    recipients: list[str] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="A secret: never shown.")
    timeout: float = Field(default=10.0, gt=0)
    attempts: int = Field(default=3, ge=1, le=10)


class ConsoleChannelSpec(StrictModel):
    type: Literal["console"]


class FileChannelSpec(StrictModel):
    type: Literal["file"]
    path: Path = Field(
        default=Path(".shardwatch/alerts.jsonl"),
        description="JSON lines; default `<state_dir>/alerts.jsonl`.",
    )


ChannelSpec = Annotated[
    SlackChannelSpec | EmailChannelSpec | ConsoleChannelSpec | FileChannelSpec,
    Field(discriminator="type"),
]


RULE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class RuleSpec(StrictModel):
    """One alert rule. A rule named like a built-in one overrides only the fields it sets."""

    enabled: bool = True
    metric: Metric | None = Field(
        default=None, description="What is judged (see docs/alerts.md, the table of metrics)."
    )
    severity: Literal["warning", "critical"] | None = None
    level: Level | None = Field(
        default=None, description="`shard`, `dataset` (over the latest versions) or `both`."
    )
    max: float | None = Field(default=None, description="Breach above this value.")
    min: float | None = Field(default=None, description="Breach below this value.")
    min_support: int | None = Field(
        default=None, ge=1, description="Fewest rows (or term matches) before a rate is judged."
    )
    label: str | None = Field(
        default=None, description="The NSFW tag label counted by tag rates (default NSFW)."
    )


def _console_only() -> dict[str, ChannelSpec]:
    return {"console": ConsoleChannelSpec(type="console")}


class AlertSettings(StrictModel):
    """Alert rules and channels. Channels: `[alerts.channels.<name>]` with a `type`; rules:
    `[alerts.rules.<name>]`, added to (or overriding) the built-in rules."""

    enabled: bool = Field(default=True, description="Judge alert rules and relay alerts.")
    channels: dict[str, ChannelSpec] = Field(
        default_factory=_console_only,
        description="Named channels: slack, email, console or file.",
    )
    rules: dict[str, RuleSpec] = Field(
        default_factory=dict, description="Alert rules, by name (built-ins: see docs/alerts.md)."
    )
    renotify_hours: float = Field(
        default=24.0,
        ge=0,
        description="Remind about a breach that persists this long after its last notice "
        "(0: never).",
    )
    max_attempts: int = Field(
        default=5, ge=1, le=100, description="Relay passes per message before it is dead."
    )
    retry_seconds: float = Field(
        default=60.0,
        gt=0,
        description="First wait before a failed message is retried "
        "(doubles per attempt, at most 1 hour).",
    )
    lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A relay's hold on the messages it sends; a crashed relay's messages "
        "are sent again after it (at most one duplicate).",
    )
    min_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Fewest seconds between two messages to one channel, across relay passes "
        "and processes (an alert storm is aggregated into few messages, never sent faster).",
    )
    max_wait_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Longest one relay pass waits for channels' turns; what it could not send "
        "in that time waits for the next pass.",
    )
    docs_base_url: str | None = Field(
        default=None,
        description="Public http(s) URL where the Data Docs site folder is published; alerts "
        "link to `<url>/index.html` and shard pages below it (unset: no Data Docs links).",
    )
    reports_base_url: str | None = Field(
        default=None,
        description="Public http(s) URL where the reports folder is published; alerts link "
        "to `<url>/run-N.html` (unset: no report links).",
    )

    @field_validator("docs_base_url", "reports_base_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return normalise_base_url(value)

    @model_validator(mode="after")
    def _rule_names(self) -> AlertSettings:
        for name in [*self.rules, *self.channels]:
            if not re.fullmatch(RULE_NAME, name):
                raise ValueError(f"rule and channel names must match {RULE_NAME}: {name!r}")
        return self

    def plan(
        self,
        docs_index: str | None = None,
        *,
        reports: bool = False,
        blocklists: Mapping[str, Severity] | None = None,
    ) -> AlertPlan:
        """What the results transaction judges, and the channels notices are written for
        (`reports`: the pass writes `run-N.html`, so notices may link to it; `blocklists`:
        each configured list's severity, which the `blocklisted-rows` rule judges it at)."""
        lists = tuple(sorted((blocklists or {}).items()))
        channels = tuple(sorted(self.channels))
        return AlertPlan(self.active_rules(), channels, docs_index, reports, lists)

    def active_rules(self) -> tuple[Rule, ...]:
        """The built-in rules overridden by, and extended with, the configured ones."""
        out: dict[str, Rule] = {r.name: r for r in DEFAULT_RULES}
        for name, spec in self.rules.items():
            if not spec.enabled:
                out.pop(name, None)
                continue
            base = out.get(name)
            fields = {k: getattr(spec, k) for k in spec.model_fields_set if k != "enabled"}
            if base is None and spec.metric is None:
                raise ConfigError(f"alert rule {name!r} needs a metric")
            try:
                out[name] = Rule(name=name, **fields) if base is None else base.replace(**fields)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"alert rule {name!r}: {exc}") from None
        return tuple(out.values())
