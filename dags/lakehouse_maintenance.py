"""
### lakehouse_maintenance

Every Sunday at 03:00 UTC: **OPTIMIZE** (compact small files) and **VACUUM** every Delta
table of the lakehouse, training sets included.

VACUUM keeps 168 hours of removed files by default, and longer for any table whose
version a training-set manifest (`training/*/_manifest.json`) records, so every
published training set can still be rebuilt by time travel (`--rebuild-from`). For
such tables the Delta log retention is raised as well. The plan per table (retention
hours, protected version) is in the task log.

Run `python -m spark_jobs.jobs.maintenance --root R --dry-run` to see the plan without
changing anything.
"""

from __future__ import annotations

from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from include.dag_factory import dag_start_date, default_args, lakehouse_root, spark_job

ROOT = lakehouse_root()

with DAG(
    dag_id="lakehouse_maintenance",
    schedule=CronDataIntervalTimetable("0 3 * * 0", timezone="UTC"),
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=2),
    tags=["lakehouse", "maintenance"],
    doc_md=__doc__,
) as dag:
    spark_job(
        "compacted_and_vacuumed_tables",
        "maintenance",
        ["--start", "{{ ds }}"],
        doc_md="OPTIMIZE then VACUUM each Delta table, with a retention that keeps every "
        "version a training-set manifest needs.",
        root=ROOT,
    )
