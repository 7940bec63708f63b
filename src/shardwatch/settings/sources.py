"""Source settings: `[sources.<name>]`, where the monitor finds shards (a local folder, an
HTTP manifest, a Hugging Face Hub repository or an object store)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr

from shardwatch.settings.base import StrictModel


class LocalSourceSpec(StrictModel):
    type: Literal["local"]
    path: str = Field(
        description="A folder (its *.parquet files) or a glob, e.g. data/**/*.parquet."
    )


class HttpSourceSpec(StrictModel):
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


class HfSourceSpec(StrictModel):
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


class ObjectStoreSourceSpec(StrictModel):
    type: Literal["object"]
    uri: str = Field(description="s3://bucket/prefix, gs://bucket/prefix or file:///dir.")
    region: str | None = None
    endpoint_override: str | None = None
    anonymous: bool = False


SourceSpec = Annotated[
    LocalSourceSpec | HttpSourceSpec | HfSourceSpec | ObjectStoreSourceSpec,
    Field(discriminator="type"),
]
