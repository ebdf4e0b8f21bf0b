"""Build a point-in-time correct training set: a spine of (user_id, ts, label) rows joined
to the feature snapshots each row could have seen at its ts.

    python -m spark_jobs.jobs.build_training_set --root R --spine spine.parquet --name churn_v1 \
        [--mode event_time|as_known] [--ttl-days N] [--features f1,f2] [--strict] \
        [--availability-delay-hours H] [--step all|build|publish]
    python -m spark_jobs.jobs.build_training_set --root R --rebuild-from churn_v1 [--name copy]

The output, ``<root>/training/<name>``, has exactly one row per spine row (``spine_row_id``
numbers them in the spine's order), the spine's columns, the selected features,
``feature_ts``, ``available_at`` and ``feature_age`` (seconds). A manifest beside it
records every input's Delta version; ``--rebuild-from`` reads them again by time travel.
The rules, TTL and time-zone policy are spelled out in docs/TRAINING_SETS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from delta.tables import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from spark_jobs import names
from spark_jobs.catalog import (
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    Table,
    join_path,
    staging_path,
    training_path,
)
from spark_jobs.cli import (
    DateRange,
    GateFailed,
    UserError,
    job_parser,
    resolve_root,
    run_cli,
    run_token,
)
from spark_jobs.quality.wap import (
    STEPS,
    Output,
    audit_and_publish,
    consistent_version,
    latest_version,
    read_staged,
    stage_outputs,
)
from spark_jobs.session import build_spark
from spark_jobs.storage import files as storage
from spark_jobs.storage.locking import writer_lock
from spark_jobs.training import manifest as manifests
from spark_jobs.transforms import pit

log = logging.getLogger(__name__)

# A feature table and the history of all its versions (the as_known source).
FEATURE_SOURCES: dict[str, tuple[Table, Table]] = {
    GOLD_USER_FEATURES.name: (GOLD_USER_FEATURES, GOLD_USER_FEATURES_HISTORY),
}
SPINE_FORMATS = ("auto", "delta", "parquet", "csv")
REQUIRED_SPINE_COLUMNS = (pit.SPINE_KEY, pit.SPINE_TS, "label")
RESERVED_COLUMNS = (pit.ROW_ID, *pit.METADATA_COLUMNS)
# A spine file's kind by its name; anything else is refused (detect_spine_format).
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
SPINE_FILE_KINDS = {".csv": "csv", ".parquet": "parquet"}
NO_SUFFIX = "suffix-less"
FORMAT_NAMES = {"delta": "Delta", "parquet": "Parquet", "csv": "CSV"}
# ISO-8601 date and time: seconds optional, up to nine fraction digits (pandas writes
# nanoseconds; those past the microsecond are dropped), then the zone, which a spine
# row must have.
ISO_DATE_TIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?$"
ZONE_DESIGNATOR = r"(Z|[+-]\d{2}:\d{2})$"
NO_SECONDS = r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2})(Z|[+-]\d{2}:\d{2})$"
# Spark infers a Parquet TIMESTAMP(NANOS) column (pandas' default) only under this flag,
# as epoch nanoseconds in a long.
PARQUET_NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"
NANOS_PER_MICRO = 1000
# What a spine Spark or pyarrow cannot read raises: refused as a UserError.
UNREADABLE = (PySparkException, Py4JJavaError, pa.ArrowException, OSError)
# An error line names this many offending rows (and values) per problem.
SHOWN_ROWS = 3
VALUE_CHARS = 40
# One suite gates every training set: expectations/training_set.json.
TRAINING_SET_SUITE = "training_set"
REBUILD_SUFFIX = "_rebuilt"


@dataclass(frozen=True)
class SpineSource:
    """Where a spine was read from; ``delta_version`` pins a Delta spine."""

    path: str
    format: str
    delta_version: int | None = None


@dataclass(frozen=True)
class TablePlan:
    """One feature table's part of the output: its features and their output names."""

    table: str
    features: tuple[str, ...]
    output_names: tuple[str, ...]
    metadata_prefix: str  # "" with one feature table, "<table>__" with several


@dataclass(frozen=True)
class Request:
    """Everything that decides a training set's rows, from the CLI or from a manifest."""

    name: str
    spine: SpineSource
    options: pit.PitOptions
    feature_tables: tuple[str, ...]
    features: tuple[str, ...] | None
    start: dt.date | None
    end: dt.date | None
    input_versions: dict[str, int] | None = None  # set when rebuilding
    spine_fingerprint: str | None = None  # set when rebuilding
    rebuilt_from: str | None = None
    run: str = ""  # cli.run_token: two builds of one name never share staged rows


def build_parser() -> argparse.ArgumentParser:
    """The job's argument parser: the common options plus the training-set ones."""
    parser = job_parser(
        "build_training_set",
        "Join a spine of (user_id, ts, label) rows to the feature snapshots each row could "
        "have seen at its ts, check it for leakage, publish it with a manifest.",
    )
    # --start/--end only bound the spine's ts range here, so they are optional.
    for action in parser._actions:
        if action.dest == "start":
            action.required = False
            action.help = "optional: keep spine rows whose ts falls on or after this UTC date"
        if action.dest == "end":
            action.help = "optional: keep spine rows whose ts falls on or before this UTC date"
    parser.add_argument("--spine", help="spine location: a Delta table, Parquet or CSV path")
    parser.add_argument("--spine-format", choices=SPINE_FORMATS, default="auto")
    parser.add_argument(
        "--name",
        type=_training_set_name,
        help=f"training set name: the output is <root>/training/<name> ({names.ALLOWED})",
    )
    parser.add_argument("--mode", choices=pit.MODES, default="event_time")
    parser.add_argument(
        "--ttl-days",
        type=_non_negative_int,
        default=None,
        help="oldest snapshot allowed, in UTC calendar days before ts's day "
        "(0: only a snapshot stamped on ts's own day; default: unbounded)",
    )
    parser.add_argument("--features", help="comma-separated feature columns (default: all)")
    parser.add_argument(
        "--feature-tables",
        default=GOLD_USER_FEATURES.name,
        help=f"comma-separated feature tables (known: {', '.join(FEATURE_SOURCES)})",
    )
    parser.add_argument(
        "--strict", action="store_true", help="require feature_ts < ts instead of <="
    )
    parser.add_argument(
        "--availability-delay-hours",
        type=_non_negative_int,
        default=0,
        help="a snapshot is usable only from feature_ts + this many hours",
    )
    parser.add_argument(
        "--strategy",
        choices=pit.STRATEGIES,
        default="auto",
        help="join strategy (same rows either way; auto broadcasts small spines)",
    )
    parser.add_argument("--step", choices=STEPS, default="all")
    parser.add_argument(
        "--rebuild-from",
        type=_manifest_or_name,
        help="path of a _manifest.json, or a training set name: rebuild it from the input "
        f"versions it recorded (to --name, default <name>{REBUILD_SUFFIX})",
    )
    return parser


def _training_set_name(value: str) -> str:
    # Checked while parsing, so a bad name exits 2 before a Spark session starts.
    try:
        return names.validate_name(value, "training set name")
    except names.UnsafeNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _manifest_or_name(value: str) -> str:
    # A manifest path is only read, so any path will do; anything else is a training
    # set name that becomes <root>/training/<name>/_manifest.json (the same split as
    # manifest.resolve_manifest makes).
    if value.endswith(".json"):
        return value
    try:
        return names.validate_name(value, "training set name")
    except names.UnsafeNameError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc}; or give the path of a {manifests.MANIFEST_FILE} file"
        ) from None


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}: expected 0, 1, 2...") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is negative: expected 0 or more")
    return number


def _csv_list(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    return items or None


# ---------------------------------------------------------------- spine: read and check


def detect_spine_format(spark: SparkSession, path: str, requested: str) -> str:
    """The spine's format: the requested one, else Delta if it has a log, else by file names.

    Refuses (UserError) a path with nothing in it, ``delta`` asked of a folder without a
    Delta log, and in ``auto`` mode anything that is not all Parquet or all CSV (a JSON
    or Excel file, a folder of mixed files), saying what to write instead.
    """
    top = storage.children(spark, path)
    if not top:
        raise UserError(
            f"spine {path} does not exist or is an empty folder: give a Delta table, a "
            "Parquet or CSV file, or a folder of them"
        )
    if requested == "delta" and not DeltaTable.isDeltaTable(spark, path):
        raise UserError(
            f"spine {path} is not a Delta table (it has no _delta_log): give "
            "--spine-format auto, parquet or csv"
        )
    if requested != "auto":
        return requested
    if DeltaTable.isDeltaTable(spark, path):
        return "delta"
    kinds = sorted({_file_kind(f) for f in _data_files(spark, path, top)})
    if len(kinds) == 1 and kinds[0] in SPINE_FILE_KINDS:
        return SPINE_FILE_KINDS[kinds[0]]
    single_file = _is_the_file(top, path)
    if not kinds:
        raise UserError(
            f"spine folder {path} holds no data files (names starting with _ or . are "
            "skipped): give a Delta table, a Parquet or CSV file, or a folder of them"
        )
    if len(kinds) > 1:
        raise UserError(
            f"spine folder {path} mixes {', '.join(kinds)} files: keep only the spine's "
            "Parquet or CSV files in it, or point --spine at one file"
        )
    if kinds == [NO_SUFFIX]:
        what = f"spine {path} has" if single_file else f"the files in spine folder {path} have"
        raise UserError(
            f"{what} no .parquet or .csv suffix: name them for their format, or give "
            "--spine-format parquet or csv"
        )
    what = (
        f"spine {path} is a {kinds[0]} file"
        if single_file
        else (f"spine folder {path} holds {kinds[0]} files")
    )
    raise UserError(
        f"{what}: write the spine as Parquet (pandas: DataFrame.to_parquet), CSV with a "
        "header line, or a Delta table"
    )


def _name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _is_the_file(top: Sequence[storage.Entry], path: str) -> bool:
    # Listing a file gives the file itself; listing a folder gives its children.
    return len(top) == 1 and not top[0].is_dir and _name(top[0].path) == _name(path)


def _data_files(
    spark: SparkSession, path: str, top: Sequence[storage.Entry] | None = None
) -> list[str]:
    """The data files of a spine path (itself, or every file under the folder), sorted.

    Names starting with ``_`` or ``.`` (``_SUCCESS``, ``.crc``, ``_delta_log``) are
    bookkeeping that Spark's readers skip too.
    """
    top = storage.children(spark, path) if top is None else top
    if _is_the_file(top, path):
        return [top[0].path]
    files = []
    pending = list(top)
    while pending:
        entry = pending.pop()
        if _name(entry.path).startswith(("_", ".")):
            continue
        if entry.is_dir:
            pending += storage.children(spark, entry.path)
        else:
            files.append(entry.path)
    return sorted(files)


def _file_kind(uri: str) -> str:
    name = _name(uri).lower()
    if name.endswith(CSV_SUFFIXES):
        return ".csv"
    if name.endswith(PARQUET_SUFFIXES):
        return ".parquet"
    return Path(name).suffix or NO_SUFFIX


def read_spine(spark: SparkSession, source: SpineSource) -> DataFrame:
    """The spine as stored, each column in its Spark type; CSV columns are all strings.

    Parquet timestamps in nanoseconds (pandas' default unit), which Spark cannot read as
    timestamps, arrive floored to the microsecond: as TIMESTAMP when the file says they
    are UTC instants, else as TIMESTAMP_NTZ (which ``spine_schema_problem`` refuses for
    ``ts``). A spine Spark or pyarrow cannot read raises UserError with the reason.
    """
    try:
        if source.format == "delta":
            reader = spark.read.format("delta")
            if source.delta_version is not None:
                reader = reader.option("versionAsOf", source.delta_version)
            return reader.load(source.path)
        if source.format == "csv":
            header = spark.read.option("header", "true").csv(source.path).columns
            schema = StructType([StructField(c, StringType(), True) for c in header])
            return (
                spark.read.schema(schema)
                .option("header", "true")
                .option("mode", "FAILFAST")
                .csv(source.path)
            )
        return _read_parquet(spark, source.path)
    except UNREADABLE as exc:
        raise UserError(_unreadable(source, exc)) from None


def _read_parquet(spark: SparkSession, path: str) -> DataFrame:
    nanos = _nanosecond_columns(spark, path)
    if not nanos:
        return spark.read.parquet(path)
    # Spark infers nanosecond timestamps only as longs, and only under this legacy flag.
    # The flag matters to inference alone: the scan below has an explicit schema, so it
    # reads the longs whatever the flag says when the spine is read again later.
    previous = spark.conf.get(PARQUET_NANOS_AS_LONG, "false")
    spark.conf.set(PARQUET_NANOS_AS_LONG, "true")
    try:
        schema = spark.read.parquet(path).schema
    finally:
        spark.conf.set(PARQUET_NANOS_AS_LONG, previous)
    raw = spark.read.schema(schema).parquet(path)
    return raw.select(*[_from_nanos(c, nanos[c]) if c in nanos else F.col(c) for c in raw.columns])


def _nanosecond_columns(spark: SparkSession, path: str) -> dict[str, bool]:
    """The spine's top-level INT64 TIMESTAMP(NANOS) columns, each with "is it UTC?".

    Read from the Parquet footer of its first data file, as Spark infers a schema. The
    Parquet types are read, not pyarrow's: pyarrow shows Spark's INT96 timestamps as
    nanoseconds too, which Spark itself reads well.
    """
    files = _data_files(spark, path)
    if not files:
        raise UserError(f"spine {path} holds no Parquet files")
    nanos = {}
    for column in _parquet_columns(spark, files[0]):
        logical = json.loads(column.logical_type.to_json())
        if logical.get("Type") != "Timestamp" or logical.get("timeUnit") != "nanoseconds":
            continue
        if column.path != column.name:
            raise UserError(
                f"spine {path}: column {column.path} holds nanosecond timestamps inside a "
                "nested type, which Spark cannot read: store them as microseconds (pandas: "
                ".astype('datetime64[us, UTC]'))"
            )
        nanos[column.name] = bool(logical.get("isAdjustedToUTC"))
    return nanos


def _parquet_columns(spark: SparkSession, uri: str) -> list[pq.ColumnSchema]:
    # pyarrow reads only the footer of a local file; from an object store the file comes
    # through Spark's own file system (binaryFile), so the same credentials apply.
    if storage.is_local(uri):
        source: Any = uri.removeprefix("file:").removeprefix("//")
    else:
        content = spark.read.format("binaryFile").load(uri).select("content").first()
        source = pa.BufferReader(bytes(content["content"]))
    schema = pq.read_metadata(source).schema
    return [schema.column(i) for i in range(len(schema))]


def _from_nanos(column: str, utc: bool) -> Column:
    # Floored, not truncated toward zero, so that no instant (not even one before 1970)
    # moves later: a row never sees a snapshot its true ts would not have seen.
    nanos = F.col(column).cast("decimal(20,0)")
    micros = F.floor(nanos / F.lit(NANOS_PER_MICRO)).cast("long")
    instant = F.timestamp_micros(micros)
    # The session time zone is UTC (spark_jobs.session), so a naive value keeps the wall
    # clock it was written with.
    return (instant if utc else instant.cast(TimestampNTZType())).alias(column)


def _unreadable(source: SpineSource, exc: Exception) -> str:
    return (
        f"spine {source.path} cannot be read as {FORMAT_NAMES[source.format]} "
        f"({_reason(exc)}): check that it is one, or give the right --spine-format"
    )


def _reason(exc: Exception) -> str:
    # The innermost Java cause says what was wrong with the file ("is not a Parquet
    # file", "Malformed CSV record: ..."); the outer ones only say where it happened.
    message = str(exc)
    if isinstance(exc, Py4JJavaError):
        cause = exc.java_exception
        while cause is not None:
            message = str(cause.getMessage() or message)
            cause = cause.getCause()
    first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return first_line[:300]


def spine_schema_problem(schema: StructType) -> str | None:
    """Why a spine's columns cannot be used, or None when they can."""
    names = schema.fieldNames()
    missing = [c for c in REQUIRED_SPINE_COLUMNS if c not in names]
    if missing:
        return (
            f"spine has no column {', '.join(missing)} (found: {', '.join(names) or 'none'}); "
            f"a spine needs {', '.join(REQUIRED_SPINE_COLUMNS)}"
        )
    reserved = [c for c in RESERVED_COLUMNS if c in names]
    if reserved:
        return f"spine column {', '.join(reserved)} is a name the training set writes; rename it"
    user_type = schema[pit.SPINE_KEY].dataType
    if not isinstance(user_type, StringType):
        return f"spine column user_id is {user_type.simpleString()}: cast it to string"
    ts_type = schema[pit.SPINE_TS].dataType
    if isinstance(ts_type, TimestampNTZType):
        return (
            "spine column ts is TIMESTAMP_NTZ (no time zone), which is ambiguous (an hour "
            "off around daylight-saving changes): write instants, a TIMESTAMP (pandas: "
            "df['ts'] = df['ts'].dt.tz_localize('<the zone it was recorded in>'))"
        )
    if not isinstance(ts_type, TimestampType | StringType):
        return (
            f"spine column ts is {ts_type.simpleString()}: it must be a TIMESTAMP or an "
            "ISO-8601 string with an offset, e.g. 2026-03-01T14:22:05Z"
        )
    return None


def _instant(text: Column) -> Column:
    # Spark's cast wants seconds; ISO-8601 allows leaving them out (10:00Z).
    with_seconds = F.regexp_replace(text, NO_SECONDS, "$1:00$2")
    return with_seconds.try_cast("timestamp")


def typed_spine(spine: DataFrame) -> DataFrame:
    """The spine with ``ts`` as a timestamp: strings parsed to UTC, instants kept as they are.

    A string keeps the instant its offset names (``+01:00`` is an hour ahead of UTC);
    digits past the microsecond are dropped. Strings must already have passed
    ``spine_value_problem``.
    """
    if isinstance(spine.schema[pit.SPINE_TS].dataType, TimestampType):
        return spine
    return spine.withColumn(pit.SPINE_TS, _instant(F.col(pit.SPINE_TS)))


@dataclass(frozen=True)
class _RowRule:
    """One way a spine row can be unusable: the test, and what the error line says."""

    broken: Column
    what: str  # "no user_id", or "ts" when the offending values are shown after it
    why: str


def _row_rules(spine: DataFrame) -> list[_RowRule]:
    ts = F.col(pit.SPINE_TS)
    rules = [
        _RowRule(F.col(pit.SPINE_KEY).isNull(), "no user_id", "every row needs one"),
        _RowRule(ts.isNull(), "no ts", "every row needs an instant, e.g. 2026-03-01T14:22:05Z"),
    ]
    if not isinstance(spine.schema[pit.SPINE_TS].dataType, StringType):
        return rules
    iso = ts.rlike(ISO_DATE_TIME)
    zoned = F.regexp_extract(ts, ZONE_DESIGNATOR, 1) != ""
    return [
        *rules,
        _RowRule(
            ts.isNotNull() & ~iso,
            "ts",
            "not an ISO-8601 date and time; write e.g. 2026-03-01T14:22:05Z or "
            "2026-03-01T15:22:05+01:00",
        ),
        _RowRule(
            iso & ~zoned,
            "ts",
            "no time zone, which is ambiguous (an hour off around daylight-saving changes); "
            "write the offset it was recorded in, e.g. 2026-03-01T14:22:05Z or "
            "2026-03-01T15:22:05+01:00",
        ),
        _RowRule(
            iso & zoned & _instant(ts).isNull(),
            "ts",
            "not a real instant (no such date, time of day or offset); write ISO-8601 with "
            "an offset, e.g. 2026-03-01T14:22:05Z",
        ),
    ]


def spine_value_problem(spine: DataFrame) -> str | None:
    """Why some of a numbered spine's rows cannot be used, or None when all can.

    Null ``user_id`` or ``ts``; for a string ``ts``: not ISO-8601, no offset, or no such
    instant (2026-02-30, 25:00, +01:60). Each problem names its first rows by
    ``spine_row_id`` and, for ``ts``, their values. Runs one Spark job, which shuffles
    only the offending rows.
    """
    rules = _row_rules(spine)
    broken = F.filter(
        F.array(*[F.when(r.broken, F.lit(i)) for i, r in enumerate(rules)]),
        lambda rule: rule.isNotNull(),
    )
    flagged = spine.select(
        F.col(pit.ROW_ID),
        F.col(pit.SPINE_TS).cast("string").alias("_value"),
        F.explode(broken).alias("_rule"),
    )
    per_rule = Window.partitionBy("_rule")
    first_rows = (
        flagged.withColumn("_rank", F.row_number().over(per_rule.orderBy(pit.ROW_ID)))
        .withColumn("_count", F.count(F.lit(1)).over(per_rule))
        .where(F.col("_rank") <= SHOWN_ROWS)
        .collect()
    )
    if not first_rows:
        return None
    problems = []
    for index, rule in enumerate(rules):
        rows = sorted((r for r in first_rows if r["_rule"] == index), key=lambda r: r["_rank"])
        if not rows:
            continue
        count = rows[0]["_count"]
        ids = ", ".join(str(r[pit.ROW_ID]) for r in rows)
        more = f" (and {count - len(rows)} more)" if count > len(rows) else ""
        subject = f"spine row {ids} has" if count == 1 else f"spine rows {ids}{more} have"
        what = rule.what
        if what == "ts":
            what += " " + ", ".join(repr(r["_value"][:VALUE_CHARS]) for r in rows)
        problems.append(f"{subject} {what}: {rule.why}")
    return "; ".join(problems) + " (rows are numbered from 0 as spine_row_id)"


def checked_spine(spark: SparkSession, source: SpineSource) -> DataFrame:
    """The spine numbered (``spine_row_id``) and typed, once its columns and values pass.

    Everything wrong with it is a UserError of one line, raised before any feature is
    read: unusable columns, unusable rows (the first ones named), an unreadable file.
    """
    raw = read_spine(spark, source)
    problem = spine_schema_problem(raw.schema)
    if problem:
        raise UserError(f"{source.path}: {problem}")
    try:  # the first actions on the spine: where a corrupt file or CSV row shows up
        numbered = with_row_ids(raw)
        problem = spine_value_problem(numbered)
    except UNREADABLE as exc:
        raise UserError(_unreadable(source, exc)) from None
    if problem:
        raise UserError(f"{source.path}: {problem}")
    return typed_spine(numbered)


def with_row_ids(spine: DataFrame) -> DataFrame:
    """The spine with ``spine_row_id``: 0, 1, 2... in the order the rows are read.

    Runs one count per partition. A file source reads the same rows in the same order
    every time, so the same spine always gets the same ids, duplicates included.
    """
    mono = F.monotonically_increasing_id()
    tagged = spine.withColumn("_mono", mono)
    partition = F.shiftright(F.col("_mono"), 33)
    counts = sorted(
        (row["_partition"], row["count"])
        for row in tagged.groupBy(partition.alias("_partition")).count().collect()
    )
    offsets: list[Any] = []
    running = 0
    for part, count in counts:
        offsets += [F.lit(part), F.lit(running)]
        running += count
    position = F.col("_mono").bitwiseAND(F.lit((1 << 33) - 1))
    row_id = F.element_at(F.create_map(*offsets), partition) + position if offsets else position
    return tagged.select(row_id.cast("long").alias(pit.ROW_ID), *spine.columns)


def restrict_to_dates(spine: DataFrame, start: dt.date | None, end: dt.date | None) -> DataFrame:
    """The spine rows whose ts falls on a UTC date within [start, end] (either optional)."""
    day = F.to_date(F.col(pit.SPINE_TS))
    if start is not None:
        spine = spine.where(day >= F.lit(start))
    if end is not None:
        spine = spine.where(day <= F.lit(end))
    return spine


def measure_spine(spine: DataFrame) -> tuple[pit.SpineBounds, str]:
    """The spine's row count and ts range, and a fingerprint of its rows and ids."""
    hashed = F.xxhash64(*[F.col(c) for c in spine.columns]).cast("decimal(38,0)")
    found = spine.agg(
        F.count(F.lit(1)).alias("rows"),
        F.unix_micros(F.min(pit.SPINE_TS)).alias("min_ts"),
        F.unix_micros(F.max(pit.SPINE_TS)).alias("max_ts"),
        F.sum(hashed).alias("fingerprint"),
    ).first()
    bounds = pit.SpineBounds.from_micros(found["rows"], found["min_ts"], found["max_ts"])
    return bounds, f"{found['rows']}:{found['fingerprint'] or 0}"


# ---------------------------------------------------------------- features and the join


def plan_tables(
    spine_columns: Sequence[str],
    table_names: Sequence[str],
    requested: Sequence[str] | None,
) -> list[TablePlan]:
    """Which features each table contributes and under which names.

    A feature keeps its name unless an earlier column (spine or feature) has it; then it
    becomes ``<layer>_<table>__<feature>``.
    """
    unknown_tables = [t for t in table_names if t not in FEATURE_SOURCES]
    if unknown_tables or len(set(table_names)) != len(table_names):
        raise UserError(
            f"--feature-tables {','.join(table_names)}: give distinct tables among "
            f"{', '.join(FEATURE_SOURCES)}"
        )
    available = {
        t: [c for c in FEATURE_SOURCES[t][0].schema.fieldNames() if c not in pit.SNAPSHOT_COLUMNS]
        for t in table_names
    }
    if requested:
        known = {c for columns in available.values() for c in columns}
        missing = [c for c in requested if c not in known]
        if missing:
            raise UserError(
                f"unknown feature {', '.join(missing)}; the tables have: {', '.join(sorted(known))}"
            )
    taken = set(spine_columns)
    plans = []
    for table in table_names:
        prefix = table.replace(".", "_") + "__"
        features = tuple(c for c in available[table] if not requested or c in requested)
        names = []
        for feature in features:
            name = feature if feature not in taken else prefix + feature
            taken.add(name)
            names.append(name)
        plans.append(
            TablePlan(table, features, tuple(names), prefix if len(table_names) > 1 else "")
        )
    return plans


def build_training_frame(
    spine: DataFrame,
    feature_frames: dict[str, DataFrame],
    plans: Sequence[TablePlan],
    options: pit.PitOptions,
    bounds: pit.SpineBounds,
) -> DataFrame:
    """The training set: the spine joined point-in-time to each feature table in turn."""
    training = spine
    for plan in plans:
        features = feature_frames[plan.table].select(
            *[F.col(c) for c in pit.SNAPSHOT_COLUMNS],
            *[F.col(f).alias(n) for f, n in zip(plan.features, plan.output_names, strict=True)],
        )
        training = pit.point_in_time_join(training, features, plan.output_names, options, bounds)
        if plan.metadata_prefix:
            for column in pit.METADATA_COLUMNS:
                training = training.withColumnRenamed(column, plan.metadata_prefix + column)
    return training


def training_problems(
    training: DataFrame, options: pit.PitOptions, prefixes: Sequence[str], spine_rows: int
) -> list[str]:
    """Why a built training set must not be published: row counts and leakage."""
    found = training.agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct(pit.ROW_ID).alias("ids")
    ).first()
    problems = []
    if found["rows"] != spine_rows or found["ids"] != spine_rows:
        problems.append(
            f"row count: {found['rows']} rows with {found['ids']} distinct spine_row_id, "
            f"expected exactly one per spine row ({spine_rows})"
        )
    leaks = pit.leakage_violations(training, options, prefixes)
    leak_count = leaks.count()
    if leak_count:
        example = leaks.orderBy(pit.ROW_ID).first()
        columns = [pit.ROW_ID, pit.SPINE_KEY, pit.SPINE_TS] + [
            p + c for p in prefixes for c in (pit.FEATURE_TS, pit.AVAILABLE_AT)
        ]
        detail = ", ".join(f"{c}={example[c]}" for c in columns)
        problems.append(
            f"leakage: {leak_count} row(s) saw a snapshot not usable at their ts, e.g. {detail}"
        )
    return problems


# ---------------------------------------------------------------- main


def training_table(name: str, schema: StructType) -> Table:
    """The catalog entry of training set ``name`` (``training.<name>``) and its path.

    The gates pick the shared ``training_set`` suite for every ``training.*`` table.
    """
    return Table(f"training.{name}", f"training/{name}", schema)


def _replace_whole_table(spark: SparkSession, staged: DataFrame, path: str) -> None:
    # A training set is rebuilt whole: one atomic overwrite, schema included.
    staged.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)


def _request_from_args(spark: SparkSession, args: argparse.Namespace) -> Request:
    if not args.spine or not args.name:
        raise UserError("give --spine and --name (or --rebuild-from a manifest)")
    path = args.spine if "://" in args.spine else str(Path(args.spine).expanduser().resolve())
    spine_format = detect_spine_format(spark, path, args.spine_format)
    version = latest_version(spark, path) if spine_format == "delta" else None
    options = pit.PitOptions(
        mode=args.mode,
        ttl_days=args.ttl_days,
        strict=args.strict,
        availability_delay_hours=args.availability_delay_hours,
        strategy=args.strategy,
    )
    return Request(
        name=args.name,
        spine=SpineSource(path, spine_format, version),
        options=options,
        feature_tables=_csv_list(args.feature_tables) or (GOLD_USER_FEATURES.name,),
        features=_csv_list(args.features),
        start=args.start,
        end=args.end,
    )


def _request_from_manifest(spark: SparkSession, root: str, args: argparse.Namespace) -> Request:
    path = manifests.resolve_manifest(root, args.rebuild_from)
    recorded = manifests.read_manifest(spark, path)
    params = recorded["parameters"]
    spine = recorded["spine"]
    # The manifest is a file anyone with write access to the root may have edited: the
    # output name taken from it passes the same rule as --name.
    name = args.name or names.validate_name(
        f"{recorded['name']}{REBUILD_SUFFIX}", f"output name derived from {path}"
    )
    return Request(
        name=name,
        spine=SpineSource(spine["path"], spine["format"], spine.get("delta_version")),
        options=pit.PitOptions(**params["options"]),
        feature_tables=tuple(params["feature_tables"]),
        features=tuple(params["features"]) if params["features"] else None,
        start=dt.date.fromisoformat(params["start"]) if params["start"] else None,
        end=dt.date.fromisoformat(params["end"]) if params["end"] else None,
        input_versions={name: i["delta_version"] for name, i in recorded["inputs"].items()},
        spine_fingerprint=spine["fingerprint"],
        rebuilt_from=path,
    )


def _logical_time(request: Request, bounds: pit.SpineBounds) -> str | None:
    # The build's logical time is the end of its date range, else the spine's last ts:
    # never the wall clock, so a rebuild records the same instant.
    if request.end is not None:
        return f"{request.end + dt.timedelta(days=1)}T00:00:00Z"
    return bounds.max_ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if bounds.max_ts else None


def _run_key(request: Request) -> str:
    if request.start is None and request.end is None:
        dates = "all"
    else:
        dates = f"{request.start or 'min'}_{request.end or 'max'}"
    return f"{dates}__{request.run}" if request.run else dates


def build(spark: SparkSession, root: str, request: Request) -> dict[str, Any]:
    """Build the training set into staging; returns its draft manifest."""
    spine = restrict_to_dates(checked_spine(spark, request.spine), request.start, request.end)
    try:  # the first read of every column: a CSV row with too many fields shows up here
        bounds, fingerprint = measure_spine(spine)
    except UNREADABLE as exc:
        raise UserError(_unreadable(request.spine, exc)) from None
    if request.spine_fingerprint is not None and fingerprint != request.spine_fingerprint:
        raise UserError(
            f"spine {request.spine.path} changed since the manifest was written "
            f"(fingerprint {fingerprint}, recorded {request.spine_fingerprint}); a rebuild "
            "needs the same spine: keep spines in Delta to rebuild from any version"
        )
    plans = plan_tables(spine.columns, request.feature_tables, request.features)
    inputs: dict[str, dict[str, Any]] = {}
    frames: dict[str, DataFrame] = {}
    for plan in plans:
        current, history = FEATURE_SOURCES[plan.table]
        table = history if request.options.mode == "as_known" else current
        path = table.path(root)
        if request.input_versions is not None:
            version = request.input_versions[table.name]
        else:
            # As of the features' last finished publish: never half of one.
            version = consistent_version(spark, root, table)
            if version < 0:
                raise UserError(
                    f"feature table {table.name} does not exist at {path}: build it first"
                )
        frames[plan.table] = spark.read.format("delta").option("versionAsOf", version).load(path)
        inputs[table.name] = {"path": path, "delta_version": version}
    training = build_training_frame(spine, frames, plans, request.options, bounds)
    run_key = _run_key(request)
    output = training_table(request.name, training.schema)
    stage_outputs(spark, root, run_key, {output: training})
    draft = {
        "format_version": manifests.FORMAT_VERSION,
        "name": request.name,
        "logical_time": _logical_time(request, bounds),
        "spine": {**asdict(request.spine), "fingerprint": fingerprint},
        "parameters": {
            "options": asdict(request.options),
            "strategy_used": pit.choose_strategy(request.options, bounds),
            "feature_tables": list(request.feature_tables),
            "features": list(request.features) if request.features else None,
            "start": str(request.start) if request.start else None,
            "end": str(request.end) if request.end else None,
        },
        "columns": {p.table: dict(zip(p.features, p.output_names, strict=True)) for p in plans},
        "metadata_prefixes": [p.metadata_prefix for p in plans],
        "inputs": inputs,
        "row_counts": {"spine": bounds.rows},
        "rebuilt_from": request.rebuilt_from,
    }
    manifests.write_manifest(spark, _draft_path(root, output, run_key), draft)
    return draft


def _draft_path(root: str, output: Table, run_key: str) -> str:
    return join_path(staging_path(root, output, run_key), manifests.MANIFEST_FILE)


def publish(spark: SparkSession, root: str, request: Request) -> dict[str, Any]:
    """Check, gate and publish the staged training set; returns its final manifest."""
    run_key = _run_key(request)
    placeholder = training_table(request.name, StructType())
    staged = read_staged(spark, root, placeholder, run_key)
    draft = manifests.read_manifest(spark, _draft_path(root, placeholder, run_key))
    options = pit.PitOptions(**draft["parameters"]["options"])
    spine_rows = draft["row_counts"]["spine"]
    problems = training_problems(staged, options, draft["metadata_prefixes"], spine_rows)
    if problems:
        raise GateFailed(f"training set {request.name}: " + "; ".join(problems))
    output = training_table(request.name, staged.schema)
    result = audit_and_publish(
        spark,
        root,
        TRAINING_SET_SUITE,
        run_key,
        [Output(output, _replace_whole_table)],
        {"stage": TRAINING_SET_SUITE, "name": request.name},
    )
    published = spark.read.format("delta").load(training_path(root, request.name))
    matched_column = draft["metadata_prefixes"][0] + pit.FEATURE_TS
    final = {
        **draft,
        "output": {
            "path": training_path(root, request.name),
            "delta_version": result.versions[output.name],
        },
        "row_counts": {
            "spine": spine_rows,
            "output": spine_rows,
            "matched": published.where(F.col(matched_column).isNotNull()).count(),
        },
    }
    manifests.write_manifest(spark, manifests.manifest_path(root, request.name), final)
    log.info("published training set %s (%s rows)", request.name, spine_rows)
    return final


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, build and/or publish the training set; 0 on success."""
    args = build_parser().parse_args(argv)
    root = resolve_root(args.root)
    if args.start and args.end:
        DateRange(args.start, args.end)
    spark = build_spark(app_name="build_training_set")
    if args.rebuild_from:
        request = _request_from_manifest(spark, root, args)
    else:
        request = _request_from_args(spark, args)
    request = dataclasses.replace(request, run=run_token(args.run_id, args.step))
    with writer_lock(root, f"build_training_set {request.name}"):
        if args.step in ("all", "build"):
            build(spark, root, request)
        if args.step in ("all", "publish"):
            publish(spark, root, request)
    return 0


if __name__ == "__main__":
    run_cli(main)
