"""Shared fixtures: one SparkSession for the whole test run, a fresh lakehouse per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("SPARK_DRIVER_MEMORY", "3g")


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
