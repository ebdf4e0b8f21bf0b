"""
### training_set_on_features

Rebuilds the **configured training set** every time `gold.user_features` is published
(the Asset updated by `gold_user_features` in `purchases_daily` and
`purchases_rebuild`), with the same tasks as the manual `training_set` DAG.

Configure it with Airflow Variables (or the environment variables in capitals):
`training_spine` (required; without it every run is skipped), `training_set_name`
(default `scheduled`), `training_mode` (default `as_known`), `training_ttl_days`,
`training_features` (comma-separated).
"""

from __future__ import annotations

from airflow.sdk import DAG, task

from include.dag_factory import (
    TrainingRequest,
    dag_start_date,
    default_args,
    lakehouse_root,
    scheduled_training_request,
    table_asset,
    training_set_tasks,
)

ROOT = lakehouse_root()
REQUEST = "{{ ti.xcom_pull(task_ids='training_request')['%s'] }}"

with DAG(
    dag_id="training_set_on_features",
    schedule=[table_asset("gold.user_features", ROOT)],
    start_date=dag_start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1),
    tags=["lakehouse", "training", "assets"],
    doc_md=__doc__,
) as dag:

    @task(task_id="training_request", retries=0)
    def training_request() -> dict[str, str]:
        """The configured spine, name and options; skips the run when no spine is set."""
        return scheduled_training_request()

    build, _gate = training_set_tasks(
        TrainingRequest(
            spine=REQUEST % "spine",
            name=REQUEST % "name",
            mode=REQUEST % "mode",
            ttl_days=REQUEST % "ttl_days",
            features=REQUEST % "features",
        ),
        ROOT,
    )
    training_request() >> build
