"""What a ``spark_connect`` ``spark_default`` connection hands a job: the server's URL, its
token only through the environment, and ``ship_code`` for a cluster's executors."""

from __future__ import annotations

import pytest


def _target(connection_json: str, root: str) -> tuple[str, dict[str, str]]:
    from airflow.models.connection import Connection

    from include.operators import LakehouseSparkSubmitOperator

    operator = LakehouseSparkSubmitOperator(
        task_id="bronze_purchases", job="ingest_bronze", lakehouse_root=root, job_args=[]
    )
    connection = Connection.from_json(connection_json, conn_id="spark_default")
    return operator._connect_target(connection)


@pytest.mark.parametrize(
    ("extra", "shipped"), [({"ship_code": True}, True), ({}, False), ({"ship_code": False}, False)]
)
def test_ship_code_in_the_connection_extra_makes_the_job_upload_its_package(
    airflow_db, tmp_path, monkeypatch, extra, shipped
) -> None:
    import json

    monkeypatch.delenv("LAKEHOUSE_SHIP_CODE", raising=False)
    connection = {"conn_type": "spark_connect", "host": "localhost", "port": 15011}
    if extra:
        connection["extra"] = extra
    url, env = _target(json.dumps(connection), str(tmp_path))
    assert url == "sc://localhost:15011"
    assert env["SPARK_REMOTE"] == url
    assert (env.get("LAKEHOUSE_SHIP_CODE") == "true") is shipped


def test_the_token_reaches_the_job_environment_and_not_its_url(airflow_db, tmp_path) -> None:
    import json

    connection = {"conn_type": "spark_connect", "host": "sc://localhost", "password": "t0ken-x"}
    url, env = _target(json.dumps(connection), str(tmp_path))
    assert url == "sc://localhost:15002"
    assert "t0ken-x" not in url
    assert env["SPARK_CONNECT_AUTHENTICATE_TOKEN"] == "t0ken-x"
