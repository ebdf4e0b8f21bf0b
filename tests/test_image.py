"""The image runs as a non-root user and its API server needs a login (static checks and a
real run of the entrypoint script with a stand-in ``airflow``; no Docker engine needed).
It installs the runtime lock and the project's wheel, CI the dev lock; both locks come
from pyproject.toml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
RUNTIME_LOCK = PROJECT_ROOT / "requirements.txt"
DEV_LOCK = PROJECT_ROOT / "requirements-dev.txt"
ENTRYPOINT = PROJECT_ROOT / "include" / "docker-entrypoint.sh"
PASSWORD = "correct-horse-battery-staple"


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_ends_as_a_non_root_user_with_uid_50000():
    users = [value for op, value in _instructions() if op == "USER"]
    assert users, "no USER instruction: the image would run as root"
    final = users[-1].split(":")[0]
    assert final not in ("root", "0")
    assert "--uid 50000" in DOCKERFILE.read_text() and " airflow" in DOCKERFILE.read_text()


def test_the_image_bakes_in_no_password_and_keeps_the_login_on():
    env = " ".join(value for op, value in _instructions() if op in ("ENV", "ARG"))
    assert "PASSWORD" not in env.upper()
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False" in env


def test_the_image_installs_from_the_lock_and_the_pom_and_has_a_healthcheck():
    instructions = _instructions()
    runs = " ".join(value for op, value in instructions if op == "RUN")
    assert "pip install --no-deps -r requirements.txt" in runs
    assert "mvn -q -B -f include/pom.xml package" in runs
    assert any(op == "HEALTHCHECK" and "healthcheck" in value for op, value in instructions)
    entrypoint = [value for op, value in instructions if op == "ENTRYPOINT"][-1]
    assert "include/docker-entrypoint.sh" in entrypoint


def test_the_jars_are_built_in_a_stage_of_their_own_and_the_runtime_has_no_build_tools():
    stages: list[list[tuple[str, str]]] = []
    for op, value in _instructions():
        if op == "FROM":
            stages.append([])
        stages[-1].append((op, value))
    jars = next(s for s in stages if s[0][1].endswith(" AS jars"))
    assert any(op == "RUN" and "mvn -q -B -f include/pom.xml package" in v for op, v in jars)
    runtime = stages[-1]
    assert " AS " not in runtime[0][1]
    runtime_runs = " ".join(v for op, v in runtime if op == "RUN")
    assert "maven" not in runtime_runs and "mvn" not in runtime_runs
    assert "jdk-headless" not in runtime_runs and "jre-headless" in runtime_runs
    assert ("COPY", "--from=jars /src/.cache/jars/ .cache/jars/") in runtime


def test_the_image_installs_the_runtime_lock_and_the_wheel_not_the_dev_lock_or_the_sources():
    instructions = _instructions()
    runs = " ".join(value for op, value in instructions if op == "RUN")
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /dist ." in runs
    assert "pip install --no-deps /tmp/dist/purchase_lakehouse-*.whl" in runs
    assert not [value for _, value in instructions if "requirements-dev.txt" in value]
    copied = [value.split()[0] for op, value in instructions if op == "COPY"]
    assert {"dags/", "plugins/", "include/docker-entrypoint.sh"} <= set(copied)
    for folder in ("tests/", "devtools/", "bench/", "."):
        assert folder not in copied
    env = " ".join(value for op, value in instructions if op == "ENV")
    assert "PYTHONPATH" not in env  # spark_jobs and include import from the installed wheel


def _pins(lock: Path) -> dict[str, str]:
    """``name: version`` of every ``name==version`` line, names normalised as pip does."""
    pins = {}
    for line in lock.read_text().splitlines():
        if re.match(r"^[A-Za-z0-9]", line):
            name, version = line.split()[0].split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _names(requirements: list[str]) -> set[str]:
    return {
        re.sub(r"[-_.]+", "-", re.split(r"[\[=<>!~;\s]", r, maxsplit=1)[0]).lower()
        for r in requirements
    }


def test_the_runtime_lock_has_no_dev_tool_and_the_dev_lock_adds_them_at_the_same_pins():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    dev_tools = _names(project["dependency-groups"]["dev"])
    assert {"pytest", "ruff", "mypy", "playwright", "pip-audit"} <= dev_tools
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    assert not dev_tools & set(runtime)
    assert dev_tools <= set(dev)
    assert {name: dev.get(name) for name in runtime} == runtime
    direct = _names(
        project["project"]["dependencies"] + project["project"]["optional-dependencies"]["airflow"]
    )
    assert direct <= set(runtime)
    assert runtime["pyspark"] == "4.2.0"
    assert runtime["delta-spark"] == "4.4.0"
    assert runtime["apache-airflow"] == "3.3.2"


def test_both_locks_are_compiled_from_pyproject_and_ci_installs_the_dev_lock():
    assert not (PROJECT_ROOT / "requirements.in").exists()
    for lock in (RUNTIME_LOCK, DEV_LOCK):
        assert lock.read_text().startswith(
            "# This file was autogenerated by uv via the following command:\n#    make lock\n"
        )
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    lock_recipe = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert "uv pip compile -q pyproject.toml" in makefile
    assert (
        "--extra airflow --group dev -c $(LOCK_CONSTRAINTS) -o requirements-dev.txt" in lock_recipe
    )
    assert "--extra airflow -c requirements-dev.txt -o requirements.txt" in lock_recipe
    setup_recipe = makefile.split("\n$(DEPS_STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "-r requirements-dev.txt" in setup_recipe
    assert "--no-deps -e ." in setup_recipe
    assert "make setup" in (PROJECT_ROOT / ".ci" / "run").read_text()


@pytest.fixture
def container(tmp_path: Path) -> dict[str, str]:
    """An environment like the image's, with an ``airflow`` that prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "airflow"
    fake.write_text('#!/usr/bin/env bash\necho "airflow $*"\nenv | grep -c PASSWORD= || true\n')
    fake.chmod(0o755)
    # python3 for the script's JSON handling; nothing else from the host PATH is needed.
    (bin_dir / "python3").symlink_to(sys.executable)
    home = tmp_path / "airflow-home"
    home.mkdir()
    return {
        "PATH": os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    }


def _entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(
        [bash, str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_api_server_refuses_to_start_without_a_password(container):
    result = _entrypoint(container, "api-server")
    assert result.returncode != 0
    assert "airflow api-server" not in result.stdout
    assert "LAKEHOUSE_AIRFLOW_PASSWORD" in result.stderr


def test_the_api_server_refuses_a_short_password_without_printing_it(container):
    result = _entrypoint({**container, "LAKEHOUSE_AIRFLOW_PASSWORD": "hunter2"}, "api-server")
    assert result.returncode != 0
    assert "shorter than 12" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_the_api_server_refuses_to_run_with_every_user_an_admin_and_no_login(container):
    env = {
        **container,
        "LAKEHOUSE_AIRFLOW_PASSWORD": PASSWORD,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    result = _entrypoint(env, "api-server")
    assert result.returncode != 0
    assert "ALL_ADMINS" in result.stderr


def test_the_api_server_starts_with_a_password_bound_to_loopback_by_default(container):
    result = _entrypoint({**container, "LAKEHOUSE_AIRFLOW_PASSWORD": PASSWORD}, "api-server")
    assert result.returncode == 0, result.stderr
    first, password_vars = result.stdout.splitlines()
    assert first == "airflow api-server --host 127.0.0.1 --port 8080"
    assert password_vars == "0"  # the clear password is not passed on to Airflow
    assert PASSWORD not in result.stdout + result.stderr
    passwords = Path(container["AIRFLOW_HOME"], "simple_auth_manager_passwords.json")
    assert json.loads(passwords.read_text()) == {"admin": PASSWORD, "viewer": PASSWORD}
    assert passwords.stat().st_mode & 0o077 == 0


def test_the_api_server_binds_to_the_host_and_port_the_operator_chose(container):
    env = {
        **container,
        "LAKEHOUSE_AIRFLOW_PASSWORD": PASSWORD,
        "AIRFLOW_API_HOST": "0.0.0.0",
        "AIRFLOW_API_PORT": "9090",
    }
    result = _entrypoint(env, "api-server", "--workers", "2")
    assert (
        result.stdout.splitlines()[0] == "airflow api-server --host 0.0.0.0 --port 9090 --workers 2"
    )


def test_a_supplied_passwords_file_must_hold_every_user(container, tmp_path):
    supplied = tmp_path / "passwords.json"
    supplied.write_text(json.dumps({"admin": PASSWORD}))
    env = {**container, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(supplied)}
    result = _entrypoint(env, "api-server")
    assert result.returncode != 0
    assert "no password for user(s) viewer" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr

    supplied.write_text(json.dumps({"admin": PASSWORD, "viewer": PASSWORD}))
    result = _entrypoint(env, "api-server")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("airflow api-server --host 127.0.0.1")


def test_other_commands_go_to_airflow_unchanged_and_need_no_password(container):
    result = _entrypoint(container, "scheduler")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "airflow scheduler"


def test_migrate_upgrades_the_db_and_creates_the_writers_pool(container):
    result = _entrypoint(container, "migrate")
    assert result.returncode == 0, result.stderr
    assert "airflow db migrate" in result.stdout
    assert "airflow pools set lakehouse_writers 1" in result.stdout


def _compose() -> dict:
    import yaml

    return yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())


def test_compose_runs_every_component_of_the_production_shape_from_the_one_image():
    services = _compose()["services"]
    assert {
        "postgres", "s3", "spark-master", "spark-worker", "spark-connect", "airflow-migrate",
        "api-server", "scheduler", "dag-processor", "triggerer",
    } <= set(services)  # fmt: skip
    ours = [name for name, service in services.items() if service.get("build") == "."]
    assert {"api-server", "scheduler", "spark-worker", "spark-connect"} <= set(ours)
    assert {services[name]["image"] for name in ours} == {"purchase-lakehouse:latest"}
    # The Airflow components start after the migration and share one environment.
    for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
        service = services[name]
        assert service["depends_on"]["airflow-migrate"]["condition"] == (
            "service_completed_successfully"
        )
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["LAKEHOUSE_ROOT"].startswith("s3a://")
        assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])["extra"] == {"ship_code": True}
    assert services["airflow-migrate"]["command"] == ["migrate"]


def test_compose_publishes_only_the_ui_on_loopback_and_holds_no_secret():
    services = _compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert published == {"api-server": ["127.0.0.1:8080:8080"]}
    text = (PROJECT_ROOT / "compose.yaml").read_text()
    for secret in ("POSTGRES_PASSWORD", "S3_SECRET_KEY", "AIRFLOW_JWT_SECRET"):
        assert f"${{{secret}:?" in text  # required from .env, never written here
    example = (PROJECT_ROOT / ".env.example").read_text()
    assert "change-me" in example
    assert "/.env" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()
