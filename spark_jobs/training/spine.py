"""A training-set spine: reading it in any supported format, and checking it.

A spine is one row per training example, at least ``user_id``, ``ts`` and ``label``. It
may be a Delta table, Parquet (pandas' nanosecond and Spark's INT96 timestamps included)
or CSV with a header line. ``checked_spine`` reads it, refuses unusable columns and rows
with one-line UserErrors that name the first offending rows, numbers the rows
(``spine_row_id``) and parses ``ts`` to a timestamp. The rules are in
docs/TRAINING_SETS.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
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

from spark_jobs.cli import UserError
from spark_jobs.storage import delta
from spark_jobs.storage import files as storage
from spark_jobs.transforms import pit

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


@dataclass(frozen=True)
class SpineSource:
    """Where a spine was read from; ``delta_version`` pins a Delta spine."""

    path: str
    format: str
    delta_version: int | None = None


def detect_spine_format(spark: SparkSession, path: str, requested: str) -> str:
    """The spine's format: the requested one, else Delta if it has a log, else by file names.

    Refuses (UserError) a path with nothing in it, ``delta`` asked of a folder without a
    Delta log, and in ``auto`` mode anything that is not all Parquet or all CSV (a JSON
    or Excel file, a folder of mixed files), saying what to write instead.
    """
    top = storage.children(path)
    if not top:
        raise UserError(
            f"spine {path} does not exist or is an empty folder: give a Delta table, a "
            "Parquet or CSV file, or a folder of them"
        )
    if requested == "delta" and not delta.is_delta(spark, path):
        raise UserError(
            f"spine {path} is not a Delta table (it has no _delta_log): give "
            "--spine-format auto, parquet or csv"
        )
    if requested != "auto":
        return requested
    if delta.is_delta(spark, path):
        return "delta"
    kinds = sorted({_file_kind(f) for f in _data_files(path, top)})
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


def _data_files(path: str, top: Sequence[storage.Entry] | None = None) -> list[str]:
    """The data files of a spine path (itself, or every file under the folder), sorted.

    Names starting with ``_`` or ``.`` (``_SUCCESS``, ``.crc``, ``_delta_log``) are
    bookkeeping that Spark's readers skip too.
    """
    top = storage.children(path) if top is None else top
    if _is_the_file(top, path):
        return [top[0].path]
    files = []
    pending = list(top)
    while pending:
        entry = pending.pop()
        if _name(entry.path).startswith(("_", ".")):
            continue
        if entry.is_dir:
            pending += storage.children(entry.path)
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
        raise UserError(unreadable(source, exc)) from None


def _read_parquet(spark: SparkSession, path: str) -> DataFrame:
    nanos = _nanosecond_columns(spark, path)
    if not nanos:
        return spark.read.parquet(path)
    # Spark infers nanosecond timestamps only as longs, and only under this legacy flag.
    # The flag matters to inference alone: the scan below has an explicit schema, so it
    # reads the longs whatever the flag says when the spine is read again later.
    previous = spark.conf.get(PARQUET_NANOS_AS_LONG, "false") or "false"
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
    files = _data_files(path)
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
        content = spark.read.format("binaryFile").load(uri).select("content").take(1)[0]
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


def unreadable(source: SpineSource, exc: Exception) -> str:
    """The one-line error for a spine that Spark or pyarrow failed to read (``UNREADABLE``)."""
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
        raise UserError(unreadable(source, exc)) from None
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
