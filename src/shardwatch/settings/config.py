"""Config: the one settings model, read from `shardwatch.toml` and `SHARDWATCH_*` variables."""

from __future__ import annotations

import copy
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shardwatch.acquire.bounded_json import ListingLimits
from shardwatch.core.alerts import DEFAULT_RULES, AlertPlan, Level, Metric, Rule
from shardwatch.core.lexicon import BUILTIN_LEXICONS, DEFAULT_LEXICON, Lexicon, MatchMode, Pattern
from shardwatch.core.names import (
    MAX_CONFIG_NAME_CHARS,
    MAX_DATASET_CHARS,
    MAX_TERM_CHARS,
    name_problem,
    shown,
)
from shardwatch.core.profiles import BUILTIN_PROFILES, DatasetProfile, LogicalField
from shardwatch.settings.paths import DEFAULT_STATE_DIR, fill_state_defaults, resolve_file_paths

DEFAULT_CONFIG_FILE = Path("shardwatch.toml")
_toml_path: ContextVar[Path | None] = ContextVar("shardwatch_toml_path", default=None)


class ConfigError(Exception):
    """The configuration is invalid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatternSpec(_Strict):
    term: str = Field(description="The term; matched case-insensitively.")
    mode: MatchMode | None = Field(
        default=None, description="`word` or `substring`; defaults per list (terms: word)."
    )
    forms: list[str] = Field(
        default_factory=list,
        description="Other spellings that count as this entry (plurals, hyphen and spacing "
        "variants), matched in the same mode.",
    )


class LexiconSpec(_Strict):
    description: str = ""
    extends: str | None = Field(
        default=None, description="Start from this lexicon's terms and keywords, then add."
    )
    terms: list[str | PatternSpec] = Field(
        default_factory=list, description="Watched terms, matched in TEXT; default mode word."
    )
    keywords: list[str | PatternSpec] = Field(
        default_factory=list,
        description="NSFW keywords, matched in TEXT or URL; default mode substring.",
    )


class ProfileSpec(_Strict):
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


class ValidationSettings(_Strict):
    """Great Expectations validation of each shard's feature table, and its Data Docs."""

    enabled: bool = Field(default=True, description="Validate every ingested shard.")
    suite: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Suite name: `<suite>.json` in suites_dir, else the packaged default "
        "(default: the profile's name).",
    )
    suites_dir: Path | None = Field(
        default=None,
        description="Your folder of GX suite JSON files; a suite found there overrides the "
        "packaged default of the same name (default: the packaged suites only).",
    )
    gx_dir: Path = Field(
        default=Path(".shardwatch/gx"),
        description="Private GX project (stores, checkpoints); default `<state_dir>/gx`.",
    )
    docs_dir: Path = Field(
        default=Path(".shardwatch/docs"),
        description="Where the Data Docs site is built; default `<state_dir>/docs`.",
    )
    keep_results: int = Field(
        default=500, ge=1, description="Newest validation results kept in Data Docs; older pruned."
    )
    max_rows: int = Field(
        default=4_000_000,
        ge=1,
        description="Rows per GX run: larger shards are validated in parts (split by id) and "
        "the checks merged exactly, to bound memory.",
    )
    partial_unexpected: int = Field(
        default=10,
        ge=0,
        le=100,
        description="Unexpected values sampled per check (ids, codes and numbers only).",
    )


class SlackChannelSpec(_Strict):
    type: Literal["slack"]
    webhook_url: SecretStr = Field(description="Incoming-webhook URL (a secret: never shown).")
    connect_timeout: float = Field(default=3.05, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    attempts: int = Field(default=4, ge=1, le=10, description="Tries per message, bounded.")


class EmailChannelSpec(_Strict):
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


class ConsoleChannelSpec(_Strict):
    type: Literal["console"]


class FileChannelSpec(_Strict):
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


class RuleSpec(_Strict):
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


class AlertSettings(_Strict):
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
        from shardwatch.alerting.links import normalise_base_url

        return normalise_base_url(value)

    @model_validator(mode="after")
    def _rule_names(self) -> AlertSettings:
        import re

        for name in [*self.rules, *self.channels]:
            if not re.fullmatch(RULE_NAME, name):
                raise ValueError(f"rule and channel names must match {RULE_NAME}: {name!r}")
        return self

    def plan(self, docs_index: str | None = None, *, reports: bool = False) -> AlertPlan:
        """What the results transaction judges, and the channels notices are written for
        (`reports`: the pass writes `run-N.html`, so notices may link to it)."""
        return AlertPlan(self.active_rules(), tuple(sorted(self.channels)), docs_index, reports)

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


class LocalSourceSpec(_Strict):
    type: Literal["local"]
    path: str = Field(
        description="A folder (its *.parquet files) or a glob, e.g. data/**/*.parquet."
    )


class HttpSourceSpec(_Strict):
    type: Literal["http"]
    manifest: str = Field(
        description="URL of a manifest: JSON (URLs, or objects with url/size/sha256/etag) or "
        "one URL per line. Listed URLs and every redirect must stay on the manifest's origin "
        "(host and port) or `extra_hosts`."
    )
    extra_hosts: list[str] = Field(
        default_factory=list,
        description="More allowed hosts: `host` (ports 80/443) or `host:port`. The manifest's "
        "own origin (host and port) is always allowed.",
    )


class HfSourceSpec(_Strict):
    type: Literal["hf"]
    repo: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="A Hugging Face Hub dataset repository, `owner/name`.",
    )
    revision: str = "main"
    path: str = Field(default="", description="A folder inside the repository.")
    token: SecretStr | None = Field(default=None, description="A Hub token (a secret).")
    endpoint: str = "https://huggingface.co"
    extra_hosts: list[str] | None = Field(
        default=None, description="Download hosts the Hub redirects to (default: its CDNs)."
    )


class ObjectStoreSourceSpec(_Strict):
    type: Literal["object"]
    uri: str = Field(description="s3://bucket/prefix, gs://bucket/prefix or file:///dir.")
    region: str | None = None
    endpoint_override: str | None = None
    anonymous: bool = False


SourceSpec = Annotated[
    LocalSourceSpec | HttpSourceSpec | HfSourceSpec | ObjectStoreSourceSpec,
    Field(discriminator="type"),
]


class DownloadSettings(_Strict):
    """How shards are fetched into the cache and checked before they are decoded."""

    cache_dir: Path = Field(
        default=Path(".shardwatch/cache"),
        description="Download cache; default `<state_dir>/cache`.",
    )
    keep_cache: bool = Field(
        default=False,
        description="Keep downloaded shards after they are processed (default: delete them; "
        "an interrupted download's partial file is always kept, to resume).",
    )
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    min_speed: int = Field(
        default=1024,
        ge=1,
        description="Bytes/s: a transfer slower than this over `speed_window` seconds (headers "
        "included) is cut off and retried, so a slow drip cannot hold a worker.",
    )
    speed_window: float = Field(default=60.0, gt=0, description="Seconds of the speed check.")
    allow_private_addresses: bool | None = Field(
        default=None,
        description="May downloads connect to loopback or private addresses? Default: only "
        "when a source is itself on one (its URL names such an address or localhost). "
        "Link-local addresses (cloud metadata) are always refused.",
    )
    attempts: int = Field(default=4, ge=1, le=20, description="Tries per download, bounded.")
    backoff: float = Field(default=1.0, gt=0, description="First retry wait; doubles.")
    backoff_cap: float = Field(default=30.0, gt=0, description="Longest wait (Retry-After too).")
    max_bytes: int = Field(default=8 * 1024**3, ge=1, description="Largest shard file.")
    cache_max_bytes: int = Field(
        default=32 * 1024**3,
        ge=1,
        description="Budget of the download cache folder, partial downloads included: a "
        "download that would take the folder over it fails alone (its partial file removed) "
        "and is retried on the next pass.",
    )
    partial_max_age_hours: float = Field(
        default=168.0,
        gt=0,
        description="A partial download older than this, or that no listed shard owns, is "
        "removed at the start of a pass.",
    )
    max_uncompressed_bytes: int = Field(
        default=16 * 1024**3,
        ge=1,
        description="Refuse a shard whose footer declares more uncompressed data than this.",
    )
    max_rows: int = Field(default=2_000_000_000, ge=1, description="Largest declared row count.")
    max_footer_bytes: int = Field(default=64 * 1024**2, ge=1, description="Largest footer.")
    max_columns: int = Field(default=10_000, ge=1, description="Most leaf columns declared.")
    max_schema_elements: int = Field(
        default=40_000,
        ge=1,
        description="Most schema elements (columns and groups), counted before the footer is "
        "parsed.",
    )
    max_nesting_depth: int = Field(
        default=32, ge=1, description="Deepest struct/list/map nesting of a column, plus its leaf."
    )
    max_listing_bytes: int = Field(
        default=16 * 1024**2, ge=1, description="Largest manifest, or Hub tree page."
    )
    max_listing_depth: int = Field(
        default=64, ge=1, le=512, description="Deepest JSON nesting of a manifest or Hub page."
    )
    max_listing_entries: int = Field(
        default=1_000_000,
        ge=1,
        description="Most JSON values in one manifest or Hub page, and most shards one source "
        "lists.",
    )
    max_listing_pages: int = Field(
        default=10_000, ge=1, description="Most Hub tree pages followed in one listing."
    )

    def listing_limits(self) -> ListingLimits:
        """The caps on what one source's listing may hold (bounded_json.py)."""
        return ListingLimits(
            max_bytes=self.max_listing_bytes,
            max_depth=self.max_listing_depth,
            max_entries=self.max_listing_entries,
            max_pages=self.max_listing_pages,
        )


class MonitorSettings(_Strict):
    """The monitor flow: concurrency, task runner and schedule."""

    concurrency: int = Field(default=2, ge=1, le=64, description="Shards processed at once.")
    task_runner: Literal["thread", "dask"] = Field(
        default="thread", description="`dask` fans shards out over a Dask cluster."
    )
    dask_address: str | None = Field(
        default=None, description="Scheduler of an existing Dask cluster (default: a local one)."
    )
    schedule: str = Field(default="0 * * * *", description="Cron schedule of `shardwatch serve`.")


class Settings(BaseSettings):
    """Everything configurable. Precedence: explicit overrides > environment > TOML > default."""

    model_config = SettingsConfigDict(
        env_prefix="SHARDWATCH_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    state_dir: Path = Field(
        default=DEFAULT_STATE_DIR,
        description="Where everything shardwatch writes goes by default: the SQLite store, "
        "the download cache, the GX project, Data Docs, HTML reports and a file channel's "
        "alerts.jsonl. Default `.shardwatch` beside the config file (without one: in the "
        "current directory).",
    )
    profile: str = Field(default="laion400m", description="The dataset profile to use.")
    lexicon: str | None = Field(
        default=None,
        description="The lexicon to use (default: the profile's, precise2026 for every "
        "built-in profile).",
    )
    profiles: dict[str, ProfileSpec] = Field(
        default_factory=dict, description="User-defined dataset profiles."
    )
    lexicons: dict[str, LexiconSpec] = Field(
        default_factory=dict, description="User-defined lexicons."
    )
    database_url: SecretStr = Field(
        default=SecretStr("sqlite:///.shardwatch/shardwatch.sqlite"),
        description="SQLAlchemy URL of the results store (PostgreSQL, or the embedded SQLite "
        "default `<state_dir>/shardwatch.sqlite`; SQLite is for one process at a time). "
        "May hold a password: never printed.",
    )
    dataset: str = Field(default="default", description="Dataset name results are stored under.")
    lease_seconds: float = Field(
        default=600.0, gt=0, description="How long a shard claim lasts before others may take it."
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Tries per shard version: a failure once they are spent quarantines the "
        "shard, with its failure history (`--force` tries it once more).",
    )
    batch_size: int = Field(default=131_072, ge=1, description="Rows per streamed batch.")
    workers: int = Field(default=2, ge=1, description="Threads computing batches in parallel.")
    domain_top_k: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Domains each shard lists exactly, per ranking (rows, keyword-NSFW rows, "
        "tag-NSFW rows); larger k: smaller error on dataset totals (docs/metrics.md).",
    )
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    sources: dict[str, SourceSpec] = Field(
        default_factory=dict,
        description="Where the monitor finds shards: `[sources.<name>]` with a `type`.",
    )
    download: DownloadSettings = Field(default_factory=DownloadSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)

    @model_validator(mode="before")
    @classmethod
    def _below_state_dir(cls, data: Any) -> Any:
        """Unset path settings default to below `state_dir` (see config_paths.py)."""
        if isinstance(data, dict):
            data = fill_state_defaults(copy.deepcopy(data))
        return data

    @property
    def reports_dir(self) -> Path:
        """Where the HTML report of each monitor pass is written: `<state_dir>/reports`."""
        return self.state_dir / "reports"

    @field_validator("dataset")
    @classmethod
    def _dataset_name(cls, value: str) -> str:
        problem = name_problem(value, max_chars=MAX_DATASET_CHARS, one_line=True)
        if problem:
            raise ValueError(f"dataset name '{shown(value)}' {problem}")
        return value

    @model_validator(mode="after")
    def _config_names(self) -> Settings:
        for kind, names in (
            ("profile", [self.profile, *self.profiles]),
            ("lexicon", [*([self.lexicon] if self.lexicon else []), *self.lexicons]),
        ):
            for name in names:
                problem = name_problem(name, max_chars=MAX_CONFIG_NAME_CHARS, one_line=True)
                if problem:
                    raise ValueError(f"{kind} name '{shown(name)}' {problem}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    def dataset_profile(self, name: str | None = None) -> DatasetProfile:
        """The named (default: selected) profile, built-in or from the config."""
        return _resolve_profile(name or self.profile, self.profiles, ())

    def active_lexicon(self, name: str | None = None) -> Lexicon:
        """The named (default: selected) lexicon, built-in or from the config."""
        return _resolve_lexicon(name or self.lexicon_name(), self.lexicons, ())

    def lexicon_name(self) -> str:
        """The selected lexicon: `lexicon` if set, else the selected profile's."""
        return self.lexicon or self.dataset_profile().lexicon

    def suite_name(self) -> str:
        """The GX suite validating this dataset: configured, else the profile's name."""
        return self.validation.suite or self.profile

    def available_profiles(self) -> list[str]:
        return sorted(set(BUILTIN_PROFILES) | set(self.profiles))

    def available_lexicons(self) -> list[str]:
        return sorted(set(BUILTIN_LEXICONS) | set(self.lexicons))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file chosen by `load_settings`."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        path = _toml_path.get()
        if path is None:
            return {}
        try:
            with path.open("rb") as fh:
                return resolve_file_paths(tomllib.load(fh), path)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def _chain_error(kind: str, name: str, chain: tuple[str, ...], known: list[str]) -> ConfigError:
    if name in chain:
        return ConfigError(f"{kind} {name!r} extends itself: {' -> '.join((*chain, name))}")
    return ConfigError(f"unknown {kind} {name!r}; known: {', '.join(known)}")


def _resolve_profile(
    name: str, specs: dict[str, ProfileSpec], chain: tuple[str, ...]
) -> DatasetProfile:
    known = sorted(set(BUILTIN_PROFILES) | set(specs))
    if name in chain or (name not in specs and name not in BUILTIN_PROFILES):
        raise _chain_error("profile", name, chain, known)
    if name not in specs:
        return BUILTIN_PROFILES[name]
    spec = specs[name]
    base = _resolve_profile(spec.extends, specs, (*chain, name)) if spec.extends else None
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


def _patterns(items: list[str | PatternSpec], default: MatchMode) -> tuple[Pattern, ...]:
    out = []
    for item in items:
        spec = PatternSpec(term=item) if isinstance(item, str) else item
        problem = name_problem(spec.term, max_chars=MAX_TERM_CHARS, one_line=True)
        if problem:  # terms are stored and label report rows (keywords too, for symmetry)
            raise ValueError(f"term '{shown(spec.term)}' {problem}")
        for form in spec.forms:
            problem = name_problem(form, max_chars=MAX_TERM_CHARS, one_line=True)
            if problem:
                raise ValueError(f"form '{shown(form)}' of '{shown(spec.term)}' {problem}")
        out.append(Pattern(spec.term, spec.mode or default, tuple(spec.forms)))
    return tuple(out)


def _resolve_lexicon(name: str, specs: dict[str, LexiconSpec], chain: tuple[str, ...]) -> Lexicon:
    known = sorted(set(BUILTIN_LEXICONS) | set(specs))
    if name in chain or (name not in specs and name not in BUILTIN_LEXICONS):
        raise _chain_error("lexicon", name, chain, known)
    if name not in specs:
        return BUILTIN_LEXICONS[name]
    spec = specs[name]
    base = _resolve_lexicon(spec.extends, specs, (*chain, name)) if spec.extends else None
    try:
        return Lexicon(
            name=name,
            terms=(base.terms if base else ()) + _patterns(spec.terms, "word"),
            keywords=(base.keywords if base else ()) + _patterns(spec.keywords, "substring"),
            description=spec.description or (base.description if base else ""),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings from `config_file` (else $SHARDWATCH_CONFIG, else ./shardwatch.toml if
    present), the environment and `overrides` (None values are ignored)."""
    if config_file is None:
        env_path = os.environ.get("SHARDWATCH_CONFIG")
        if env_path:
            config_file = env_path
        elif DEFAULT_CONFIG_FILE.is_file():
            config_file = DEFAULT_CONFIG_FILE
    token = _toml_path.set(Path(config_file) if config_file is not None else None)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        # Resolve the selection and every definition now, so a mistake fails at load time
        # with a clear message rather than half-way through a run.
        settings.dataset_profile()
        settings.active_lexicon()
        settings.alerts.active_rules()
        for name in settings.profiles:
            settings.dataset_profile(name)
        for name in settings.lexicons:
            settings.active_lexicon(name)
        return _prefect_secrets(settings)
    except ValidationError as exc:
        where = f" in {config_file}" if config_file is not None else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration{where}: {problems}") from None
    finally:
        _toml_path.reset(token)


def _prefect_secrets(settings: Settings) -> Settings:
    """`prefect-secret:<block>` secrets replaced by their Prefect Secret block's value."""
    from shardwatch.settings.prefect_secrets import SecretBlockError, resolve

    try:
        return resolve(settings)
    except SecretBlockError as exc:
        raise ConfigError(str(exc)) from None
