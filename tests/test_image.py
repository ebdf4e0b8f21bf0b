"""The image runs as a non-root user and its API server needs a login (static checks and a
real run of the entrypoint script with a stand-in ``airflow``; no Docker engine needed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
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
