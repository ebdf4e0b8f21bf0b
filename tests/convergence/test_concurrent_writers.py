"""Two writers at once: overlapping ranges end as one serial run, and a gate step whose
inputs moved on since its build step builds again instead of publishing stale rows."""

from __future__ import annotations

import datetime as dt
import threading

from spark_jobs.catalog import GOLD_USER_DAILY
from spark_jobs.jobs import build_gold, build_silver, ingest_bronze
from tests.factories import (
    STAGES,
    differences,
    land,
    published_rows,
    purchase,
    run_range,
    run_stage,
)


def land_small_feed(root: str) -> list[dt.date]:
    """Four landing dates with a retried delivery, a late event and a returning user."""
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=n) for n in range(4)]
    retried = purchase("e-retried", "u1", "2026-03-01T10:00:00Z", quantity=3)
    land(root, days[0], [retried, purchase("e-1", "u2", "2026-03-01T12:00:00Z")])
    land(root, days[1], [retried, purchase("e-late", "u3", "2026-03-01T22:00:00Z")])
    land(root, days[2], [purchase("e-2", "u1", "2026-03-03T09:00:00Z")])
    land(root, days[3], [purchase("e-3", "u2", "2026-03-04T09:00:00Z"), retried])
    return days


def test_two_writers_on_overlapping_dates_end_as_one_serial_run(spark, tmp_path):
    serial = str(tmp_path / "serial")
    days = land_small_feed(serial)
    run_range(serial, days[0], days[-1])
    expected = published_rows(spark, serial)

    concurrent = str(tmp_path / "concurrent")
    land_small_feed(concurrent)
    failures: list[BaseException] = []

    def writer(start: dt.date, end: dt.date) -> None:
        try:
            for job in STAGES:
                run_stage(job, concurrent, start, end)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [
        threading.Thread(target=writer, args=(days[0], days[2])),
        threading.Thread(target=writer, args=(days[1], days[3])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert differences(published_rows(spark, concurrent), expected) == []


def test_a_gate_step_builds_again_when_its_inputs_were_published_to_after_its_build(
    spark, lakehouse
):
    day = dt.date(2026, 3, 1)
    land(lakehouse, day, [purchase("e-1", "u1", "2026-03-01T10:00:00Z")])
    run_stage(ingest_bronze, lakehouse, day)
    run_stage(build_silver, lakehouse, day)
    run = ["--root", lakehouse, "--start", str(day), "--run-id", "scheduled__2026-03-02"]
    assert build_gold.main([*run, "--step", "build"]) == 0
    # Another run republishes silver between this run's build and gate tasks.
    land(
        lakehouse,
        day,
        [
            purchase("e-1", "u1", "2026-03-01T10:00:00Z"),
            purchase("e-2", "u1", "2026-03-01T11:00:00Z"),
        ],
    )
    run_stage(ingest_bronze, lakehouse, day)
    run_stage(build_silver, lakehouse, day)

    assert build_gold.main([*run, "--step", "publish"]) == 0

    gold = spark.read.format("delta").load(GOLD_USER_DAILY.path(lakehouse)).collect()
    assert [(r["user_id"], r["orders"]) for r in gold] == [("u1", 2)]


def test_two_runs_of_the_same_dates_stage_apart():
    from spark_jobs.cli import DateRange, run_token

    daily = DateRange(dt.date(2026, 3, 1), dt.date(2026, 3, 1), run_token("scheduled__x", "build"))
    rebuild = DateRange(dt.date(2026, 3, 1), dt.date(2026, 3, 1), run_token("manual__y", "build"))
    assert daily.key != rebuild.key
    assert daily.key == DateRange(daily.start, daily.end, run_token("scheduled__x", None)).key
