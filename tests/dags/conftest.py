"""Airflow for the DAG tests: a throw-away AIRFLOW_HOME with a SQLite metadata DB.

Airflow reads its configuration when first imported, so the environment is set here,
at collection time, before any test module imports it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import reset_metadata_db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = PROJECT_ROOT / "dags"
AIRFLOW_TEST_HOME = Path(tempfile.mkdtemp(prefix="lakehouse-airflow-tests-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_TEST_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_TEST_HOME / 'airflow.db'}",
        "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[2]"}',
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated, empty metadata DB in the test AIRFLOW_HOME."""
    from airflow.configuration import conf

    if Path(conf.get("core", "dags_folder")) != DAGS_FOLDER:
        pytest.fail(
            "Airflow was configured before tests/dags/conftest.py ran; run the DAG tests "
            "in their own pytest process"
        )
    reset_metadata_db()
    return AIRFLOW_TEST_HOME


@pytest.fixture
def dag_bag(monkeypatch: pytest.MonkeyPatch, lakehouse: str) -> Iterator[object]:
    """The DAGs parsed for a fresh lakehouse root (the root is fixed when a DAG is parsed)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("LAKEHOUSE_ROOT", lakehouse)
    yield DagBag(dag_folder=str(DAGS_FOLDER))
