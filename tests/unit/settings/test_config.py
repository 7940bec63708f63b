"""Settings: defaults, TOML, environment precedence, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shardwatch.core.lexicon import BIRHANE2021, PRECISE2026
from shardwatch.settings.config import ConfigError, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run in an empty directory with no SHARDWATCH_* variables."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in __import__("os").environ if n.startswith("SHARDWATCH_")]:
        monkeypatch.delenv(name)


def test_defaults_are_laion400m_and_precise2026() -> None:
    settings = load_settings()
    profile, lexicon = settings.dataset_profile(), settings.active_lexicon()
    assert profile.name == "laion400m"
    assert profile.similarity_threshold == 0.3
    assert profile.nsfw_labels == ("UNLIKELY", "UNSURE", "NSFW")
    assert profile.column("text") == "TEXT" and profile.column("id") == "SAMPLE_ID"
    assert lexicon is PRECISE2026 and settings.lexicon_name() == "precise2026"
    assert all(p.mode == "word" for p in lexicon.keywords + lexicon.terms)
    # the paper's rule stays one option away, exactly as it was
    assert settings.active_lexicon("birhane2021") is BIRHANE2021


def test_every_builtin_profile_defaults_to_precise2026_unless_told(tmp_path: Path) -> None:
    for name in load_settings().available_profiles():
        assert load_settings(profile=name).active_lexicon() is PRECISE2026, name
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "profile = 'mine'\n[profiles.mine]\nextends = 'laion400m'\nlexicon = 'birhane2021'\n"
    )
    assert load_settings(cfg).active_lexicon() is BIRHANE2021
    assert load_settings(cfg, lexicon="precise2026").active_lexicon() is PRECISE2026


def test_config_lexicon_entries_take_forms(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "lexicon = 'mine'\n[lexicons.mine]\n"
        "terms = ['desi', {term = 'nun', forms = ['Nuns']}]\n"
        "keywords = [{term = 'sexy', mode = 'word', forms = ['sexier']}]\n"
    )
    lexicon = load_settings(cfg).active_lexicon()
    assert lexicon.terms[1].needles == ("nun", "nuns") and lexicon.terms[1].mode == "word"
    assert lexicon.keywords[0].needles == ("sexy", "sexier")
    cfg.write_text(
        "lexicon = 'mine'\n[lexicons.mine]\nterms = ['nuns', {term = 'nun', forms = ['NUNS']}]\n"
    )
    with pytest.raises(ConfigError, match="share the spelling 'nuns'"):
        load_settings(cfg)


def test_toml_defines_profile_and_lexicon(tmp_path: Path) -> None:
    cfg = tmp_path / "custom.toml"
    cfg.write_text(
        """
profile = "coyo"
lexicon = "mine"
[profiles.coyo]
columns = { id = "id", url = "url", text = "text", similarity = "clip_similarity_vitb32" }
similarity_threshold = 0.28
[lexicons.mine]
extends = "birhane2021"
terms = ["abuelita", { term = "SchoolGirl", mode = "substring" }]
keywords = ["nsfw"]
"""
    )
    settings = load_settings(cfg)
    profile = settings.dataset_profile()
    assert profile.column("similarity") == "clip_similarity_vitb32"
    assert profile.column("nsfw_tag") is None
    assert profile.similarity_threshold == 0.28
    lexicon = settings.active_lexicon()
    modes = {p.term: p.mode for p in lexicon.terms}
    assert modes["abuelita"] == "word" and modes["SchoolGirl"] == "substring"
    assert modes["desi"] == "word"  # inherited
    kws = {p.term: p.mode for p in lexicon.keywords}
    assert kws["nsfw"] == "substring" and "porn" in kws


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shardwatch.toml").write_text(
        'workers = 3\n[alerts.rules.nsfw-tag-rate]\nmax = 0.2\n'
    )
    monkeypatch.setenv("SHARDWATCH_WORKERS", "5")
    monkeypatch.setenv("SHARDWATCH_ALERTS__RULES__NSFW-TAG-RATE__MIN_SUPPORT", "7")
    settings = load_settings()  # ./shardwatch.toml is picked up
    assert settings.workers == 5
    rule = {r.name: r for r in settings.alerts.active_rules()}["nsfw-tag-rate"]
    assert (rule.max, rule.min_support) == (0.2, 7)
    assert load_settings(workers=1).workers == 1  # explicit override beats the environment


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("profile = 'nope'\n", "unknown profile 'nope'"),
        ("lexicon = 'nope'\n", "unknown lexicon 'nope'"),
        ("workers = 0\n", "workers"),
        ("bogus = 1\n", "bogus"),
        ("[lexicons.a]\nextends = 'a'\n", "extends itself"),
        ("[lexicons.a]\nterms = ['x', 'X']\n", "duplicate term"),
        ("[lexicons.a]\nterms = [{term='x', mode='fuzzy'}]\n", "mode"),
        ("[profiles.p]\ncolumns = {caption = 'c'}\n", "caption"),
        ("profile = 'p'\n[profiles.p]\ncolumns = {text = 'c'}\n", "similarity_threshold"),
        ("this is not toml", "not valid TOML"),
        (
            "[profiles.p]\nextends = 'laion400m'\nnsfw_labels = ['<script>x</script>']\n",
            "must be 1-64 letters",
        ),
        ("[validation]\nkeep_results = 0\n", "keep_results"),
        ("[validation]\nsuite = '../../etc/x'\n", "suite"),
        ("[validation]\npartial_unexpected = 1000\n", "partial_unexpected"),
    ],
)
def test_bad_configuration_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_settings(cfg)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")


def test_validation_settings_default_to_the_profile_suite_and_read_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    assert settings.suite_name() == "laion400m" and settings.validation.enabled
    assert str(settings.validation.docs_dir) == ".shardwatch/docs"
    monkeypatch.setenv("SHARDWATCH_VALIDATION__SUITE", "strict")
    monkeypatch.setenv("SHARDWATCH_VALIDATION__KEEP_RESULTS", "7")
    settings = load_settings()
    assert settings.suite_name() == "strict" and settings.validation.keep_results == 7


def test_alert_channel_secrets_come_from_file_or_environment_and_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "sw.toml"
    cfg.write_text('[alerts.channels.team]\ntype = "slack"\nwebhook_url = "https://h/file-secret"\n')
    settings = load_settings(cfg)
    assert settings.alerts.channels["team"].type == "slack"
    assert "file-secret" not in settings.model_dump_json() + repr(settings)
    assert list(load_settings().alerts.channels) == ["console"]  # the default
    monkeypatch.setenv("SHARDWATCH_ALERTS__CHANNELS__TEAM__WEBHOOK_URL", "https://h/env-secret")
    spec = load_settings(cfg).alerts.channels["team"]
    assert spec.type == "slack" and spec.webhook_url.get_secret_value() == "https://h/env-secret"
    with pytest.raises(ConfigError, match=r"alerts\.channels\.team"):  # needs a channel
        load_settings()
    cfg.write_text('[alerts.channels.x]\ntype = "pager"\n')
    with pytest.raises(ConfigError, match="pager"):
        load_settings(cfg)


def test_sources_of_every_type_and_their_secrets(tmp_path: Path) -> None:
    from shardwatch.acquire.http_listing import HttpListingSource
    from shardwatch.acquire.hub import HuggingFaceSource
    from shardwatch.acquire.local import LocalSource
    from shardwatch.acquire.object_store import ObjectStoreSource
    from shardwatch.pipeline.monitor import build_source

    cfg = tmp_path / "sources.toml"
    cfg.write_text(f"""
[sources.files]
type = "local"
path = "{tmp_path}"
[sources.mirror]
type = "http"
manifest = "https://Mirror.Example.org/m.json"
extra_hosts = ["CDN.example.org"]
[sources.hub]
type = "hf"
repo = "org/data"
token = "hf_CANARYTOKEN"
[sources.bucket]
type = "object"
uri = "s3://bucket/prefix/"
region = "eu-west-1"
[download]
read_timeout = 7
""")
    settings = load_settings(cfg)
    kinds = {name: type(build_source(settings, name)) for name in settings.sources}
    assert kinds == {"files": LocalSource, "mirror": HttpListingSource,
                     "hub": HuggingFaceSource, "bucket": ObjectStoreSource}
    mirror = build_source(settings, "mirror")
    assert isinstance(mirror, HttpListingSource)
    assert mirror.hosts == frozenset({"mirror.example.org", "cdn.example.org"})
    hub = build_source(settings, "hub")
    assert "hf_CANARYTOKEN" not in repr(hub)
    assert "hf_CANARYTOKEN" not in settings.model_dump_json()
    bad = tmp_path / "bad.toml"
    bad.write_text('[sources.hub]\ntype = "hf"\nrepo = "../../etc"\n')
    with pytest.raises(ConfigError, match=re.escape("sources.hub.hf.repo")):
        load_settings(bad)
