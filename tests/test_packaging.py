"""The project builds into one wheel: the packages the DAGs and spark-submit import, with
the data they read at run time, and none of the dev code (a real ``uv build``)."""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``uv build --wheel`` makes of the checkout (the build backend of pyproject)."""
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH: `make setup` installs it"
    out_dir = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(out_dir), str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    wheels = list(out_dir.glob("purchase_lakehouse-*.whl"))
    assert len(wheels) == 1, build.stderr
    return wheels[0]


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _checkout_files(folder: str, pattern: str) -> set[str]:
    return {
        path.relative_to(PROJECT_ROOT).as_posix()
        for path in (PROJECT_ROOT / folder).rglob(pattern)
        if "__pycache__" not in path.parts
    }


def test_the_wheel_holds_every_module_of_spark_jobs_and_the_airflow_helpers(wheel):
    names = _names(wheel)
    jobs = _checkout_files("spark_jobs/jobs", "*.py")
    assert "spark_jobs/jobs/build_gold.py" in jobs
    assert jobs <= names
    assert {"spark_jobs/storage/files.py", "spark_jobs/storage/locking.py"} <= names
    assert _checkout_files("spark_jobs", "*.py") <= names
    assert {"include/__init__.py", "include/operators.py", "include/dag_factory.py"} <= names


def test_the_wheel_holds_the_data_the_jobs_read_at_run_time(wheel):
    names = _names(wheel)
    references = _checkout_files("include/reference", "*.csv")
    assert "include/reference/fx_rates.csv" in references
    assert references <= names
    suites = _checkout_files("expectations", "*.json")
    assert "expectations/silver_purchases.json" in suites
    assert suites <= names


def test_the_wheel_has_no_tests_dev_tools_or_build_files(wheel):
    names = _names(wheel)
    for folder in ("tests/", "devtools/", "bench/", "dags/", "plugins/", "include/constraints/"):
        assert not [name for name in names if name.startswith(folder)], folder
    for name in (
        "include/pom.xml",
        "include/audit.sh",
        "include/audit-ignore.txt",
        "include/docker-entrypoint.sh",
        "include/make_fx_rates.py",
    ):
        assert name not in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_wheel_needs_the_runtime_dependencies_only(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(metadata_name))
    requires = metadata.get_all("Requires-Dist") or []
    assert "pyspark==4.2.0" in requires
    assert "delta-spark==4.4.0" in requires
    assert "apache-airflow==3.3.2; extra == 'airflow'" in requires
    assert metadata.get_all("Provides-Extra") == ["airflow"]
    assert not [r for r in requires if r.split(";")[0].startswith(("pytest", "ruff", "moto"))]


def test_an_installed_wheel_finds_the_suites_and_the_reference_data_beside_its_code(
    wheel, tmp_path
):
    """A pure wheel installs by unpacking into site-packages; the checkout is not involved."""
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    probe = (
        "import json, spark_jobs.config as c\n"
        "from spark_jobs.catalog import reference_path\n"
        "from spark_jobs.quality.suites import suite_file\n"
        "print(json.dumps({'code': c.__file__, 'suite': str(suite_file('silver_purchases')),"
        " 'reference': reference_path('currencies.csv')}))\n"
    )
    # PYTHONPATH puts the unpacked wheel ahead of the editable checkout the venv holds.
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = {key: Path(value) for key, value in json.loads(result.stdout).items()}
    assert found["code"] == site / "spark_jobs" / "config.py"
    assert found["suite"] == site / "expectations" / "silver_purchases.json"
    assert found["suite"].is_file()
    assert found["reference"] == site / "include" / "reference" / "currencies.csv"
    assert (
        found["reference"].read_bytes()
        == (PROJECT_ROOT / "include" / "reference" / "currencies.csv").read_bytes()
    )
