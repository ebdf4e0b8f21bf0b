"""
### purchases_rebuild

Rebuilds a **range of landing dates** with one Spark job per stage instead of one per
day: `start` to `end` inclusive, from the landing files to `gold.user_features`.

The jobs compute a range exactly as the same days one by one (`purchases_daily`), so
the tables are the same; this DAG only saves the JVM start and the scheduling of one
run per day. Each stage is still staged, gated and published as a whole: a failing
gate publishes nothing of the range.

Trigger it by hand with the form (start and end dates, YYYY-MM-DD).
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, chain

from include.dag_factory import (
    PURCHASE_STAGES,
    dag_start_date,
    default_args,
    lakehouse_root,
    stage_task,
)

ROOT = lakehouse_root()

with DAG(
    dag_id="purchases_rebuild",
    schedule=None,
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1),
    tags=["lakehouse", "purchases", "rebuild"],
    doc_md=__doc__,
    params={
        "start": Param(
            type="string",
            format="date",
            title="First landing date",
            description="First landing date to rebuild (YYYY-MM-DD).",
        ),
        "end": Param(
            type="string",
            format="date",
            title="Last landing date",
            description="Last landing date to rebuild, inclusive (YYYY-MM-DD).",
        ),
    },
) as dag:
    chain(
        *[
            stage_task(stage, "{{ params.start }}", "{{ params.end }}", ROOT)
            for stage in PURCHASE_STAGES
        ]
    )
