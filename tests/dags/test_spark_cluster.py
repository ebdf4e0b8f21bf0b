"""purchases_daily on a Spark standalone cluster: a master and a worker on loopback, a
Connect server whose driver schedules every query on that worker's executors, and the
``spark_default`` connection pointing at it (``ship_code`` in its extra).

The worker is started as a worker machine would run it (``devtools.spark_cluster``): from
the Spark distribution, outside the checkout, without the project's virtual environment;
its executors run the system Python and import ``spark_jobs`` from the archive each job
uploads to its Connect session (``LAKEHOUSE_SHIP_CODE``). The tables must equal those of
local mode, row for row.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import generate_purchases, spark_cluster
from spark_jobs import connect_server
from spark_jobs.artifacts import ARCHIVE_NAME
from spark_jobs.config import Settings
from tests.factories import (
    ConnectServer,
    connect_connection,
    differences,
    free_port,
    published_rows,
    run_daily,
    run_day,
    run_range,
)

DAYS = (dt.date(2026, 3, 1), dt.date(2026, 3, 2))

pytestmark = pytest.mark.skipif(
    not spark_cluster.SYSTEM_PYTHON, reason="no system Python of the clients' version"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[spark_cluster.StandaloneCluster]:
    home = tmp_path_factory.mktemp("cluster")
    running = spark_cluster.StandaloneCluster(
        home,
        master_port=free_port(),
        master_ui_port=free_port(),
        worker_ui_port=free_port(),
        worker_cores=2,
        worker_memory="2g",
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def server(cluster, tmp_path_factory) -> Iterator[ConnectServer]:
    """A Connect server whose master is the cluster, with the package archive for executors."""
    home = tmp_path_factory.mktemp("cluster-server")
    port = free_port()
    token = secrets.token_urlsafe(24)
    log_path = home / "server.log"
    settings = Settings.from_env(
        spark_master=cluster.master_url,
        shuffle_partitions=2,
        driver_memory="1g",
        spark_remote="",
    )
    env = {**spark_cluster.server_environment(), connect_server.TOKEN_ENV: token}
    process = connect_server.start(settings, log_path, port=port, env=env)
    try:
        connect_server.wait_ready(process, log_path, port=port)
        yield ConnectServer(connect_server.remote_url(port=port), token)
    finally:
        connect_server.stop(process)


@pytest.fixture(scope="module")
def feed(airflow_db, tmp_path_factory) -> Path:
    from tests.factories import reset_metadata_db

    reset_metadata_db()  # Asset names are unique: this module's root owns them
    folder = tmp_path_factory.mktemp("cluster-feed")
    argv = ["--root", str(folder), "--start", str(DAYS[0]), "--end", str(DAYS[-1])]
    assert generate_purchases.main([*argv, "--users", "40", "--skip-dates", "none"]) == 0
    return folder


def with_feed(feed: Path, root: Path) -> str:
    shutil.copytree(feed / "landing", root / "landing")
    return str(root)


def test_the_daily_dag_on_the_cluster_builds_the_tables_of_local_mode(
    spark, cluster, server, feed, tmp_path
) -> None:
    local = with_feed(feed, tmp_path / "local")
    on_cluster = with_feed(feed, tmp_path / "cluster")
    connection = connect_connection(server, ship_code=True)
    run_range(local, DAYS[0], DAYS[-1])
    # The first day in this process, the second through the DAG on the cluster: the
    # cluster's day merges onto published tables, the path where executors do most.
    run_day(on_cluster, DAYS[0])
    states = run_daily(on_cluster, DAYS[1], AIRFLOW_CONN_SPARK_DEFAULT=connection)
    assert set(states.values()) == {"success"}, states

    assert differences(published_rows(spark, on_cluster), published_rows(spark, local)) == []
    # The queries ran on the worker: the server is an application of the master with
    # cores granted, and the worker kept an executor folder for it.
    apps = cluster.state()["activeapps"]
    assert [app["name"] for app in apps] == ["lakehouse-connect"]  # type: ignore[index]
    assert apps[0]["cores"] > 0  # type: ignore[index]
    assert list(cluster.work_dir.glob("app-*/*/stderr"))


CLIENT_PROBE = """
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from spark_jobs.config import Settings
from spark_jobs.session import build_spark

def where_it_runs(_):
    import sys
    try:
        import spark_jobs
    except ImportError as exc:
        return sys.executable + "|" + repr(exc)
    return sys.executable + "|" + spark_jobs.__file__

spark = build_spark(Settings.from_env(), app_name="probe")
udf = F.udf(where_it_runs, StringType(), useArrow=False)
print(spark.range(1).select(udf("id")).first()[0])
"""


def probe(server: ConnectServer, cwd: Path, **extra_env: str) -> tuple[str, str]:
    """Where a UDF of a client's session runs: the executor's Python, and spark_jobs' file."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_GATEWAY_PORT",)}
    env.update(server.client_environment(), **extra_env)
    completed = subprocess.run(
        [sys.executable, "-c", CLIENT_PROBE],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    executable, package = completed.stdout.strip().splitlines()[-1].split("|", 1)
    return executable, package


def test_executors_run_the_system_python_and_import_the_package_a_job_ships(
    server, tmp_path
) -> None:
    executable, package = probe(server, tmp_path, LAKEHOUSE_SHIP_CODE="true")
    assert Path(executable).resolve() == Path(spark_cluster.SYSTEM_PYTHON).resolve()
    assert ".venv" not in executable
    # zipimport names a module inside an archive as <archive>/<path in it>
    assert f"{ARCHIVE_NAME}/spark_jobs/__init__.py" in package, package


def test_a_worker_has_no_copy_of_the_package_of_its_own(server, tmp_path) -> None:
    # Without the upload the same UDF cannot import spark_jobs: the worker really lacks
    # the checkout and the venv, so the test above proves the archive reached it.
    _, package = probe(server, tmp_path)
    assert "ModuleNotFoundError" in package, package
