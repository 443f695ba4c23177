"""docker-compose.yml, Dockerfile, .env.example: valid, pinned, healthy, real entry points.

The compose file is validated against the Compose Specification JSON schema vendored by
``check-jsonschema``, as written and after interpolating it with ``.env.example`` the way
``docker compose config`` does (every ``${VAR:?…}`` must resolve). No Docker engine or compose
CLI is needed; the result of running ``docker-compose config -q`` by hand is recorded in
docs/deployment.md.
"""

from __future__ import annotations

import ast
import importlib.resources
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from workflows.search_attributes import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
BUILT = {"worker", "gateway", "codec-server", "sandbox", "migrate"}
ONE_SHOT = {"temporal-schema", "temporal-setup", "escrow-db", "migrate"}
SECRET_NAMES = re.compile(r"(PASSWORD|PWD|TOKEN|SECRET|API_KEYS?|_KEYS)$")


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def registered_commands() -> dict[str, str]:
    """Sub-command name -> module, by reading the modules listed in ``COMMAND_MODULES``."""
    cli = ast.parse((ROOT / "starter" / "cli" / "__init__.py").read_text())
    modules: list[str] = []
    for node in ast.walk(cli):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "COMMAND_MODULES" for t in targets):
                assert node.value is not None
                modules = list(ast.literal_eval(node.value))
    commands: dict[str, str] = {}
    for module in modules:
        path = ROOT / Path(*module.split(".")).with_suffix(".py")
        assert path.exists(), f"COMMAND_MODULES names {module}, which does not exist"
        for name in re.findall(r"subparsers\.add_parser\(\s*\"([a-z-]+)\"", path.read_text()):
            commands.setdefault(name, module)
    return commands


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema_file = (
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    )
    schema = json.loads(schema_file.read_text())
    return [
        f"{list(e.path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)
    ]


_VARIABLE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\})")


def interpolate(text: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``$$``."""
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        name, op, arg = match.group(2), match.group(3), match.group(4) or ""
        value = env.get(name)
        if op in (":?", "?"):
            if value is None or (op == ":?" and not value):
                missing.append(f"{name}: {arg}")
                return ""
            return value
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        return value or ""

    return _VARIABLE.sub(substitute, text), missing


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"')
    return values


def test_matches_the_compose_specification_schema() -> None:
    assert schema_errors(compose()) == []


def test_interpolated_with_env_example_still_matches_the_schema() -> None:
    text, missing = interpolate(COMPOSE.read_text(), env_example())
    assert missing == [], "required variables that .env.example leaves empty"
    doc: dict[str, Any] = yaml.safe_load(text)
    assert schema_errors(doc) == []
    assert json.dumps(doc).count("${") == COMPOSE.read_text().count("$${")  # only $$ escapes
    gateway_ports = doc["services"]["gateway"]["ports"]
    assert all(str(port).startswith("127.0.0.1:") for port in gateway_ports)


def test_interpolation_fails_loudly_without_an_env_file() -> None:
    _, missing = interpolate(COMPOSE.read_text(), {})
    names = {entry.split(":", 1)[0] for entry in missing}
    assert {"POSTGRES_PASSWORD", "ESCROW_CODEC_TOKEN"} <= names


def test_every_service_has_a_pinned_image_or_a_build() -> None:
    for name, service in services().items():
        if name in BUILT:
            assert "build" in service, name
            continue
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:\d[\w.-]*", image), f"{name}: unpinned image {image!r}"
    images = {s.get("image", "").split(":")[0] for s in services().values()}
    assert "temporalio/auto-setup" not in images
    assert services()["temporal"]["image"].startswith("temporalio/server:1.32.")
    assert services()["postgresql"]["image"].startswith("postgres:16")


def test_long_running_services_have_healthchecks() -> None:
    for name, service in services().items():
        if name in ONE_SHOT:
            assert "healthcheck" not in service
            continue
        assert "test" in service.get("healthcheck", {}), f"{name} has no healthcheck"


def test_depends_on_uses_conditions() -> None:
    expected = {
        "temporal-schema": ("postgresql", "service_healthy"),
        "temporal": ("temporal-schema", "service_completed_successfully"),
        "temporal-setup": ("temporal", "service_healthy"),
        "worker": ("temporal-setup", "service_completed_successfully"),
        "gateway": ("temporal-setup", "service_completed_successfully"),
        "escrow-db": ("postgresql", "service_healthy"),
        "migrate": ("escrow-db", "service_completed_successfully"),
    }
    for name, (dependency, condition) in expected.items():
        assert services()[name]["depends_on"][dependency]["condition"] == condition
    for name, service in services().items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dep in depends.values():
            assert dep["condition"] in {
                "service_healthy",
                "service_completed_successfully",
            }


def test_sandbox_only_in_its_profile() -> None:
    for name, service in services().items():
        profiles = service.get("profiles")
        assert profiles == (["sandbox"] if name == "sandbox" else None), name


def test_commands_point_at_entry_points_in_the_repo() -> None:
    commands = registered_commands()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["cotpay-escrow"] == "starter.cli:main"
    for name in BUILT:
        command = services()[name]["command"]
        assert isinstance(command, list), f"{name}: use the exec form"
        if command[0] == "python":
            assert (ROOT / command[1]).is_file(), f"{name}: {command[1]} is not in the repo"
            assert '__name__ == "__main__"' in (ROOT / command[1]).read_text()
        else:
            assert command[0] == "cotpay-escrow", name
            assert command[1] in commands, f"{name}: `cotpay-escrow {command[1]}` not registered"
    assert services()["worker"]["command"] == ["python", "worker.py"]
    assert services()["gateway"]["command"][:2] == ["cotpay-escrow", "gateway"]


def cli_services() -> list[str]:
    return sorted(n for n in BUILT if services()[n]["command"][0] == "cotpay-escrow")


@pytest.mark.parametrize("service", cli_services())
def test_cli_accepts_the_compose_flags(service: str) -> None:
    from starter.cli import build_parser

    args = build_parser().parse_args(services()[service]["command"][1:])
    assert callable(args.func)
    if service not in ONE_SHOT:
        assert args.host == "0.0.0.0"


def test_python_services_run_their_script() -> None:
    python = sorted(n for n in BUILT if services()[n]["command"][0] == "python")
    assert python == ["worker"]
    assert set(python) | set(cli_services()) == BUILT
    for name in python:
        script, *flags = services()[name]["command"][1:]
        assert flags == [], f"{name}: {script} takes no flags; settings come from the environment"
        result = subprocess.run(
            [sys.executable, str(ROOT / script), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout


def test_no_secrets_inline() -> None:
    for name, service in services().items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use the mapping form"
        for key, value in environment.items():
            if SECRET_NAMES.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", str(value)), (
                    f"{name}.{key} must come from .env, not be written inline"
                )
        if "TEMPORAL_CODEC_ENDPOINT" in environment:
            assert "/t/${ESCROW_CODEC_TOKEN:?" in environment["TEMPORAL_CODEC_ENDPOINT"]
    for secret in compose()["secrets"].values():
        assert secret["file"].startswith("${"), secret
    text = COMPOSE.read_text()
    assert "BEGIN" not in text and "PRIVATE KEY" not in text


def test_env_example_covers_every_interpolated_variable() -> None:
    example = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line
    }
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE.read_text()))
    assert required <= example, required - example
    assert {"ESCROW_CODEC_TOKEN", "ESCROW_PSEUDONYMIZE_SEARCH", "ESCROW_CODEC_KEYS_FILE"} <= example
    ignored = (ROOT / ".gitignore").read_text() if (ROOT / ".gitignore").exists() else ""
    docker_ignored = (ROOT / ".dockerignore").read_text()
    assert ".env" in ignored.split() or "**/.env" in docker_ignored


def test_namespace_setup_registers_design_search_attributes() -> None:
    script = (ROOT / "deploy" / "temporal" / "setup-namespace.sh").read_text()
    registered = dict(re.findall(r"(\w+):(Keyword|Int|Datetime|Text|Bool|Double)\b", script))
    cli_type = {"KEYWORD": "Keyword", "INT": "Int", "DATETIME": "Datetime"}
    assert registered == {name: cli_type[kind.name] for name, kind in SEARCH_ATTRIBUTES.items()}
    assert set(registered) >= {"EscrowStatus", "SellerId", "BuyerId", "PayoutNotBefore"}
    schema = (ROOT / "deploy" / "temporal" / "setup-postgres.sh").read_text()
    for db in ("temporal", "temporal_visibility"):
        assert db in schema
    assert "temporal-sql-tool" in schema


def test_mounted_files_exist() -> None:
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} missing"


def test_dockerfile_is_slim_non_root_and_pinned() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"python:3\.11-slim", dockerfile)
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.MULTILINE)
    assert "-r deploy/requirements.lock" in dockerfile
    lock = (ROOT / "deploy" / "requirements.lock").read_text()
    pins = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in lock.splitlines()
        if "==" in line
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = project["dependencies"] + project["optional-dependencies"]["otel"]
    for requirement in runtime:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name} missing from the lock"
    assert all(
        re.fullmatch(r"[\w.-]+==[\w.+-]+", line) for line in lock.splitlines() if "==" in line
    )


def test_the_order_store_is_migrated_before_the_services_start() -> None:
    migrate = services()["migrate"]
    assert migrate["command"] == ["cotpay-escrow", "db", "upgrade"]
    assert migrate["depends_on"] == {"escrow-db": {"condition": "service_completed_successfully"}}
    assert migrate["secrets"] == [] and migrate["volumes"] == []
    for name in ONE_SHOT:
        assert services()[name]["restart"] not in ("always", "unless-stopped"), name
    for name in ("worker", "gateway"):
        assert services()[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    text, missing = interpolate(COMPOSE.read_text(), env_example())
    assert missing == []
    doc: dict[str, Any] = yaml.safe_load(text)
    urls = {
        name: doc["services"][name]["environment"]["ESCROW_DATABASE_URL"]
        for name in ("migrate", "worker", "gateway")
    }
    password = env_example()["ESCROW_DB_PASSWORD"]
    assert set(urls.values()) == {
        f"postgresql+asyncpg://escrow:{password}@postgresql:5432/escrow"
    }, "the job migrates the database the services use"
    setup = doc["services"]["escrow-db"]
    assert setup["environment"]["ESCROW_DB_PASSWORD"] == password
    assert setup["environment"]["PGHOST"] == "postgresql"
    assert setup["image"] == doc["services"]["postgresql"]["image"], "psql of the same release"
    script = ROOT / "deploy" / "postgres" / "create-escrow-db.sh"
    assert setup["volumes"] == [f"./{script.relative_to(ROOT)}:/scripts/create-escrow-db.sh:ro"]
    assert "CREATE DATABASE" in script.read_text()


def test_the_migrate_job_runs_the_store_upgrade() -> None:
    from starter.cli import build_parser
    from starter.cli.db import _upgrade

    args = build_parser().parse_args(services()["migrate"]["command"][1:])
    assert args.func is _upgrade
    assert args.revision == "head"
