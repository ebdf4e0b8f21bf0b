"""Ingest landing files into bronze.purchases: every landed line, as landed.

Files under ``<root>/landing/purchases/dt=YYYY-MM-DD/`` (``.jsonl``, ``.jsonl.gz``) are
read as text, so nothing is lost to a parser: each line becomes one bronze row with the
landing-contract fields as the strings they were landed as (a JSON number keeps its
text, e.g. ``2``), the line itself in ``_raw`` and ``_is_malformed`` when it is not one
JSON object. A landing date without files publishes zero rows and says so in the log.

Publishing replaces exactly the landing dates of the run (``replaceWhere`` on
``_landing_date``), and ``_ingested_at`` is the logical end of the landing day, so a
rerun writes the same rows. bronze.landing_log records every landing date ingested.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit: make spark_jobs importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import datetime as dt
import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from spark_jobs import wap
from spark_jobs.cli import (
    DateRange,
    UserError,
    date_range,
    job_parser,
    resolve_root,
    run_cli,
)
from spark_jobs.locking import writer_lock
from spark_jobs.session import build_spark
from spark_jobs.tables import (
    BRONZE_LANDING_LOG,
    BRONZE_PURCHASES,
    LANDING_FIELDS,
    LANDING_SCHEMA,
    is_landing_file,
    landing_day_path,
    landing_path,
    staging_path,
)

log = logging.getLogger(__name__)

_CORRUPT = "_corrupt_record"
_PARSE_SCHEMA = StructType([*LANDING_SCHEMA.fields, StructField(_CORRUPT, StringType(), True)])
_LANDING_DATE_IN_PATH = r"/dt=(\d{4}-\d{2}-\d{2})/[^/]+$"
LINES_SCHEMA = StructType(
    [StructField("value", StringType(), False), StructField("_source_file", StringType(), False)]
)


def landing_files(spark: SparkSession, root: str, days: DateRange) -> dict[dt.date, list[str]]:
    """The landing files of every date of ``days``, sorted; an empty list when none landed.

    Hidden files (``.``/``_`` prefixes, e.g. markers of an unfinished upload) and other
    suffixes are ignored. Raises UserError when the landing folder itself is missing,
    which means a wrong ``--root`` rather than a quiet day.
    """
    jvm = spark.sparkContext._jvm
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()

    def list_folder(folder: str) -> list[str] | None:
        path = jvm.org.apache.hadoop.fs.Path(folder)
        fs = path.getFileSystem(hadoop_conf)
        if not fs.exists(path):
            return None
        return sorted(
            status.getPath().toString()
            for status in fs.listStatus(path)
            if status.isFile() and is_landing_file(status.getPath().getName())
        )

    if list_folder(landing_path(root)) is None:
        raise UserError(
            f"no landing folder at {landing_path(root)}: check --root, or land files "
            "under landing/purchases/dt=YYYY-MM-DD/ first"
        )
    return {day: list_folder(landing_day_path(root, day)) or [] for day in days.days()}


def read_landing_lines(spark: SparkSession, files: Sequence[str]) -> DataFrame:
    """Every line of ``files`` as (value, _source_file); gzip is decompressed by suffix."""
    if not files:
        return spark.createDataFrame([], LINES_SCHEMA)
    return spark.read.text(list(files)).select(
        "value", F.col("_metadata.file_path").alias("_source_file")
    )


def end_of_day(day: Column) -> Column:
    """00:00 UTC of the day after ``day``, whatever the session time zone."""
    return F.timestamp_seconds(F.unix_date(F.date_add(day, 1)).cast("long") * 86_400)


def parse_landing_lines(lines: DataFrame) -> DataFrame:
    """Bronze rows (BRONZE_PURCHASES_SCHEMA) of landed lines (value, _source_file).

    The landing date comes from the file's ``dt=`` folder. A line is malformed when it
    does not parse as one JSON object (blank lines and text after the closing brace
    included); its fields are then null and only ``_raw`` tells what landed.
    """
    parsed = F.from_json(
        "value", _PARSE_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
    )
    with_record = lines.select(
        "value",
        "_source_file",
        parsed.alias("record"),
        F.to_date(F.regexp_extract("_source_file", _LANDING_DATE_IN_PATH, 1)).alias(
            "_landing_date"
        ),
    )
    malformed = (
        F.col("record").isNull()
        | F.col(f"record.{_CORRUPT}").isNotNull()
        | ~F.rtrim(F.col("value")).endswith("}")
    )
    return with_record.select(
        *[F.when(~malformed, F.col(f"record.{name}")).alias(name) for name in LANDING_FIELDS],
        F.col("value").alias("_raw"),
        malformed.alias("_is_malformed"),
        "_source_file",
        end_of_day(F.col("_landing_date")).alias("_ingested_at"),
        "_landing_date",
    )


def landing_log(spark: SparkSession, files_by_date: dict[dt.date, list[str]]) -> DataFrame:
    """One bronze.landing_log row per landing date: how many files it had."""
    rows = [(day, len(files)) for day, files in sorted(files_by_date.items())]
    counts = spark.createDataFrame(rows, "_landing_date date, files int")
    return counts.select(
        "_landing_date", "files", end_of_day(F.col("_landing_date")).alias("_ingested_at")
    )


def landing_predicate(days: DateRange) -> str:
    """The replaceWhere predicate of a run: its landing dates, inclusive."""
    return f"_landing_date >= DATE'{days.start}' AND _landing_date <= DATE'{days.end}'"


def outputs(days: DateRange) -> list[wap.Output]:
    """What the bronze stage publishes: the rows, then the log that vouches for them."""
    predicate = landing_predicate(days)
    return [
        wap.Output(BRONZE_PURCHASES, wap.replace_where(predicate, BRONZE_PURCHASES)),
        wap.Output(
            BRONZE_LANDING_LOG, wap.replace_where(predicate, BRONZE_LANDING_LOG), gated=False
        ),
    ]


def build(spark: SparkSession, root: str, days: DateRange) -> dict[dt.date, int]:
    """Stage the bronze rows and landing log of ``days``; returns rows staged per date."""
    files_by_date = landing_files(spark, root, days)
    for day, files in files_by_date.items():
        if not files:
            log.info(
                "landing date %s: no files under %s; publishing zero rows",
                day,
                landing_day_path(root, day),
            )
    all_files = [f for files in files_by_date.values() for f in files]
    bronze = parse_landing_lines(read_landing_lines(spark, all_files))
    wap.stage_outputs(
        spark,
        root,
        days.key,
        {BRONZE_PURCHASES: bronze, BRONZE_LANDING_LOG: landing_log(spark, files_by_date)},
    )
    staged = spark.read.format("delta").load(staging_path(root, BRONZE_PURCHASES, days.key))
    counted = {
        r["_landing_date"]: r["rows"]
        for r in staged.groupBy("_landing_date").agg(F.count(F.lit(1)).alias("rows")).collect()
    }
    rows_by_date = {day: int(counted.get(day, 0)) for day in files_by_date}
    for day, rows in rows_by_date.items():
        log.info(
            "landing date %s: %d file(s), %d row(s) staged", day, len(files_by_date[day]), rows
        )
    return rows_by_date


def publish(spark: SparkSession, root: str, days: DateRange) -> wap.StageResult:
    """Gate the staged bronze rows and publish them and the landing log."""
    gate_params = {"start": str(days.start), "end": str(days.end), "stage": "bronze"}
    return wap.audit_and_publish(spark, root, "bronze", days.key, outputs(days), gate_params)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m spark_jobs.ingest_bronze``."""
    parser = job_parser(
        "ingest_bronze",
        "Ingest the landing files of landing dates [--start, --end] into bronze.purchases, "
        "every line as landed (malformed ones flagged), replacing those dates.",
    )
    parser.add_argument(
        "--step",
        choices=wap.STEPS,
        default="all",
        help="build: stage the rows; publish: gate and publish staged rows; all: both (default)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bronze stage for the dates on the command line; returns the exit code."""
    args = parser().parse_args(argv)
    days = date_range(args)
    root = resolve_root(args.root)
    spark = build_spark(app_name="ingest_bronze")
    with writer_lock(root, f"ingest_bronze {days.key}"):
        if args.step in ("all", "build"):
            build(spark, root, days)
        if args.step in ("all", "publish"):
            publish(spark, root, days)
    return 0


if __name__ == "__main__":
    run_cli(main)
