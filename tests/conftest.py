"""Shared fixtures: one SparkSession per test process, a fresh lakehouse per test.

``make test`` runs two pytest-xdist workers, each taking whole test files; the longest
files are collected first so that neither worker is left with one of them at the end
(``--no-loadscope-reorder`` keeps that order: xdist sorts files by test count otherwise,
which starts the long files, with few tests each, last).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("SPARK_DRIVER_MEMORY", "3g")
# The tests' days are small: compiling every query to Java costs more than running it
# interpreted (bench/codegen.py, docs/BENCHMARKS.md). The children the tests start (jobs,
# Airflow tasks, Connect servers) inherit the setting.
os.environ.setdefault("SPARK_CODEGEN", "off")
# Run metrics (ops.stage_runs) cost every stage run one more Spark job and one more Delta
# commit. Tests about something else run without them; the tests of the metrics, of the
# DAG runs and of the Operations page record them, as production does by default
# (tests.factories.ops_metrics_on).
os.environ.setdefault("LAKEHOUSE_OPS_METRICS", "off")

# Test files that take minutes (a whole DAG run, Airflow and a browser, multi-day
# builds), longest first; every other file keeps its place after them.
LONG_FILES = (
    "tests/convergence/test_convergence.py",
    "tests/convergence/test_crash_recovery.py",
    "tests/dags/test_airflow_postgres.py",
    "tests/convergence/test_concurrent_writers.py",
    "tests/dags/test_object_store_dag.py",
    "tests/dags/test_spark_cluster.py",
    "tests/jobs/test_spark_connect.py",
    "tests/browser/test_airflow_ui.py",
    "tests/dags/test_dag_runs.py",
    "tests/jobs/test_build_features.py",
    "tests/jobs/test_build_silver.py",
    "tests/storage/test_object_store_lock.py",
)


# tests/ mirrors the code: one folder per layer of spark_jobs (docs/ARCHITECTURE.md), then
# the jobs, the multi-job convergence runs, the dev tools and the Airflow side. Every test
# is marked with its folder's marker, so a layer runs alone: `pytest -m unit` is the fast
# set of `make test-fast` (the layers below the jobs, each on small in-memory frames).
FOLDER_MARKERS = {
    "core": ("unit",),
    "storage": ("unit",),
    "transforms": ("unit",),
    "quality": ("unit",),
    "training": ("unit",),
    "jobs": ("jobs",),
    "ops": ("ops",),
    "convergence": ("convergence", "slow"),
    "devtools": ("devtools",),
    "dags": ("airflow",),
    "plugins": ("airflow",),
    "browser": ("browser",),
}
MARKERS = {
    "unit": "the layers below the jobs: core, storage, transforms, quality, training",
    "jobs": "one job end to end on a small lakehouse (tests/jobs)",
    "ops": "run metrics, the operations report, the event log and History Server",
    "convergence": "several jobs in any order, killed or concurrent (tests/convergence)",
    "devtools": "the sample-data generator and other dev tools",
    "slow": "end-to-end runs over a generated multi-day data set",
    "airflow": "runs real Airflow DAGs or the API server against a metadata DB",
    "browser": "drives a real Chromium against the running Airflow UI",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def _relative(config: pytest.Config, item: pytest.Item) -> Path:
    return Path(str(item.path)).relative_to(config.rootpath)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's markers; collect the long files first.

    The sort is stable: the order within a file is kept.
    """
    rank = {name: number for number, name in enumerate(LONG_FILES)}
    for item in items:
        parts = _relative(config, item).parts
        folder = parts[1] if len(parts) > 2 else ""
        for marker in FOLDER_MARKERS.get(folder, ()):
            item.add_marker(marker)

    def place(item: pytest.Item) -> int:
        return rank.get(_relative(config, item).as_posix(), len(LONG_FILES))

    items.sort(key=place)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """The test run's only SparkSession: Delta, UTC, jars from the local cache."""
    from spark_jobs.config import Settings
    from spark_jobs.session import build_spark

    session = build_spark(
        # Tests on the event log run a job of their own: this session serves many roots.
        Settings.from_env(
            spark_master="local[2]", shuffle_partitions=2, s3a_jars=True, event_log="off"
        ),
        app_name="lakehouse-tests",
        extra_conf={"spark.sql.adaptive.coalescePartitions.enabled": "true"},
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A Spark Connect server on loopback with a token, for the test process's lifetime."""
    import secrets

    from spark_jobs import connect_server as server
    from spark_jobs.config import Settings
    from tests.factories import ConnectServer, free_port

    port = free_port()
    token = secrets.token_urlsafe(24)
    log_path = tmp_path_factory.mktemp("spark-connect") / "server.log"
    settings = Settings.from_env(
        spark_master="local[2]", shuffle_partitions=2, driver_memory="2g", spark_remote=""
    )
    env = {**os.environ, server.TOKEN_ENV: token}
    process = server.start(settings, log_path, port=port, env=env)
    try:
        server.wait_ready(process, log_path, port=port)
        yield ConnectServer(server.remote_url(port=port), token)
    finally:
        server.stop(process)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real S3-compatible server (s3proxy) on loopback, with the bucket ``S3_BUCKET``."""
    from devtools.s3_server import S3Server
    from tests.factories import S3_BUCKET, free_port

    server = S3Server(tmp_path_factory.mktemp("s3"), port=free_port())
    server.start()
    try:
        server.create_bucket(S3_BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def lakehouse(tmp_path: Path) -> str:
    """An empty lakehouse root for one test."""
    root = tmp_path / "lakehouse"
    root.mkdir()
    return str(root)
