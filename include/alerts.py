"""Alerts: a day not published in time, a gate that rejected a stage, told to people.

Two hooks call ``send``:

- ``on_missed_deadline``: the ``DeadlineAlert`` of ``purchases_daily``
  (``dag_factory.publish_deadline``), run by Airflow's triggerer when a day's run has
  not finished ``LAKEHOUSE_PUBLISH_DEADLINE_HOURS`` after its logical date (36 h: the day
  ends, landing may take 12 h, the stages need the rest). Only runs of the kinds in
  ``LAKEHOUSE_ALERT_RUN_TYPES`` (default ``scheduled``) alert: a backfill of last month
  is late by design.
- ``on_stage_failure``: the ``on_failure_callback`` of every stage task; a gate
  rejection is ``gate_failed``, anything else ``task_failed``.

``send`` always writes the alert to the log (logger ``lakehouse.alerts``, WARNING). If
the Airflow connection ``lakehouse_alerts`` exists it also delivers it: an ``http`` /
``https`` connection gets the alert as a JSON POST (a chat or paging webhook), an
``smtp`` / ``email`` connection gets it as a mail (``extra``: ``from``, ``to``; port 465
is SMTPS, any other port tries STARTTLS when the server offers it). A delivery that
fails is logged and never fails the task or the triggerer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import smtplib
import ssl
import urllib.request
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any

log = logging.getLogger("lakehouse.alerts")

ALERT_CONN_ID = "lakehouse_alerts"
RUN_TYPES_ENV = "LAKEHOUSE_ALERT_RUN_TYPES"
DEADLINE_ENV = "LAKEHOUSE_PUBLISH_DEADLINE_HOURS"
DEFAULT_DEADLINE_HOURS = 36.0
GATE_REJECTED = "the validation gate rejected"  # in the message of include.operators
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Alert:
    """What went wrong, where, and what to do about it."""

    kind: str  # deadline_missed, gate_failed, task_failed
    dag_id: str
    run_id: str
    message: str
    task_id: str | None = None
    logical_date: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def subject(self) -> str:
        where = f"{self.dag_id}.{self.task_id}" if self.task_id else self.dag_id
        return f"[lakehouse] {self.kind}: {where} {self.logical_date or self.run_id}"


def send(alert: Alert) -> bool:
    """Log the alert; deliver it through ``lakehouse_alerts`` if set. True if delivered."""
    log.warning("lakehouse alert %s: %s", alert.subject(), alert.message)
    connection = _connection()
    if connection is None:
        return False
    kind = (connection.conn_type or "").lower()
    try:
        if kind in ("http", "https"):
            _post(connection, alert)
        elif kind in ("smtp", "email"):
            _mail(connection, alert)
        else:
            log.warning("connection %s: type %r cannot carry alerts (http, https, smtp)",
                        ALERT_CONN_ID, kind)  # fmt: skip
            return False
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        log.warning("alert %s not delivered through %s: %s", alert.kind, ALERT_CONN_ID, exc)
        return False
    log.info("alert %s delivered through %s (%s)", alert.kind, ALERT_CONN_ID, kind)
    return True


def on_stage_failure(context: Any) -> None:
    """``on_failure_callback`` of a stage task."""
    ti = context["ti"]
    error = str(context.get("exception") or "")
    kind = "gate_failed" if GATE_REJECTED in error else "task_failed"
    dag_run = context.get("dag_run")
    send(
        Alert(
            kind=kind,
            dag_id=str(ti.dag_id),
            run_id=str(getattr(dag_run, "run_id", "") or ti.run_id),
            task_id=str(ti.task_id),
            logical_date=str(context.get("ds") or ""),
            message=(error.strip().splitlines() or ["the task failed"])[0][:500],
            detail={"try_number": ti.try_number, "error": error[-2000:]},
        )
    )


async def on_missed_deadline(context: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """The deadline callback: the triggerer awaits it with a small context of the run."""
    run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    run_type = str(run.get("run_type") or "")
    if run_type not in alert_run_types():
        log.info("run %s (%s) missed its publish deadline; %s runs do not alert (%s)",
                 run.get("dag_run_id"), run_type, run_type, RUN_TYPES_ENV)  # fmt: skip
        return
    alert = Alert(
        kind="deadline_missed",
        dag_id=str(run.get("dag_id") or kwargs.get("dag_id") or ""),
        run_id=str(run.get("dag_run_id") or ""),
        logical_date=str(run.get("logical_date") or "")[:10] or None,
        message=(
            f"not published by {deadline.get('deadline_time')}: the run is "
            f"{run.get('state')}; open it in the Airflow UI (a sensor still waiting for "
            f"landing files, a stage retrying, or a run that never started)"
        ),
        detail={"run_type": run_type, "deadline": str(deadline.get("deadline_time"))},
    )
    await asyncio.to_thread(send, alert)


def alert_run_types() -> set[str]:
    """The kinds of DAG run whose missed deadlines alert."""
    value = os.environ.get(RUN_TYPES_ENV, "scheduled")
    return {part.strip() for part in value.split(",") if part.strip()}


def deadline_hours() -> float | None:
    """Hours after a run's logical date by which its day must be published (None: off)."""
    value = os.environ.get(DEADLINE_ENV, "").strip().lower()
    if value in ("off", "none", "false"):
        return None
    try:
        hours = float(value) if value else DEFAULT_DEADLINE_HOURS
    except ValueError:
        log.warning("%s=%r is not a number of hours; using %s", DEADLINE_ENV, value,
                    DEFAULT_DEADLINE_HOURS)  # fmt: skip
        return DEFAULT_DEADLINE_HOURS
    return max(0.0, hours)


def _connection() -> Any:
    try:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(ALERT_CONN_ID)
    except Exception:
        return None


def _post(connection: Any, alert: Alert) -> None:
    scheme = (connection.schema or connection.conn_type or "http").lower()
    scheme = scheme if scheme in ("http", "https") else "http"
    host = connection.host or "localhost"
    url = host if "://" in host else f"{scheme}://{host}"
    if connection.port and "://" not in host:
        url += f":{connection.port}"
    extra = connection.extra_dejson if isinstance(connection.extra_dejson, dict) else {}
    url += str(extra.get("endpoint", ""))
    body = json.dumps({**asdict(alert), "subject": alert.subject(),
                       "sent_at": dt.datetime.now(dt.UTC).isoformat()}).encode()  # fmt: skip
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    if connection.password:
        request.add_header("Authorization", f"Bearer {connection.password}")
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        if response.status >= 300:
            raise OSError(f"webhook answered {response.status}")


def _mail(connection: Any, alert: Alert) -> None:
    extra = connection.extra_dejson if isinstance(connection.extra_dejson, dict) else {}
    recipients = extra.get("to")
    if not recipients:
        raise ValueError(f"connection {ALERT_CONN_ID} has no 'to' in its extra")
    message = EmailMessage()
    message["Subject"] = alert.subject()
    message["From"] = extra.get("from") or connection.login or "lakehouse@localhost"
    message["To"] = recipients if isinstance(recipients, str) else ", ".join(recipients)
    message.set_content(f"{alert.message}\n\n{json.dumps(alert.detail, indent=2, default=str)}")
    port = connection.port or 25
    host = connection.host or "localhost"
    if port == 465:
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_SECONDS,
                                                context=ssl.create_default_context())  # fmt: skip
    else:
        server = smtplib.SMTP(host, port, timeout=TIMEOUT_SECONDS)
    with server:
        server.ehlo()
        if port != 465 and server.has_extn("starttls"):
            server.starttls(context=ssl.create_default_context())
        if connection.login and connection.password:
            server.login(connection.login, connection.password)
        server.send_message(message)
