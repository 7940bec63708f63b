"""infra/: Docker cannot run here, so the compose file, the Dockerfile and prefect.yaml are
checked for structure: valid YAML, the services and their wiring, no literal secrets, and
deployments whose entrypoint is the real flow."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

INFRA = Path(__file__).resolve().parents[3] / "infra"
ROOT = INFRA.parent


def load(name: str) -> Any:
    return yaml.safe_load((INFRA / name).read_text())


def test_compose_file_wires_postgres_prefect_and_a_worker() -> None:
    compose = load("docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"postgres", "prefect-server", "worker"}
    pg, server, worker = services["postgres"], services["prefect-server"], services["worker"]
    assert pg["image"].startswith("postgres:") and "healthcheck" in pg
    assert server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://"
    ) and "@postgres:5432/" in server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker["build"] == {"context": "..", "dockerfile": "infra/Dockerfile"}
    assert set(worker["depends_on"]) == {"postgres", "prefect-server"}
    assert all(p.startswith("127.0.0.1:") for p in server["ports"])  # the UI stays local
    for volume in [*pg["volumes"], *worker["volumes"]]:
        source = volume.split(":")[0]
        assert source in compose["volumes"] or (INFRA / source).exists(), volume


def test_no_literal_secret_in_infra() -> None:
    text = (INFRA / "docker-compose.yml").read_text()
    for match in re.finditer(r"^\s*\w*PASSWORD\w*:\s*(\S+)", text, re.MULTILINE):
        assert match.group(1).startswith("${"), match.group(0)
    assert re.findall(r"//shardwatch:([^@]+)@", text) and all(
        p.startswith("${") for p in re.findall(r"//shardwatch:([^@]+)@", text)
    )
    config = (INFRA / "config" / "shardwatch.toml").read_text()
    assert "webhook_url" not in config and "password" not in config


def test_dockerfile_builds_a_regular_install_run_as_a_user() -> None:
    lines = [ln.strip() for ln in (INFRA / "Dockerfile").read_text().splitlines()]
    instructions = [ln.split()[0] for ln in lines if ln and not ln.startswith("#")]
    assert instructions[0] == "FROM" and "CMD" in instructions and "USER" in instructions
    copied = {ln.split()[1] for ln in lines if ln.startswith("COPY")}
    assert {"src", "db", "flows", "expectations"} <= copied
    for path in copied - {"pyproject.toml"}:
        assert (ROOT / path).exists(), path
    assert any("pip install ." in ln for ln in lines)  # not editable: data ships inside
    assert not any("pip install -e" in ln for ln in lines)
    assert any("SHARDWATCH_STATE_DIR=/srv/shardwatch/.shardwatch" in ln for ln in lines)


def test_prefect_yaml_deploys_the_packaged_monitor_flow() -> None:
    """Module entrypoints (importable from an installed wheel), no pull step (no checkout,
    no SHARDWATCH_HOME), a config parameter that is unset or absolute."""
    spec = load("prefect.yaml")
    assert spec["deployments"] and spec["pull"] == []
    assert "SHARDWATCH_HOME" not in (INFRA / "prefect.yaml").read_text()
    flow_names = {
        node.name
        for node in ast.parse((ROOT / "flows" / "monitor.py").read_text()).body
        if isinstance(node, ast.FunctionDef)
    }
    for deployment in spec["deployments"]:
        module, _, function = deployment["entrypoint"].rpartition(".")
        assert ":" not in deployment["entrypoint"] and module == "shardwatch.flows.monitor"
        assert function in flow_names
        assert deployment["work_pool"]["name"] == "shardwatch"
        config = deployment["parameters"]["config"]
        assert config is None or Path(config).is_absolute()
    crons = [s["cron"] for d in spec["deployments"] for s in d.get("schedules", [])]
    from prefect.client.schemas.schedules import construct_schedule

    for cron in crons:
        construct_schedule(cron=cron)  # raises on an invalid cron
