"""The DAG folder as a whole: it parses cleanly and lightly, and every DAG is documented,
owned, retried, scheduled as intended and wired in the order of the data flow."""

from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys

import pytest

from tests.dags.conftest import DAGS_FOLDER, PROJECT_ROOT

EXPECTED_DAGS = {
    "purchases_daily",
    "purchases_rebuild",
    "training_set",
    "training_set_on_features",
    "lakehouse_maintenance",
}
STAGE_ORDER = ["bronze_purchases", "silver_purchases", "gold_user_daily", "gold_user_features"]

PARSE_IN_A_FRESH_PROCESS = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "dags": sorted(bag.dag_ids),
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "heavy_modules": sorted(m for m in ("pyspark", "great_expectations", "delta")
                            if m in sys.modules),
}))
"""


def test_dag_folder_parses_without_errors_and_without_spark_or_gx() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PARSE_IN_A_FRESH_PROCESS, str(DAGS_FOLDER)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=True,
    )
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["import_errors"] == {}
    assert set(parsed["dags"]) == EXPECTED_DAGS
    assert parsed["heavy_modules"] == []


def test_every_dag_and_task_has_tags_owner_retries_and_docs(dag_bag) -> None:
    assert dag_bag.import_errors == {}
    for dag in dag_bag.dags.values():
        assert dag.tags, dag.dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag.dag_id
        for task in dag.tasks:
            where = f"{dag.dag_id}.{task.task_id}"
            assert task.owner == "data-platform", where
            assert task.doc_md, where
            assert task.execution_timeout is not None, where
            if task.task_id != "landing_purchases" and task.task_id != "training_request":
                assert task.retries >= 1, where


def _downstream_chain(dag, first: str) -> list[str]:
    order, task = [first], dag.get_task(first)
    while task.downstream_task_ids:
        assert len(task.downstream_task_ids) == 1, task.task_id
        task = dag.get_task(next(iter(task.downstream_task_ids)))
        order.append(task.task_id)
    return order


def test_purchases_daily_waits_for_landing_then_builds_and_gates_each_stage(dag_bag) -> None:
    dag = dag_bag.dags["purchases_daily"]
    assert _downstream_chain(dag, "landing_purchases") == ["landing_purchases", *STAGE_ORDER]


def test_purchases_rebuild_runs_the_same_stages_over_a_range(dag_bag) -> None:
    dag = dag_bag.dags["purchases_rebuild"]
    assert _downstream_chain(dag, "bronze_purchases") == STAGE_ORDER
    args = dag.get_task("gold_user_daily").application_args
    assert args[args.index("--start") + 1] == "{{ params.start }}"
    assert args[args.index("--end") + 1] == "{{ params.end }}"


def test_purchases_daily_is_daily_in_utc_for_the_day_that_ended(dag_bag) -> None:
    dag = dag_bag.dags["purchases_daily"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    run_at = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    interval = dag.timetable.infer_manual_data_interval(run_after=run_at)
    assert interval.start == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert interval.end == run_at


def test_daily_tasks_build_gate_and_publish_the_logical_date(dag_bag, lakehouse) -> None:
    dag = dag_bag.dags["purchases_daily"]
    for task_id in STAGE_ORDER:
        args = dag.get_task(task_id).application_args
        assert args[:2] == ["--root", lakehouse]
        assert args[args.index("--start") + 1] == "{{ ds }}"
        assert args[args.index("--end") + 1] == "{{ ds }}"
        # One process per stage: build, gate and publish (--step all).
        assert args[args.index("--step") + 1] == "all"
        assert args[args.index("--run-id") + 1] == "{{ run_id }}"
    job_of = {t: dag.get_task(t).application.rsplit("/", 1)[-1] for t in STAGE_ORDER}
    assert job_of["bronze_purchases"] == "ingest_bronze.py"
    assert job_of["gold_user_features"] == "build_features.py"


def test_stage_tasks_update_the_assets_of_the_tables_they_publish(dag_bag, lakehouse) -> None:
    dag = dag_bag.dags["purchases_daily"]
    outlets = {
        task.task_id: sorted(a.uri for a in task.outlets) for task in dag.tasks if task.outlets
    }
    base = f"file://{lakehouse}"
    assert outlets == {
        "bronze_purchases": [f"{base}/bronze/purchases"],
        "silver_purchases": [f"{base}/silver/purchases", f"{base}/silver/quarantine"],
        "gold_user_daily": [f"{base}/gold/user_daily"],
        "gold_user_features": [
            f"{base}/gold/user_features",
            f"{base}/gold/user_features_history",
        ],
    }
    on_features = dag_bag.dags["training_set_on_features"]
    condition = on_features.timetable.asset_condition
    assert [a.uri for a in condition.objects] == [f"{base}/gold/user_features"]


def test_asset_locations_agree_with_the_table_catalog() -> None:
    from include.dag_factory import TABLE_PATHS
    from spark_jobs.catalog import TABLES_BY_NAME

    assert {name: TABLES_BY_NAME[name].relative_path for name in TABLE_PATHS} == TABLE_PATHS


def test_training_set_form_accepts_good_params_and_rejects_bad_ones(dag_bag) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = dag_bag.dags["training_set"].params
    good = {
        "spine": "/data/spine.parquet",
        "name": "churn_v1",
        "mode": "as_known",
        "ttl_days": 30,
        "features": ["orders_30d"],
    }
    for key, value in good.items():
        params[key] = value
    assert params.validate()["mode"] == "as_known"
    params["ttl_days"] = None
    assert params.validate()["ttl_days"] is None
    for key, bad in (("mode", "tomorrow"), ("ttl_days", -1), ("name", "../etc")):
        candidate = copy.deepcopy(params)
        with pytest.raises(ParamValidationError):
            candidate[key] = bad


def test_training_set_passes_only_the_options_that_were_given(dag_bag) -> None:
    from include.operators import _is_empty_option

    args = dag_bag.dags["training_set"].get_task("gate_training_set").application_args
    assert "--ttl-days={{ '' if params.ttl_days is none else params.ttl_days }}" in args
    assert _is_empty_option("--ttl-days=") and _is_empty_option("--features=")
    assert not _is_empty_option("--ttl-days=0") and not _is_empty_option("--name")


def test_maintenance_is_weekly_and_runs_the_maintenance_job(dag_bag) -> None:
    dag = dag_bag.dags["lakehouse_maintenance"]
    (task,) = dag.tasks
    assert task.application.endswith("spark_jobs/jobs/maintenance.py")
    sunday = dag.timetable.infer_manual_data_interval(
        run_after=dt.datetime(2026, 3, 8, 3, tzinfo=dt.UTC)
    )
    assert sunday.end - sunday.start == dt.timedelta(days=7)
