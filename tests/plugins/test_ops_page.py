"""The operations page of the reports app: ops.stage_runs drawn as SVG charts, no script."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from plugins import lakehouse_reports
from spark_jobs.catalog import OPS_STAGE_RUNS

DAYS = [dt.date(2026, 4, 1) + dt.timedelta(days=i) for i in range(3)]


async def anyone(request) -> str:
    return "reader"


def stage_run(day: dt.date, stage: str, seconds: float, **values) -> dict:
    row = dict.fromkeys(OPS_STAGE_RUNS.schema.fieldNames())
    started = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(1))
    row.update(
        stage=stage, job=stage, step="all", run_key=f"{day}_{day}__r", start_date=day,
        end_date=day, attempt=1, status="published", started_at=started,
        ended_at=started + dt.timedelta(seconds=seconds), duration_s=seconds,
        build_s=seconds / 2, gate_s=seconds / 4, publish_s=seconds / 4, rows_out=1000,
        gate_passed=True, gate_warnings=0, dag_run_id=f"scheduled__{day}",
    )  # fmt: skip
    row.update(values)
    return row


@pytest.fixture
def root(spark, tmp_path) -> str:
    rows = []
    for number, day in enumerate(DAYS):
        rows.append(stage_run(day, "bronze", 10.0 + number, row_band_position=0.1 * number))
        rows.append(
            stage_run(
                day,
                "features",
                5.0,
                feature_psi={"net_usd_30d": 0.05 + 0.13 * number, "orders_30d": 0.01},
            )
        )
        silver = stage_run(
            day,
            "silver",
            20.0 + 7 * number,
            rows_in=1100,
            rows_quarantined=50 + number,
            rows_duplicate=50 - number,
            freshness_lag_s=3600.0 * (number + 1),
            skew_ratio=1.5,
            hot_key="u1",
            hot_key_rows=9,
            quarantine_by_reason={"BAD_PRICE": 30, "MALFORMED_JSON": 20 + number},
            late_by_days={"0": 900, "1": 100},
        )
        rows.append(silver)
    spark.createDataFrame(rows, OPS_STAGE_RUNS.schema).write.format("delta").save(
        OPS_STAGE_RUNS.path(str(tmp_path))
    )
    return str(tmp_path)


def test_the_page_draws_every_chart_from_the_recorded_runs(root) -> None:
    client = TestClient(lakehouse_reports.create_app(root, authorize=anyone))
    page = client.get("/ops", params={"days": 30})
    assert page.status_code == 200
    assert "<script" not in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # none may run
    captions = re.findall(r"<figcaption>([^<]+)</figcaption>", page.text)
    assert captions == [
        "Stage duration (s)",
        "Rows published",
        "Quarantine share of silver&#x27;s input (%)",
        "Freshness lag at the day&#x27;s end (h)",
        "Shuffle skew (largest / median partition)",
        "Row-count band position (0 expected, ±1 fail edge)",
        "Feature drift (PSI vs the trailing 28 days)",
        "Quarantined rows by reason",
        "Published rows by days late",
    ]
    assert page.text.count("<svg") == len(captions)
    # Each point carries its values: silver's duration on the last day is 34 s.
    assert re.search(r'aria-label="[^"]*stage: silver;[^"]*duration_s: 34;', page.text)
    # Drift per feature: net_usd_30d's index on the last day is 0.31, above the limit.
    assert re.search(r'aria-label="[^"]*feature: net_usd_30d;[^"]*psi: 0\.31"', page.text)
    assert re.search(r'aria-label="[^"]*stage: bronze;[^"]*row_band_position: 0\.2;', page.text)
    # The last run's slowest stage is silver, 34 s against a usual 23.5 s: flagged.
    assert "Slowest stages of the last run (scheduled__2026-04-03)" in page.text
    assert re.search(r'<li class="slow">silver +2026-04-03 +34.0 s', page.text)


def test_the_json_of_the_runs_and_an_empty_lakehouse(root, tmp_path) -> None:
    client = TestClient(lakehouse_reports.create_app(root, authorize=anyone))
    runs = client.get("/api/stage-runs", params={"days": 2}).json()
    assert sorted({r["end_date"] for r in runs}) == ["2026-04-02", "2026-04-03"]
    assert {r["stage"] for r in runs} == {"bronze", "silver", "features"}
    empty = TestClient(lakehouse_reports.create_app(str(tmp_path / "new"), authorize=anyone))
    assert "No stage runs recorded yet" in empty.get("/ops").text


async def nobody(request) -> str:
    from fastapi import HTTPException

    raise HTTPException(401, "Not authenticated")


def test_the_page_is_behind_the_same_login(root) -> None:
    client = TestClient(lakehouse_reports.create_app(root, authorize=nobody))
    assert client.get("/ops").status_code == 401
    assert client.get("/api/stage-runs").status_code == 401
