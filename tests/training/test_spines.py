"""Spines as people write them: pandas, Spark, CSV and Delta give the same training set.

Every build runs the real job through its command line (``run_cli(main)``: Spark, Delta
and the Great Expectations gate) against one small lakehouse whose features the real
pipeline published once for the whole module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType, TimestampType

from spark_jobs.catalog import staging_root, training_path
from spark_jobs.cli import EXIT_BAD_INPUT, run_cli
from spark_jobs.jobs import build_training_set as job
from tests.factories import land, purchase, run_range

DAY1, DAY2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
UTC = dt.UTC

# The spine every format writes: (user_id, ts, label), in this order.
SPINE_ROWS = [
    ("u1", dt.datetime(2026, 3, 2, 12, tzinfo=UTC), 1),  # sees u1's day-1 snapshot
    ("u2", dt.datetime(2026, 3, 3, 0, tzinfo=UTC), 0),  # exactly at the day-2 stamp: sees it
    ("u1", dt.datetime(2026, 3, 3, 8, 30, tzinfo=UTC), 1),
    ("u3", dt.datetime(2026, 3, 2, 6, tzinfo=UTC), 0),  # a user without features
    ("u1", dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC), 1),  # before any snapshot
    ("u1", dt.datetime(2026, 3, 2, 12, tzinfo=UTC), 1),  # a duplicate stays a row of its own
]
# The same instants as people write them in CSV: other offsets, Z, a space separator.
SPINE_CSV = """user_id,ts,label
u1,2026-03-02T13:00:00+01:00,1
u2,2026-03-03T01:00:00+01:00,0
u1,2026-03-03T03:30:00-05:00,1
u3,2026-03-02 06:00:00Z,0
u1,2026-03-01T23:59:59.000+00:00,1
u1,2026-03-02T12:00:00Z,1
"""
SPARK_SCHEMA = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("ts", TimestampType(), False),
        StructField("label", IntegerType(), False),
    ]
)


@pytest.fixture(scope="module")
def features_root(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A lakehouse whose gold.user_features the whole pipeline published for two days."""
    root = str(tmp_path_factory.mktemp("spines") / "lakehouse")
    land(
        root,
        DAY1,
        [
            purchase("e-1", "u1", "2026-03-01T10:00:00Z", quantity=2),
            purchase("e-2", "u2", "2026-03-01T11:00:00Z"),
        ],
    )
    land(
        root,
        DAY2,
        [
            purchase("e-3", "u1", "2026-03-02T09:00:00Z"),
            purchase("e-4", "u2", "2026-03-02T10:00:00Z", quantity=3),
        ],
    )
    run_range(root, DAY1, DAY2)  # the tables of the two days run one by one (convergence)
    return root


def pandas_spine() -> pd.DataFrame:
    """The spine as pandas holds it: ts as datetime64[ns, UTC], pandas' default unit."""
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in SPINE_ROWS],
            "ts": pd.to_datetime([r[1] for r in SPINE_ROWS], utc=True),
            "label": [r[2] for r in SPINE_ROWS],
        }
    )


def write_pandas(unit: str, zone: str = "UTC") -> Callable[[SparkSession, Path], str]:
    """A writer of the spine by ``DataFrame.to_parquet`` with ts in ``unit`` and ``zone``."""

    def write(_: SparkSession, folder: Path) -> str:
        frame = pandas_spine()
        frame["ts"] = frame["ts"].dt.tz_convert(zone).astype(f"datetime64[{unit}, {zone}]")
        path = folder / "spine.parquet"
        frame.to_parquet(path)
        return str(path)

    return write


def write_spark_parquet(spark: SparkSession, folder: Path) -> str:
    """The spine as a Spark job writes it: a folder of part files."""
    path = str(folder / "spine")
    spark.createDataFrame(SPINE_ROWS, SPARK_SCHEMA).coalesce(1).write.parquet(path)
    return path


def write_delta(spark: SparkSession, folder: Path) -> str:
    """The spine as a Delta table."""
    path = str(folder / "spine_delta")
    spark.createDataFrame(SPINE_ROWS, SPARK_SCHEMA).coalesce(1).write.format("delta").save(path)
    return path


def write_csv_with_offsets(_: SparkSession, folder: Path) -> str:
    """The spine as a person types it: ISO-8601 strings with their own offsets."""
    path = folder / "spine.csv"
    path.write_text(SPINE_CSV)
    return str(path)


def write_pandas_csv(_: SparkSession, folder: Path) -> str:
    """The spine by ``DataFrame.to_csv``: '2026-03-02 12:00:00+00:00'."""
    path = folder / "spine.csv"
    pandas_spine().to_csv(path, index=False)
    return str(path)


WRITERS: dict[str, Callable[[SparkSession, Path], str]] = {
    "pandas_ns": write_pandas("ns"),
    "pandas_us": write_pandas("us"),
    "pandas_ms": write_pandas("ms"),
    "pandas_s": write_pandas("s"),
    "pandas_ns_berlin": write_pandas("ns", "Europe/Berlin"),
    "pandas_ms_new_york": write_pandas("ms", "America/New_York"),
    "spark_parquet": write_spark_parquet,
    "csv_offsets": write_csv_with_offsets,
    "pandas_csv": write_pandas_csv,
}


def build_rows(spark: SparkSession, root: str, spine: str, name: str) -> list[tuple]:
    """Build training set ``name`` from ``spine`` through the command line; its sorted rows."""
    code, err = exit_code_and_error(["--root", root, "--spine", spine, "--name", name])
    assert code == 0, err
    training = spark.read.format("delta").load(training_path(root, name))
    rows = training.select(
        "spine_row_id",
        "user_id",
        F.unix_micros("ts"),
        F.col("label").cast("int"),
        "lifetime_orders",
        F.unix_micros("feature_ts"),
        "feature_age",
    ).collect()
    return sorted(tuple(r) for r in rows)


def exit_code_and_error(argv: list[str]) -> tuple[int, str]:
    """The job's exit code and what it printed to stderr, as on a terminal."""
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exited, contextlib.redirect_stderr(stderr):
        run_cli(job.main, argv)
    return int(exited.value.code or 0), stderr.getvalue().strip()


def micros(instant: dt.datetime) -> int:
    """Epoch microseconds of an aware datetime."""
    return (instant - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


@pytest.fixture(scope="module")
def reference_rows(spark: SparkSession, features_root: str, tmp_path_factory) -> list[tuple]:
    """The training set of the Delta spine: what every other format must give."""
    folder = tmp_path_factory.mktemp("reference")
    return build_rows(spark, features_root, write_delta(spark, folder), "spine_delta")


def test_the_reference_spine_sees_the_snapshots_known_at_each_ts(
    reference_rows: list[tuple],
) -> None:
    day1_stamp = micros(dt.datetime(2026, 3, 2, tzinfo=UTC))
    day2_stamp = micros(dt.datetime(2026, 3, 3, tzinfo=UTC))
    got = [(r[0], r[1], r[2], r[5]) for r in reference_rows]
    assert got == [
        (0, "u1", micros(SPINE_ROWS[0][1]), day1_stamp),
        (1, "u2", micros(SPINE_ROWS[1][1]), day2_stamp),
        (2, "u1", micros(SPINE_ROWS[2][1]), day2_stamp),
        (3, "u3", micros(SPINE_ROWS[3][1]), None),
        (4, "u1", micros(SPINE_ROWS[4][1]), None),
        (5, "u1", micros(SPINE_ROWS[5][1]), day1_stamp),
    ]
    lifetime_orders = {r[0]: r[4] for r in reference_rows}
    assert lifetime_orders[0] == 1 and lifetime_orders[2] == 2 and lifetime_orders[1] == 2


@pytest.mark.parametrize("written_as", sorted(WRITERS))
def test_a_spine_written_by_pandas_spark_or_by_hand_builds_the_same_rows(
    spark: SparkSession,
    features_root: str,
    reference_rows: list[tuple],
    tmp_path: Path,
    written_as: str,
) -> None:
    spine = WRITERS[written_as](spark, tmp_path)

    assert build_rows(spark, features_root, spine, f"spine_{written_as}") == reference_rows


def test_nanoseconds_become_microseconds_exactly_dropping_only_the_sub_microsecond_part(
    spark: SparkSession, features_root: str, tmp_path: Path
) -> None:
    instants = ["2026-03-02T12:00:00.123456789Z", "2026-03-02T23:59:59.999999999Z"]
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "ts": pd.to_datetime(instants, utc=True, format="ISO8601"),
            "label": [1, 0],
        }
    )
    parquet = tmp_path / "spine.parquet"
    frame.to_parquet(parquet)
    csv = tmp_path / "spine.csv"
    csv.write_text("user_id,ts,label\nu1," + instants[0] + ",1\nu2," + instants[1] + ",0\n")

    got = {
        path.suffix: [r[2] for r in build_rows(spark, features_root, str(path), f"nanos{n}")]
        for n, path in enumerate((parquet, csv))
    }

    expected = [
        micros(dt.datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)),
        micros(dt.datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC)),
    ]
    assert got == {".parquet": expected, ".csv": expected}


# ---------------------------------------------------------------- refused, with one line


def refused(root: str, spine: str | Path, *extra: str) -> str:
    """The one error line of a build that must exit 2 and publish nothing."""
    name = "refused"
    code, err = exit_code_and_error(["--root", root, "--spine", str(spine), "--name", name, *extra])
    assert code == EXIT_BAD_INPUT, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert not Path(training_path(root, name)).exists()
    assert not Path(staging_root(root), "training", name).exists()
    return err


def csv_spine(folder: Path, ts_values: list[str], users: list[str] | None = None) -> Path:
    """A CSV spine with one row per ts value (user u1 unless ``users`` says otherwise)."""
    users = users or ["u1"] * len(ts_values)
    path = folder / "spine.csv"
    lines = [f"{u},{t},1" for u, t in zip(users, ts_values, strict=True)]
    path.write_text("\n".join(["user_id,ts,label", *lines]) + "\n")
    return path


def test_impossible_dates_are_refused_naming_the_first_rows_and_their_values(
    features_root: str, tmp_path: Path
) -> None:
    spine = csv_spine(
        tmp_path,
        [
            "2026-03-02T12:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-03-02T12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00+01:00",  # 2026 is not a leap year
            "2026-03-01T25:00:00Z",
            "2026-03-01T10:00:00+01:60",
        ],
    )

    err = refused(features_root, spine)

    assert (
        "spine rows 1, 3, 4 (and 2 more) have ts '2026-02-30T10:00:00Z', "
        "'2026-13-01T00:00:00Z', '2026-02-29T00:00:00+01:00': not a real instant" in err
    )
    assert "write ISO-8601 with an offset" in err
    assert "numbered from 0 as spine_row_id" in err


def test_null_keys_are_refused_naming_their_rows(features_root: str, tmp_path: Path) -> None:
    spine = csv_spine(
        tmp_path,
        ["2026-03-02T12:00:00Z", "", "2026-03-02T12:00:00Z", ""],
        users=["u1", "u2", "", "u4"],
    )

    err = refused(features_root, spine)

    assert "spine row 2 has no user_id" in err
    assert "spine rows 1, 3 have no ts" in err


def test_a_pandas_spine_with_missing_values_is_refused_naming_their_rows(
    features_root: str, tmp_path: Path
) -> None:
    frame = pandas_spine()
    frame.loc[3, "ts"] = pd.NaT
    frame.loc[4, "user_id"] = None
    path = tmp_path / "spine.parquet"
    frame.to_parquet(path)

    err = refused(features_root, path)

    assert "spine row 4 has no user_id" in err
    assert "spine row 3 has no ts" in err


def test_ts_strings_without_a_zone_are_refused_naming_their_rows(
    features_root: str, tmp_path: Path
) -> None:
    spine = csv_spine(tmp_path, ["2026-03-02T12:00:00Z", "2026-03-02T13:00:00", "2026-03-02"])

    err = refused(features_root, spine)

    assert "spine row 1 has ts '2026-03-02T13:00:00': no time zone" in err
    assert "spine row 2 has ts '2026-03-02': not an ISO-8601 date and time" in err


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
def test_a_pandas_spine_without_a_time_zone_is_refused_like_timestamp_ntz(
    features_root: str, tmp_path: Path, unit: str
) -> None:
    frame = pandas_spine()
    frame["ts"] = frame["ts"].dt.tz_localize(None).astype(f"datetime64[{unit}]")
    path = tmp_path / "spine.parquet"
    frame.to_parquet(path)

    err = refused(features_root, path)

    assert "spine column ts is TIMESTAMP_NTZ (no time zone)" in err
    assert "tz_localize" in err


def test_a_json_spine_is_refused_with_what_to_write_instead(
    features_root: str, tmp_path: Path
) -> None:
    path = tmp_path / "spine.json"
    path.write_text('{"user_id": "u1", "ts": "2026-03-02T12:00:00Z", "label": 1}\n')

    err = refused(features_root, path)

    assert err == (
        f"error: spine {path} is a .json file: write the spine as Parquet (pandas: "
        "DataFrame.to_parquet), CSV with a header line, or a Delta table"
    )


def test_an_excel_spine_is_refused(features_root: str, tmp_path: Path) -> None:
    path = tmp_path / "spine.xlsx"
    with zipfile.ZipFile(path, "w") as workbook:  # an .xlsx is a zip of XML parts
        workbook.writestr("xl/workbook.xml", "<workbook/>")

    assert "is a .xlsx file: write the spine as Parquet" in refused(features_root, path)


def test_a_folder_of_mixed_files_is_refused(features_root: str, tmp_path: Path) -> None:
    folder = tmp_path / "spine"
    folder.mkdir()
    csv_spine(folder, ["2026-03-02T12:00:00Z"])
    (folder / "notes.json").write_text("{}\n")

    err = refused(features_root, folder)

    assert f"spine folder {folder} mixes .csv, .json files" in err


def test_a_file_that_is_not_what_its_name_says_is_refused(
    features_root: str, tmp_path: Path
) -> None:
    path = tmp_path / "spine.parquet"
    path.write_bytes(b"user_id,ts,label\nu1,2026-03-02T12:00:00Z,1\n")

    err = refused(features_root, path)

    assert f"spine {path} cannot be read as Parquet" in err


def test_a_csv_read_as_parquet_on_request_is_refused(features_root: str, tmp_path: Path) -> None:
    spine = csv_spine(tmp_path, ["2026-03-02T12:00:00Z"])

    err = refused(features_root, spine, "--spine-format", "parquet")

    assert f"spine {spine} cannot be read as Parquet" in err


def test_a_missing_spine_is_refused(features_root: str, tmp_path: Path) -> None:
    err = refused(features_root, tmp_path / "nowhere.parquet")

    assert "does not exist" in err
