"""Config: the one settings model, read from `shardwatch.toml` and `SHARDWATCH_*` variables.

`Settings` is the root: only it reads the environment (`SHARDWATCH_*`, nested sections with
`__`) and the TOML file. Each section's model lives in its own module (`validation`, `alerts`,
`sources`, `download`, `monitor`, `profiles`, `lexicons`); `load_settings` loads and checks
the whole, raising `ConfigError`.
"""

from __future__ import annotations

import copy
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shardwatch.core.lexicon import BUILTIN_LEXICONS, Lexicon
from shardwatch.core.names import MAX_CONFIG_NAME_CHARS, MAX_DATASET_CHARS, name_problem, shown
from shardwatch.core.profiles import BUILTIN_PROFILES, DatasetProfile
from shardwatch.settings.alerts import AlertSettings
from shardwatch.settings.base import ConfigError
from shardwatch.settings.blocklists import BlocklistSpec, blocklist_name_problem
from shardwatch.settings.download import DownloadSettings
from shardwatch.settings.lexicons import LexiconSpec, resolve_lexicon
from shardwatch.settings.monitor import MonitorSettings
from shardwatch.settings.paths import (
    DEFAULT_STATE_DIR,
    fill_state_defaults,
    resolve_file_paths,
    sqlite_against,
)
from shardwatch.settings.profiles import ProfileSpec, resolve_profile
from shardwatch.settings.sources import SourceSpec
from shardwatch.settings.validation import ValidationSettings

__all__ = ["DEFAULT_CONFIG_FILE", "ConfigError", "Settings", "load_settings"]

DEFAULT_CONFIG_FILE = Path("shardwatch.toml")
_toml_path: ContextVar[Path | None] = ContextVar("shardwatch_toml_path", default=None)


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
        default=600.0,
        ge=1,
        le=86_400,
        description="How long a shard claim lasts before another worker may take the shard "
        "(1 s to 1 day). Longer than the slowest shard's scan, validation and commit (a "
        "12.9M-row shard: about 40 s on 2 cores); a shard whose worker died stays `busy` "
        "(reported not done) until its claim expires, so shorter means faster recovery.",
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
    blocklists: dict[str, BlocklistSpec] = Field(
        default_factory=dict,
        description="Published remove-lists every shard is checked against: "
        "`[blocklists.<name>]` with a `kind`, a `path` and an optional `severity`.",
    )
    download: DownloadSettings = Field(default_factory=DownloadSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)

    @model_validator(mode="before")
    @classmethod
    def _below_state_dir(cls, data: Any) -> Any:
        """Unset path settings default to below `state_dir` (see settings/paths.py)."""
        if isinstance(data, dict):
            data = fill_state_defaults(copy.deepcopy(data))
        return data

    @property
    def reports_dir(self) -> Path:
        """Where the HTML report of each monitor pass is written: `<state_dir>/reports`."""
        return self.state_dir / "reports"

    def anchored(self, folder: Path | None = None) -> Settings:
        """These settings with every relative path a worker needs (`state_dir`, the GX
        project, Data Docs, suites, cache, a SQLite file) made absolute against `folder`
        (default: the current directory), so they mean the same on a worker started in
        another folder."""
        base = (folder or Path.cwd()).resolve()
        v, d = self.validation, self.download
        url = sqlite_against(base, self.database_url.get_secret_value())
        return self.model_copy(
            update={
                "state_dir": base / self.state_dir,
                "database_url": SecretStr(url),
                "validation": v.model_copy(
                    update={
                        "gx_dir": base / v.gx_dir,
                        "docs_dir": base / v.docs_dir,
                        "suites_dir": None if v.suites_dir is None else base / v.suites_dir,
                    }
                ),
                "download": d.model_copy(update={"cache_dir": base / d.cache_dir}),
                "blocklists": {name: spec.anchored(base) for name, spec in self.blocklists.items()},
            }
        )

    @property
    def remote_runner(self) -> bool:
        """Shards run on an existing Dask cluster (`monitor.dask_address`), maybe on other
        hosts."""
        return self.monitor.task_runner == "dask" and bool(self.monitor.dask_address)

    @model_validator(mode="after")
    def _shared_store(self) -> Settings:
        """A remote runner's workers must share one store: SQLite is one file on one host."""
        if self.remote_runner and self.database_url.get_secret_value().startswith("sqlite"):
            raise ValueError(
                "SQLite cannot be shared by the workers of monitor.dask_address: "
                "set database_url to PostgreSQL"
            )
        return self

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
        for name in self.blocklists:
            problem = blocklist_name_problem(name)
            if problem:
                raise ValueError(f"blocklist name '{shown(name)}' {problem}")
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
        return resolve_profile(name or self.profile, self.profiles, ())

    def active_lexicon(self, name: str | None = None) -> Lexicon:
        """The named (default: selected) lexicon, built-in or from the config."""
        return resolve_lexicon(name or self.lexicon_name(), self.lexicons, ())

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
