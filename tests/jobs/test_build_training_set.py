"""build_training_set end to end: spines in every format, checks, manifest and rebuilds."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from spark_jobs.catalog import GOLD_USER_FEATURES, GOLD_USER_FEATURES_HISTORY, Table, training_path
from spark_jobs.cli import EXIT_BAD_INPUT, run_cli
from spark_jobs.jobs import build_training_set as job
from spark_jobs.training import plan
from spark_jobs.transforms import pit
from tests.factories import DAY0, at, feature_frame, micros, snapshot_row


def write_snapshots(spark: SparkSession, root: str, table: Table, rows: list[dict]) -> None:
    """Append snapshot rows to a feature table at its catalog path (one Delta commit)."""
    (
        feature_frame(spark, rows)
        .write.format("delta")
        .mode("append")
        .partitionBy(*table.partition_by)
        .save(table.path(root))
    )


def seed_features(spark: SparkSession, root: str) -> list[dict]:
    """Users a and b with days 0..3 (b misses day 2), in the current table and history."""
    rows = [
        snapshot_row(user, DAY0 + dt.timedelta(days=d), (10 if user == "b" else 0) + d)
        for user in ("a", "b")
        for d in range(4)
        if not (user == "b" and d == 2)
    ]
    write_snapshots(spark, root, GOLD_USER_FEATURES, rows)
    write_snapshots(spark, root, GOLD_USER_FEATURES_HISTORY, rows)
    return rows


def write_csv(tmp_path: Path, lines: list[str]) -> str:
    """A CSV spine file with a header line."""
    path = tmp_path / "spine.csv"
    path.write_text("\n".join(["user_id,ts,label,campaign", *lines]) + "\n")
    return str(path)


def read_training(spark: SparkSession, root: str, name: str) -> DataFrame:
    """The published training set."""
    return spark.read.format("delta").load(training_path(root, name))


def exit_code_and_message(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """What a person sees when the job is run from the command line."""
    with pytest.raises(SystemExit) as exited:
        run_cli(job.main, argv)
    return int(exited.value.code), capsys.readouterr().err.strip()


def test_training_set_has_one_row_per_spine_row_with_features_known_at_ts(
    spark: SparkSession, lakehouse: str, tmp_path: Path
) -> None:
    seed_features(spark, lakehouse)
    spine = write_csv(
        tmp_path,
        [
            "a,2026-03-03T12:00:00Z,1,x",  # sees a's day-1 snapshot
            "b,2026-03-04T00:00:00+00:00,0,y",  # exactly at the missing day-2 stamp: day 1
            "a,2026-03-03T12:00:00Z,1,x",  # a duplicate stays a row of its own
            "c,2026-03-03T12:00:00Z,0,z",  # no features at all
            "a,2026-03-01T06:00:00Z,1,w",  # before a's first snapshot
        ],
    )

    job.main(["--root", lakehouse, "--spine", spine, "--name", "churn"])

    training = read_training(spark, lakehouse, "churn")
    got = sorted(
        training.select(
            "spine_row_id",
            "user_id",
            F.unix_micros("ts"),
            "label",
            "campaign",
            "lifetime_orders",
            F.unix_micros("feature_ts"),
            "feature_age",
        ).collect()
    )
    expected = [
        (0, "a", micros(at(2, 12)), "1", "x", 1, micros(at(2)), 12 * 3600),
        (1, "b", micros(at(3)), "0", "y", 11, micros(at(2)), 86400),
        (2, "a", micros(at(2, 12)), "1", "x", 1, micros(at(2)), 12 * 3600),
        (3, "c", micros(at(2, 12)), "0", "z", None, None, None),
        (4, "a", micros(at(0, 6)), "1", "w", None, None, None),
    ]
    assert [tuple(r) for r in got] == expected
    manifest = json.loads((Path(training_path(lakehouse, "churn")) / "_manifest.json").read_text())
    assert manifest["spine"]["format"] == "csv"
    assert manifest["inputs"] == {
        "gold.user_features": {"path": GOLD_USER_FEATURES.path(lakehouse), "delta_version": 0}
    }
    assert manifest["row_counts"] == {"spine": 5, "output": 5, "matched": 3}


def test_spine_column_named_like_a_feature_keeps_its_name_and_the_feature_is_prefixed(
    spark: SparkSession, lakehouse: str, tmp_path: Path
) -> None:
    seed_features(spark, lakehouse)
    path = tmp_path / "spine.csv"
    path.write_text("user_id,ts,label,recency\na,2026-03-03T12:00:00Z,1,spine-value\n")

    job.main(["--root", lakehouse, "--spine", str(path), "--name", "s", "--features", "recency"])

    row = read_training(spark, lakehouse, "s").first()
    assert row["recency"] == "spine-value"
    assert row["gold_user_features__recency"] == 0


def test_build_and_publish_steps_run_apart(
    spark: SparkSession, lakehouse: str, tmp_path: Path
) -> None:
    seed_features(spark, lakehouse)
    spine = write_csv(tmp_path, ["a,2026-03-03T12:00:00Z,1,x", "b,2026-03-09T12:00:00Z,1,x"])
    args = ["--root", lakehouse, "--spine", spine, "--name", "s", "--ttl-days", "1"]

    job.main([*args, "--step", "build"])
    assert not Path(training_path(lakehouse, "s")).exists()
    job.main([*args, "--step", "publish"])

    got = sorted(
        read_training(spark, lakehouse, "s").select("spine_row_id", "lifetime_orders").collect()
    )
    assert [tuple(r) for r in got] == [(0, 1), (1, None)]  # b's day 3 is too old on day 8


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["a,2026-03-03T12:00:00,1,x"], "spine row 0 has ts '2026-03-03T12:00:00': no time zone"),
        (["a,2026-03-03T12:00:00Z,1,x", "a,,1,x"], "spine row 1 has no ts"),
        (["a,03/07/2026 12:00,1,x"], "not an ISO-8601 date and time"),
    ],
)
def test_spine_ts_that_names_no_instant_is_rejected_with_one_line(
    spark: SparkSession,
    lakehouse: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    lines: list[str],
    message: str,
) -> None:
    spine = write_csv(tmp_path, lines)

    code, err = exit_code_and_message(
        ["--root", lakehouse, "--spine", spine, "--name", "s"], capsys
    )

    assert code == EXIT_BAD_INPUT
    assert message in err
    assert len(err.splitlines()) == 1
    assert not Path(training_path(lakehouse, "s")).exists()


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            StructType(
                [
                    StructField("user_id", StringType()),
                    StructField("ts", TimestampNTZType()),
                    StructField("label", IntegerType()),
                ]
            ),
            "TIMESTAMP_NTZ",
        ),
        (
            StructType([StructField("user_id", StringType()), StructField("ts", TimestampType())]),
            "spine has no column label",
        ),
        (
            StructType(
                [
                    StructField("user_id", LongType()),
                    StructField("ts", TimestampType()),
                    StructField("label", IntegerType()),
                ]
            ),
            "user_id is bigint",
        ),
    ],
)
def test_parquet_spine_with_unusable_columns_is_rejected(
    spark: SparkSession,
    lakehouse: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    schema: StructType,
    message: str,
) -> None:
    spine = str(tmp_path / "spine.parquet")
    spark.createDataFrame([], schema).write.parquet(spine)

    code, err = exit_code_and_message(
        ["--root", lakehouse, "--spine", spine, "--name", "s"], capsys
    )

    assert code == EXIT_BAD_INPUT
    assert message in err


SPINE_SCHEMA = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("ts", TimestampType(), False),
        StructField("label", IntegerType(), False),
    ]
)


@pytest.mark.parametrize("mode", pit.MODES)
def test_rebuild_from_manifest_is_identical_after_features_and_spine_moved_on(
    spark: SparkSession, lakehouse: str, tmp_path: Path, mode: str
) -> None:
    seeded = seed_features(spark, lakehouse)
    spine = str(tmp_path / "spine")
    rows = [("a", at(3, 12), 1), ("b", at(4, 1), 0), ("a", at(4, 2), 1)]
    spark.createDataFrame(rows, SPINE_SCHEMA).write.format("delta").save(spine)
    job.main(["--root", lakehouse, "--spine", spine, "--name", "s", "--mode", mode])
    before = read_training(spark, lakehouse, "s")

    # The world moves on: a late correction of a's day 2 known late on day 3, b's
    # missing day 2 filled in, a new day, and one more spine row.
    correction = snapshot_row("a", DAY0 + dt.timedelta(days=2), 777, available_at=at(3, 6))
    fill = snapshot_row("b", DAY0 + dt.timedelta(days=2), 555)
    new_day = snapshot_row("a", DAY0 + dt.timedelta(days=4), 888)
    write_snapshots(spark, lakehouse, GOLD_USER_FEATURES_HISTORY, [correction, fill, new_day])
    current = [
        r
        for r in seeded
        if not (r["user_id"] == "a" and r["as_of_date"] == DAY0 + dt.timedelta(days=2))
    ]
    feature_frame(spark, [*current, correction, fill, new_day]).write.format("delta").mode(
        "overwrite"
    ).save(GOLD_USER_FEATURES.path(lakehouse))
    spark.createDataFrame([("a", at(3, 12), 1)], SPINE_SCHEMA).write.format("delta").mode(
        "append"
    ).save(spine)
    job.main(["--root", lakehouse, "--spine", spine, "--name", "s_now", "--mode", mode])

    job.main(["--root", lakehouse, "--rebuild-from", "s"])

    rebuilt = read_training(spark, lakehouse, "s_rebuilt")
    assert rebuilt.schema == before.schema
    assert sorted(rebuilt.collect()) == sorted(before.collect())
    assert sorted(read_training(spark, lakehouse, "s_now").collect()) != sorted(before.collect())
    manifest = json.loads(
        (Path(training_path(lakehouse, "s_rebuilt")) / "_manifest.json").read_text()
    )
    assert manifest["rebuilt_from"].endswith("training/s/_manifest.json")
    assert manifest["spine"]["delta_version"] == 0


def test_rebuild_refuses_a_csv_spine_that_changed(
    spark: SparkSession, lakehouse: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_features(spark, lakehouse)
    spine = write_csv(tmp_path, ["a,2026-03-03T12:00:00Z,1,x"])
    job.main(["--root", lakehouse, "--spine", spine, "--name", "s"])
    write_csv(tmp_path, ["a,2026-03-03T12:00:00Z,0,x"])

    code, err = exit_code_and_message(["--root", lakehouse, "--rebuild-from", "s"], capsys)

    assert code == EXIT_BAD_INPUT
    assert "changed since the manifest was written" in err


def test_start_and_end_bound_the_spine_ts_range(
    spark: SparkSession, lakehouse: str, tmp_path: Path
) -> None:
    seed_features(spark, lakehouse)
    spine = write_csv(
        tmp_path,
        ["a,2026-03-02T23:59:59Z,1,x", "a,2026-03-03T00:00:00Z,1,x", "a,2026-03-05T00:00:00Z,1,x"],
    )

    dates = ["--start", "2026-03-03", "--end", "2026-03-04"]
    job.main(["--root", lakehouse, "--spine", spine, "--name", "s", *dates])

    assert [
        r[0] for r in read_training(spark, lakehouse, "s").select("spine_row_id").collect()
    ] == [1]


def test_training_problems_catch_an_injected_leak_and_a_lost_row(spark: SparkSession) -> None:
    schema = StructType(
        [
            StructField("spine_row_id", LongType(), False),
            StructField("user_id", StringType(), False),
            StructField("ts", TimestampType(), False),
            StructField("feature_ts", TimestampType(), True),
            StructField("available_at", TimestampType(), True),
        ]
    )
    crafted = spark.createDataFrame(
        [(0, "a", at(3), at(2), at(2)), (1, "a", at(3), at(4), at(4))], schema
    )

    problems = plan.training_problems(crafted, pit.PitOptions(), [""], spine_rows=3)

    assert len(problems) == 2
    assert problems[0].startswith("row count: 2 rows")
    assert problems[1].startswith("leakage: 1 row(s)")
    assert "spine_row_id=1" in problems[1]


def test_spine_bounds_are_utc_whatever_the_local_time_zone(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    late_evening = at(3, 23, 30)  # already the next day in Tokyo
    spine = spark.createDataFrame([("a", late_evening, 1)], SPINE_SCHEMA)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        bounds, _ = plan.measure_spine(spine)
    finally:
        monkeypatch.undo()
        time.tzset()

    assert bounds.min_ts == bounds.max_ts == late_evening
    assert bounds.max_ts.date() == DAY0 + dt.timedelta(days=3)
