"""Backfills of purchases_daily through the real ``airflow backfill create`` CLI against the
metadata DB: which logical dates get a run, for each reprocess behaviour.

The existing runs are arranged as the scheduler would have left them: one succeeded, one
failed, one date never run, one still running.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from tests.dags.conftest import DAGS_FOLDER, PROJECT_ROOT

DAG_ID = "purchases_daily"
SUCCEEDED, FAILED, NEVER_RUN, RUNNING, SUCCEEDED_TOO = (
    dt.datetime(2025, 12, day, tzinfo=dt.UTC) for day in range(1, 6)
)
EXISTING = {SUCCEEDED: "success", FAILED: "failed", RUNNING: "running", SUCCEEDED_TOO: "success"}


@pytest.fixture(scope="module")
def serialized_dags(airflow_db, tmp_path_factory) -> None:
    """The DAG folder written to the metadata DB, as the DAG processor does."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    os.environ["LAKEHOUSE_ROOT"] = str(tmp_path_factory.mktemp("lakehouse"))
    DagBundlesManager().sync_bundles_to_db()
    bag = BundleDagBag(
        dag_folder=str(DAGS_FOLDER), bundle_path=DAGS_FOLDER, bundle_name="dags-folder"
    )
    assert bag.import_errors == {}
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture
def scheduled_history(serialized_dags) -> None:
    """Only the EXISTING scheduled runs of purchases_daily, and no backfill."""
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(BackfillDagRun))
        session.execute(delete(DagRun).where(DagRun.dag_id == DAG_ID))
        session.execute(delete(Backfill))
        dag = SerializedDagModel.get_dag(DAG_ID, session=session)
        for logical_date, state in EXISTING.items():
            dag.create_dagrun(
                run_id=f"scheduled__{logical_date.isoformat()}",
                logical_date=logical_date,
                data_interval=(logical_date, logical_date + dt.timedelta(days=1)),
                run_after=logical_date + dt.timedelta(days=1),
                run_type=DagRunType.SCHEDULED,
                triggered_by=DagRunTriggeredByType.TIMETABLE,
                state=DagRunState(state),
                session=session,
            )


def airflow_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The airflow CLI against the test metadata DB (same environment as the tests)."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=True,
    )


def backfill(reprocess_behavior: str) -> None:
    """``airflow backfill create`` over the five days."""
    airflow_cli(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        SUCCEEDED.date().isoformat(),
        "--to-date",
        SUCCEEDED_TOO.date().isoformat(),
        "--reprocess-behavior",
        reprocess_behavior,
        "--max-active-runs",
        "1",
    )


def runs_by_date() -> dict[dt.datetime, tuple[str, str]]:
    """logical date -> (run type, state) of every purchases_daily run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(DagRun.logical_date, DagRun.run_type, DagRun.state).where(
                DagRun.dag_id == DAG_ID
            )
        )
        return {date: (str(run_type), str(state)) for date, run_type, state in rows}


def backfill_dates() -> tuple[set[dt.datetime], dict[dt.datetime, str]]:
    """Dates the backfill runs, and dates it skipped with the reason."""
    from airflow.models.backfill import BackfillDagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = list(
            session.execute(
                select(
                    BackfillDagRun.logical_date,
                    BackfillDagRun.dag_run_id,
                    BackfillDagRun.exception_reason,
                )
            )
        )
    return (
        {date for date, run_id, _ in rows if run_id is not None},
        {date: str(reason) for date, run_id, reason in rows if run_id is None},
    )


def test_backfill_of_missing_runs_only_creates_the_dates_never_run(scheduled_history) -> None:
    backfill("none")

    runs, skipped = backfill_dates()
    assert runs == {NEVER_RUN}
    assert skipped == {
        SUCCEEDED: "already exists",
        FAILED: "already exists",
        SUCCEEDED_TOO: "already exists",
        RUNNING: "in flight",
    }
    history = runs_by_date()
    assert history[NEVER_RUN] == ("backfill", "queued")
    assert history[FAILED] == ("scheduled", "failed")


def test_backfill_of_failed_runs_reruns_them_and_fills_the_gaps(scheduled_history) -> None:
    backfill("failed")

    runs, skipped = backfill_dates()
    assert runs == {FAILED, NEVER_RUN}
    assert skipped == {
        SUCCEEDED: "already exists",
        SUCCEEDED_TOO: "already exists",
        RUNNING: "in flight",
    }
    history = runs_by_date()
    assert history[FAILED] == ("backfill", "queued")
    assert history[SUCCEEDED] == ("scheduled", "success")


def test_backfill_of_all_runs_reruns_every_finished_date_but_not_a_running_one(
    scheduled_history,
) -> None:
    backfill("completed")

    runs, skipped = backfill_dates()
    assert runs == {SUCCEEDED, FAILED, NEVER_RUN, SUCCEEDED_TOO}
    assert skipped == {RUNNING: "in flight"}
    history = runs_by_date()
    assert history[RUNNING] == ("scheduled", "running")
    assert {history[d] for d in runs} == {("backfill", "queued")}


def test_dry_run_lists_the_dates_without_creating_anything(scheduled_history) -> None:
    before = runs_by_date()
    result = airflow_cli(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        SUCCEEDED.date().isoformat(),
        "--to-date",
        SUCCEEDED_TOO.date().isoformat(),
        "--reprocess-behavior",
        "failed",
        "--dry-run",
    )
    assert "2025-12-02" in result.stdout and "2025-12-03" in result.stdout
    assert "2025-12-01" not in result.stdout.split("Runs to be attempted")[1]
    assert runs_by_date() == before
