"""Shared fixtures: one SparkSession per test process, a fresh lakehouse per test.

``make test`` runs two pytest-xdist workers, each taking whole test files; the longest
files are collected first so that neither worker is left with one of them at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("SPARK_DRIVER_MEMORY", "3g")

# Test files that take minutes (a whole DAG run, Airflow and a browser, multi-day
# builds), longest first; every other file keeps its place after them.
LONG_FILES = (
    "tests/dags/test_dag_runs.py",
    "tests/browser/test_airflow_ui.py",
    "tests/spark_jobs/test_convergence.py",
    "tests/spark_jobs/test_concurrent_writers.py",
    "tests/spark_jobs/test_build_features.py",
    "tests/spark_jobs/test_crash_recovery.py",
    "tests/spark_jobs/test_build_silver.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Collect the long test files first (a stable sort: order within a file is kept)."""
    rank = {name: number for number, name in enumerate(LONG_FILES)}

    def place(item: pytest.Item) -> int:
        relative = Path(str(item.path)).relative_to(config.rootpath).as_posix()
        return rank.get(relative, len(LONG_FILES))

    items.sort(key=place)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """The test run's only SparkSession: Delta, UTC, jars from the local cache."""
    from spark_jobs.config import Settings
    from spark_jobs.session import build_spark

    session = build_spark(
        Settings.from_env(spark_master="local[2]", shuffle_partitions=2, s3a_jars=True),
        app_name="lakehouse-tests",
        extra_conf={"spark.sql.adaptive.coalescePartitions.enabled": "true"},
    )
    yield session
    session.stop()


@pytest.fixture
def lakehouse(tmp_path: Path) -> str:
    """An empty lakehouse root for one test."""
    root = tmp_path / "lakehouse"
    root.mkdir()
    return str(root)
