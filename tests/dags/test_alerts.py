"""include.alerts: the log always, a webhook or a mail through ``lakehouse_alerts``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest

from include import alerts
from tests.alert_sinks import http_connection, smtp, webhook

ALERT = alerts.Alert(
    kind="gate_failed",
    dag_id="purchases_daily",
    run_id="scheduled__2026-03-02T00:00:00+00:00",
    task_id="silver_purchases",
    logical_date="2026-03-02",
    message="silver_purchases: the validation gate rejected the staged rows",
    detail={"try_number": 1},
)


def test_without_a_connection_the_alert_goes_to_the_log(monkeypatch, caplog) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_LAKEHOUSE_ALERTS", raising=False)
    with caplog.at_level(logging.WARNING, logger="lakehouse.alerts"):
        assert alerts.send(ALERT) is False
    assert "lakehouse alert [lakehouse] gate_failed: purchases_daily.silver_purchases" in (
        caplog.text
    )


def test_a_webhook_connection_gets_the_alert_as_json(monkeypatch) -> None:
    with webhook() as (port, received):
        monkeypatch.setenv("AIRFLOW_CONN_LAKEHOUSE_ALERTS", http_connection(port, "s3cret"))
        assert alerts.send(ALERT) is True
    (body,) = received.items
    assert body["kind"] == "gate_failed" and body["task_id"] == "silver_purchases"
    assert body["subject"] == ALERT.subject()
    assert received.headers[0]["Authorization"] == "Bearer s3cret"


def test_an_smtp_connection_gets_the_alert_as_a_mail(monkeypatch) -> None:
    with smtp() as (port, received):
        extra = {"from": "lakehouse@example.org", "to": ["oncall@example.org"]}
        conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_LAKEHOUSE_ALERTS", json.dumps(conn))
        assert alerts.send(ALERT) is True
    (mail,) = received.items
    assert "oncall@example.org" in str(mail["to"])
    assert f"Subject: {ALERT.subject()}" in mail["data"]
    assert "validation gate rejected" in mail["data"]


def test_a_delivery_that_fails_is_logged_and_never_raises(monkeypatch, caplog) -> None:
    with webhook() as (port, _):
        pass  # closed: nothing listens on the port any more
    monkeypatch.setenv("AIRFLOW_CONN_LAKEHOUSE_ALERTS", http_connection(port))
    assert alerts.send(ALERT) is False
    assert "not delivered through lakehouse_alerts" in caplog.text


def run_context(run_type: str) -> dict:
    return {
        "dag_run": {"dag_id": "purchases_daily", "dag_run_id": f"{run_type}__2026-03-02",
                    "run_type": run_type, "state": "running",
                    "logical_date": "2026-03-02T00:00:00Z"},
        "deadline": {"id": "d1", "deadline_time": "2026-03-03T12:00:00Z"},
    }  # fmt: skip


def test_a_missed_deadline_of_a_scheduled_run_alerts_and_a_backfill_does_not(monkeypatch) -> None:
    monkeypatch.delenv(alerts.RUN_TYPES_ENV, raising=False)
    with webhook() as (port, received):
        monkeypatch.setenv("AIRFLOW_CONN_LAKEHOUSE_ALERTS", http_connection(port))
        asyncio.run(alerts.on_missed_deadline(context=run_context("backfill")))
        asyncio.run(alerts.on_missed_deadline(context=run_context("scheduled")))
    (body,) = received.items
    assert body["kind"] == "deadline_missed"
    assert body["run_id"] == "scheduled__2026-03-02" and body["logical_date"] == "2026-03-02"
    assert "2026-03-03T12:00:00Z" in body["message"]


def test_the_daily_dag_has_the_deadline_and_the_stage_tasks_the_failure_hook(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from tests.factories import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["purchases_daily"]
    (deadline,) = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert deadline.interval == dt.timedelta(hours=alerts.DEFAULT_DEADLINE_HOURS)
    assert deadline.callback.path == "include.alerts.on_missed_deadline"
    stages = [t for t in dag.tasks if t.task_id != "landing_purchases"]
    assert stages and all(alerts.on_stage_failure in (t.on_failure_callback or [])
                          for t in stages)  # fmt: skip


@pytest.mark.parametrize(("value", "hours"), [("", 36.0), ("6", 6.0), ("off", None), ("x", 36.0)])
def test_the_deadline_hours_come_from_the_environment(monkeypatch, value, hours) -> None:
    monkeypatch.setenv(alerts.DEADLINE_ENV, value)
    assert alerts.deadline_hours() == hours
