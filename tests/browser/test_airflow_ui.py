"""A person's path through the Airflow UI, in a real Chromium: log in, trigger the
training_set DAG through its Params form, see it succeed, open the validation reports.

Airflow (API server, scheduler, DAG processor) runs for real on a free loopback port
over a small lakehouse built beforehand; screenshots go to artifacts/browser/.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.airflow_local import AirflowClient, AirflowLocal, running
from tests.factories import free_port, ops_metrics_on

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START, END = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
TRAINING_SET = "ui_churn"
UI_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def lakehouse_with_features(spark, tmp_path_factory) -> str:
    """Two generated days built to gold.user_features with the jobs themselves.

    The generator lands a fixed number of defects per day, so fewer users would push the
    quarantine share past the silver gate's limit.
    """
    from devtools import generate_purchases
    from spark_jobs.jobs import build_features, build_gold, build_silver, ingest_bronze

    root = str(tmp_path_factory.mktemp("lakehouse"))
    dates = ["--root", root, "--start", str(START), "--end", str(END)]
    assert generate_purchases.main([*dates, "--users", "150", "--skip-dates", "none"]) == 0
    # Day by day, as the daily DAG runs them: ops.stage_runs gets a row per day and stage.
    with ops_metrics_on():
        for day in (START, END):
            for job in (ingest_bronze, build_silver, build_gold, build_features):
                assert job.main(["--root", root, "--start", str(day)]) == 0, (job.__name__, day)
    return root


@pytest.fixture(scope="module")
def spine(spark, lakehouse_with_features) -> Path:
    """A CSV spine: every silver user, the morning after the last day, label 0/1."""
    from spark_jobs.catalog import SILVER_PURCHASES

    users = sorted(
        row["user_id"]
        for row in spark.read.format("delta")
        .load(SILVER_PURCHASES.path(lakehouse_with_features))
        .select("user_id")
        .distinct()
        .collect()
    )
    path = Path(lakehouse_with_features, "spines", "ui_spine.csv")
    path.parent.mkdir()
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "ts", "label"])
        for number, user in enumerate(users):
            writer.writerow([user, f"{END + dt.timedelta(days=1)}T09:00:00Z", number % 2])
    return path


@pytest.fixture(scope="module")
def airflow(lakehouse_with_features, tmp_path_factory) -> Iterator[AirflowLocal]:
    """Airflow serving the DAGs and plugins of this project over the prepared lakehouse."""
    local = AirflowLocal(
        home=tmp_path_factory.mktemp("airflow-home"),
        lakehouse_root=lakehouse_with_features,
        port=free_port(),
        dag_refresh_seconds=10,
    )
    with running(local, timeout=900) as started:
        started.client().wait_for_dag("training_set", timeout=600)
        yield started


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    """Fail at once, saying what to install, before Airflow starts for minutes."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"the browser tests drive Debian's Chromium at {CHROMIUM}, which is not installed: "
            "`apt-get install chromium` (.ci/run installs it)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def page(airflow) -> Iterator[object]:
    """A Chromium page (Debian's chromium, driven by Playwright)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(UI_TIMEOUT_MS)
        yield page
        browser.close()


def log_in(page, airflow: AirflowLocal) -> None:
    """Sign in through the login form the UI redirects to (once per browser session)."""
    if any(cookie["name"] == "_token" for cookie in page.context.cookies()):
        return
    page.goto(f"{airflow.base_url}/dags/training_set")
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill(airflow.user)
    page.get_by_label("Password").fill(airflow.password())
    page.screenshot(path=ARTIFACTS / "01-login.png")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


def wait_for_first_run(client: AirflowClient, dag_id: str, timeout: float = 120) -> dict:
    """The DAG's first run, once the trigger has created it."""
    deadline = time.monotonic() + timeout
    while not (runs := client.dag_runs(dag_id)):
        assert time.monotonic() < deadline, f"no run of {dag_id} after {timeout}s"
        time.sleep(1)
    return runs[0]


def test_wrong_password_is_refused(airflow) -> None:
    from devtools.airflow_local import AirflowLocalError

    with pytest.raises(AirflowLocalError, match="401"):
        AirflowClient(airflow.base_url, airflow.user, "not-the-password").token()


def test_training_set_triggered_from_the_form_succeeds_and_reports_are_browsable(
    page, airflow, spine, lakehouse_with_features
) -> None:
    log_in(page, airflow)
    page.get_by_test_id("trigger-dag-button").click()
    form = page.get_by_role("dialog")
    form.locator("#element_spine").fill(str(spine))
    form.locator("#element_name").fill(TRAINING_SET)
    form.get_by_label("Mode").click()
    page.get_by_role("option", name="as_known").click()
    form.get_by_label("TTL (days)").fill("30")
    page.screenshot(path=ARTIFACTS / "02-trigger-form.png")
    form.get_by_test_id("trigger-dag-submit").click()

    client = airflow.client()
    run = wait_for_first_run(client, "training_set")
    assert {k: run["conf"].get(k) for k in ("spine", "name", "mode", "ttl_days")} == {
        "spine": str(spine),
        "name": TRAINING_SET,
        "mode": "as_known",
        "ttl_days": 30,
    }
    state = client.wait_for_run("training_set", run["dag_run_id"], timeout=3600)
    assert state == "success", client.failed_tasks("training_set", run["dag_run_id"])
    assert Path(lakehouse_with_features, "training", TRAINING_SET, "_manifest.json").is_file()

    page.goto(f"{airflow.base_url}/dags/training_set/runs/{run['dag_run_id']}")
    page.get_by_text("success").first.wait_for()
    page.screenshot(path=ARTIFACTS / "03-run-succeeded.png")

    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Validation reports").click()
    reports = page.frame_locator("iframe").first
    reports.get_by_role("heading", name="Validation reports").wait_for()
    # Validations are listed by table; a training set is the table training.<name>.
    reports.get_by_role("heading", name=f"training.{TRAINING_SET}").wait_for()
    page.screenshot(path=ARTIFACTS / "04-validation-reports.png")


def test_the_operations_page_charts_the_recorded_stage_runs(
    page, airflow, lakehouse_with_features
) -> None:
    from spark_jobs.ops import report

    runs = report.load_runs(lakehouse_with_features)
    silver = {str(r["end_date"]): r for r in runs if r["stage"] == "silver"}
    assert sorted(silver) == [str(START), str(END)]
    log_in(page, airflow)
    page.goto(f"{airflow.base_url}/dags")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Operations").click()
    ops = page.frame_locator("iframe").first
    ops.get_by_role("heading", name="Operations").wait_for()
    ops.get_by_text("Slowest stages of the last run").wait_for()
    charts = ops.locator("figure svg")
    assert charts.count() >= 5
    # The duration chart draws one point per day and stage, each labelled with its values.
    durations = ops.locator("figure").filter(has_text="Stage duration (s)")
    points = durations.locator('path[aria-roledescription="point"]')
    assert points.count() == len(report.latest_per_day(runs))
    labels = [points.nth(i).get_attribute("aria-label") or "" for i in range(points.count())]
    last = silver[str(END)]
    assert any(
        "stage: silver" in label and f"duration_s: {last['duration_s']:g}" in label
        for label in labels
    ), labels
    page.screenshot(path=ARTIFACTS / "05-operations.png", full_page=True)
