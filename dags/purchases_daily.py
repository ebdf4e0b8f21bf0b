"""
### purchases_daily

Builds one **landing date** through the lakehouse, every day at 00:00 UTC for the day
that just ended (the run's logical date, `{{ ds }}`).

1. `landing_purchases` waits for `landing/purchases/dt={{ ds }}/*.jsonl`.
2. One task per stage builds its rows, validates them with the stage's Great
   Expectations suite and publishes them only if the gate passes: `bronze_purchases` →
   `silver_purchases` (and quarantine) → `gold_user_daily` → `gold_user_features`.

Rerunning a date replaces exactly that date's rows. Catchup is off: past dates are
built with a backfill (`airflow backfill create --dag-id purchases_daily ...`, see
docs/AIRFLOW.md) or, for long ranges in one Spark job per stage, `purchases_rebuild`.
Each stage task updates its tables' Assets with the Delta version and the gate's report.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, chain
from airflow.timetables.interval import CronDataIntervalTimetable

from include.dag_factory import (
    PURCHASE_STAGES,
    dag_start_date,
    default_args,
    lakehouse_root,
    publish_deadline,
    stage_task,
)
from include.operators import LandingDaySensor

ROOT = lakehouse_root()

with DAG(
    dag_id="purchases_daily",
    # A data-interval timetable: the run at D+1 00:00 UTC has logical date D, the day it builds.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["lakehouse", "purchases", "daily"],
    doc_md=__doc__,
    # A day not published in time alerts (include/alerts.py), from the triggerer.
    deadline=publish_deadline("purchases_daily"),
) as dag:
    landing = LandingDaySensor(
        task_id="landing_purchases",
        lakehouse_root=ROOT,
        poke_interval=dt.timedelta(minutes=5),
        timeout=dt.timedelta(hours=12),
        retries=0,
        doc_md="Waits (reschedule mode) until the landing date's folder holds a `.jsonl` "
        "file; fails after 12 hours with the folder it watched.",
    )
    chain(landing, *[stage_task(stage, "{{ ds }}", "{{ ds }}", ROOT) for stage in PURCHASE_STAGES])
