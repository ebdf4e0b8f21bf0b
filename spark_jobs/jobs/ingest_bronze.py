"""Ingest landing files into bronze.purchases: every landed line, as landed.

Files under ``<root>/landing/purchases/dt=YYYY-MM-DD/`` (``.jsonl``, ``.jsonl.gz``) are
read as text, so nothing is lost to a parser: each line becomes one bronze row with the
landing-contract fields as the strings they were landed as (a JSON number keeps its
text, e.g. ``2``), the line itself in ``_raw`` and ``_is_malformed`` when it is not one
JSON object. A landing date without files publishes zero rows and says so in the log.

Nothing that landed is dropped, and nothing that landed crashes the job: a line longer
than silver.MAX_LINE_CHARS keeps its start plus a mark with its length and SHA-256; a
gzip file that is corrupt, truncated or not gzip at all keeps the lines that could be
read plus one flagged row saying what was wrong, and so does a directory named like a
landing file. Silver quarantines those rows (LINE_TOO_LONG, UNREADABLE_FILE), so the
nothing-lost accounting counts them like any other rejected line.

Publishing replaces exactly the landing dates of the run (``replaceWhere`` on
``_landing_date``), and ``_ingested_at`` is the logical end of the landing day, so a
rerun writes the same rows. bronze.landing_log records every landing date ingested.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from spark_jobs.catalog import (
    BRONZE_LANDING_LOG,
    BRONZE_PURCHASES,
    LANDING_FIELDS,
    LANDING_SCHEMA,
    is_landing_file,
    landing_day_path,
    landing_path,
    landing_predicate,
    staging_path,
)
from spark_jobs.cli import (
    STEP_HELP,
    DateRange,
    UserError,
    job_parser,
    run_cli,
)
from spark_jobs.jobs import run_stage_job
from spark_jobs.ops import metrics
from spark_jobs.quality import wap
from spark_jobs.storage import files as storage
from spark_jobs.transforms.silver import (
    MAX_LINE_CHARS,
    TRUNCATED_LINE_KEPT_CHARS,
    TRUNCATED_LINE_MARK,
    UNREADABLE_FILE_MARK,
)

STAGE = "bronze"
log = logging.getLogger(__name__)

_CORRUPT = "_corrupt_record"
_PARSE_SCHEMA = StructType([*LANDING_SCHEMA.fields, StructField(_CORRUPT, StringType(), True)])
# Strict JSON: Spark's parser also takes 'single quotes' and NaN/Infinity by default,
# which are not JSON and would let such a line through as if it were.
_PARSE_OPTIONS = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": _CORRUPT,
    "allowSingleQuotes": "false",
    "allowNonNumericNumbers": "false",
}
# Spark's parser reads the first JSON value of a line and ignores what follows it
# ('{"a":1}}', '{"a":1}{"b":2}'). A line is one object when, with its strings blanked out,
# folding innermost {...} and [...] pairs MAX_NESTING times leaves a single object.
MAX_NESTING = 4
_JSON_STRING = r'"(?:[^"\\]++|\\.)*+"'
_INNERMOST_PAIR = r"\{[^{}\[\]]*\}|\[[^{}\[\]]*\]"
_LANDING_DATE_IN_PATH = r"/dt=(\d{4}-\d{2}-\d{2})/[^/]+$"
LINES_SCHEMA = StructType(
    [StructField("value", StringType(), False), StructField("_source_file", StringType(), False)]
)


@dataclass(frozen=True)
class LandedDay:
    """What one landing date's folder holds: landing files, and directories named like one."""

    files: list[str]
    # A directory named like a landing file (``x.jsonl/``) cannot be read as lines: it
    # becomes one flagged bronze row instead of vanishing from the books.
    directories: list[str]


def landing_files(root: str, days: DateRange) -> dict[dt.date, LandedDay]:
    """The landing files of every date of ``days``, sorted; empty lists when none landed.

    Hidden entries (``.``/``_`` prefixes, e.g. markers of an unfinished upload) and other
    suffixes are ignored. Raises UserError when the landing folder itself is missing,
    which means a wrong ``--root`` rather than a quiet day.
    """

    def list_folder(folder: str) -> LandedDay:
        listed = storage.children(folder)
        named = [e for e in listed if is_landing_file(e.path.rsplit("/", 1)[-1])]
        return LandedDay(
            files=sorted(e.path for e in named if not e.is_dir),
            directories=sorted(e.path for e in named if e.is_dir),
        )

    if not storage.exists(landing_path(root)):
        raise UserError(
            f"no landing folder at {landing_path(root)}: check --root, or land files "
            "under landing/purchases/dt=YYYY-MM-DD/ first"
        )
    return {day: list_folder(landing_day_path(root, day)) for day in days.days()}


def gzip_problems(spark: SparkSession, files: Sequence[str]) -> dict[str, str]:
    """What is wrong with each gzip file of ``files`` that does not decompress to its end.

    Keys are paths of ``files``. Spark's text reader fails the whole job on such a file,
    so they are found first, by decompressing each file once on the executors (read
    whole: a landing file is far below the 2 GiB a binary value holds). A zero-byte file
    is an empty file, not a problem.
    """
    packed = [f for f in files if f.endswith(".gz")]
    if not packed:
        return {}

    def problem(content: bytes) -> str | None:
        # Nested, so that Spark ships the function itself to the Python workers rather
        # than a reference to this module, which executors need not have installed.
        import zlib

        data = bytes(content)
        while data:  # one gzip member after the other, as gzip and Hadoop read them
            member = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                while not member.eof:  # 1 MiB of output at a time: memory stays flat
                    produced = member.decompress(data, 1 << 20)
                    data = member.unconsumed_tail
                    if not data and not produced:
                        break  # no input left and nothing more to come out
            except zlib.error as exc:
                return f"not a valid gzip stream ({exc})"
            if not member.eof:
                return "gzip stream ends early: the file is truncated"
            data = member.unused_data
        return None

    checked = spark.read.format("binaryFile").load(list(packed))
    rows = (
        checked.select(
            "path", F.udf(problem, StringType(), useArrow=False)("content").alias("problem")
        )
        .where(F.col("problem").isNotNull())
        .collect()
    )
    # Spark may report a path URL-encoded (spaces as %20): match on the decoded form.
    listed = {unquote(f): f for f in packed}
    return {listed.get(unquote(r["path"]), r["path"]): r["problem"] for r in rows}


def _read_text(spark: SparkSession, files: Sequence[str], salvage: bool = False) -> DataFrame:
    reader = spark.read.option("ignoreCorruptFiles", "true") if salvage else spark.read
    return reader.text(list(files)).select(
        "value", F.col("_metadata.file_path").alias("_source_file")
    )


def read_landing_lines(
    spark: SparkSession, files: Sequence[str], directories: Sequence[str] = ()
) -> DataFrame:
    """Every line of ``files`` as (value, _source_file); gzip is decompressed by suffix.

    A gzip file that cannot be read to its end gives the lines read before the damage
    plus one line ``UNREADABLE_FILE_MARK`` naming the problem; so does each directory
    of ``directories``. Healthy files are read strictly, so a storage error on them still
    fails the job (and the retry reads them whole) instead of silently cutting them short.
    """
    problems = gzip_problems(spark, files)
    damaged = sorted(problems)
    healthy = [f for f in files if f not in problems]
    flags = [(UNREADABLE_FILE_MARK % problems[f], f) for f in damaged]
    flags += [(UNREADABLE_FILE_MARK % "a directory, not a file", d) for d in directories]
    for line, source in flags:
        log.warning("landing file %s: %s", source, line)
    lines = spark.createDataFrame(flags, LINES_SCHEMA)
    if healthy:
        lines = lines.unionByName(_read_text(spark, healthy))
    if damaged:
        lines = lines.unionByName(_read_text(spark, damaged, salvage=True))
    return lines


def end_of_day(day: Column) -> Column:
    """00:00 UTC of the day after ``day``, whatever the session time zone."""
    return F.timestamp_seconds(F.unix_date(F.date_add(day, 1)).cast("long") * 86_400)


def is_one_json_object(text: Column) -> Column:
    """True when ``text`` is one JSON object and nothing else (nested at most MAX_NESTING deep).

    Only the structure is checked (strings blanked, brackets folded); whether the object
    parses is from_json's business.
    """
    skeleton = F.regexp_replace(text, _JSON_STRING, '""')
    starts_as_object = F.ltrim(skeleton).startswith("{")
    for _ in range(MAX_NESTING):
        skeleton = F.regexp_replace(skeleton, _INNERMOST_PAIR, "0")
    return starts_as_object & F.trim(skeleton).eqNullSafe("0")


def parse_landing_lines(lines: DataFrame) -> DataFrame:
    """Bronze rows (BRONZE_PURCHASES_SCHEMA) of landed lines (value, _source_file).

    The landing date comes from the file's ``dt=`` folder. A line is malformed when it
    does not parse as one JSON object (blank lines and text after the closing brace
    included), is longer than MAX_LINE_CHARS (``_raw`` then keeps its first
    TRUNCATED_LINE_KEPT_CHARS characters and a mark with its length and SHA-256) or is
    the flag of an unreadable file; its fields are then null and only ``_raw`` tells what
    landed.
    """
    parsed = F.from_json("value", _PARSE_SCHEMA, _PARSE_OPTIONS)
    with_record = lines.select(
        "value",
        "_source_file",
        parsed.alias("record"),
        F.to_date(F.regexp_extract("_source_file", _LANDING_DATE_IN_PATH, 1)).alias(
            "_landing_date"
        ),
    )
    too_long = F.length("value") > MAX_LINE_CHARS
    flagged = F.col("value").startswith(UNREADABLE_FILE_MARK.split("%s")[0])
    malformed = (
        too_long
        | flagged
        | F.col("record").isNull()
        | F.col(f"record.{_CORRUPT}").isNotNull()
        | ~F.rtrim(F.col("value")).endswith("}")
        | ~is_one_json_object(F.col("value"))
    )
    truncated = F.concat(
        F.substring("value", 1, TRUNCATED_LINE_KEPT_CHARS),
        F.format_string(
            TRUNCATED_LINE_MARK,
            F.length("value"),
            F.sha2(F.col("value"), 256),
        ),
    )
    return with_record.select(
        *[F.when(~malformed, F.col(f"record.{name}")).alias(name) for name in LANDING_FIELDS],
        F.when(too_long, truncated).otherwise(F.col("value")).alias("_raw"),
        malformed.alias("_is_malformed"),
        "_source_file",
        end_of_day(F.col("_landing_date")).alias("_ingested_at"),
        "_landing_date",
    )


def landing_log(spark: SparkSession, files_by_date: dict[dt.date, LandedDay]) -> DataFrame:
    """One bronze.landing_log row per landing date: how many files it had."""
    rows = [(day, len(landed.files)) for day, landed in sorted(files_by_date.items())]
    counts = spark.createDataFrame(rows, "_landing_date date, files int")
    return counts.select(
        "_landing_date", "files", end_of_day(F.col("_landing_date")).alias("_ingested_at")
    )


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
    files_by_date = landing_files(root, days)
    for day, landed in files_by_date.items():
        if not landed.files and not landed.directories:
            log.info(
                "landing date %s: no files under %s; publishing zero rows",
                day,
                landing_day_path(root, day),
            )
    all_files = [f for landed in files_by_date.values() for f in landed.files]
    directories = [d for landed in files_by_date.values() for d in landed.directories]
    bronze = parse_landing_lines(read_landing_lines(spark, all_files, directories))
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
            "landing date %s: %d file(s), %d row(s) staged",
            day,
            len(files_by_date[day].files),
            rows,
        )
    return rows_by_date


def publish(spark: SparkSession, root: str, days: DateRange) -> wap.StageResult:
    """Gate the staged bronze rows and publish them and the landing log."""
    gate_params = {"start": str(days.start), "end": str(days.end)}
    return wap.audit_and_publish(spark, root, STAGE, days.key, outputs(days), gate_params)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m spark_jobs.jobs.ingest_bronze``."""
    parser = job_parser(
        "ingest_bronze",
        "Ingest the landing files of landing dates [--start, --end] into bronze.purchases, "
        "every line as landed (malformed ones flagged), replacing those dates.",
        steps=STEP_HELP,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bronze stage for the dates on the command line; returns the exit code."""
    args = parser().parse_args(argv)

    def steps(spark: SparkSession, root: str, days: DateRange) -> None:
        if args.step in ("all", "build"):
            build(spark, root, days)
        if args.step in ("all", "publish"):
            result = publish(spark, root, days)
            # Bronze keeps every landed line: what it read is what it published.
            metrics.note(rows_in=result.row_counts.get(BRONZE_PURCHASES.name))

    return run_stage_job("ingest_bronze", STAGE, args, steps)


if __name__ == "__main__":
    run_cli(main)
