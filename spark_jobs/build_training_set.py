"""Build a point-in-time correct training set: a spine of (user_id, ts, label) rows joined
to the feature snapshots each row could have seen at its ts.

    python -m spark_jobs.build_training_set --root R --spine spine.parquet --name churn_v1 \
        [--mode event_time|as_known] [--ttl-days N] [--features f1,f2] [--strict] \
        [--availability-delay-hours H] [--step all|build|publish]
    python -m spark_jobs.build_training_set --root R --rebuild-from churn_v1 [--name copy]

The output, ``<root>/training/<name>``, has exactly one row per spine row (``spine_row_id``
numbers them in the spine's order), the spine's columns, the selected features,
``feature_ts``, ``available_at`` and ``feature_age`` (seconds). A manifest beside it
records every input's Delta version; ``--rebuild-from`` reads them again by time travel.
The rules, TTL and time-zone policy are spelled out in docs/TRAINING_SETS.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import dataclasses
import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from spark_jobs import manifest as manifests
from spark_jobs import names, pit
from spark_jobs.cli import (
    DateRange,
    GateFailed,
    UserError,
    job_parser,
    resolve_root,
    run_cli,
    run_token,
)
from spark_jobs.locking import writer_lock
from spark_jobs.session import build_spark
from spark_jobs.tables import (
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    Table,
    join_path,
    staging_path,
    training_path,
)
from spark_jobs.wap import (
    STEPS,
    Output,
    audit_and_publish,
    latest_version,
    read_staged,
    stage_outputs,
)

log = logging.getLogger(__name__)

# A feature table and the history of all its versions (the as_known source).
FEATURE_SOURCES: dict[str, tuple[Table, Table]] = {
    GOLD_USER_FEATURES.name: (GOLD_USER_FEATURES, GOLD_USER_FEATURES_HISTORY),
}
SPINE_FORMATS = ("auto", "delta", "parquet", "csv")
REQUIRED_SPINE_COLUMNS = (pit.SPINE_KEY, pit.SPINE_TS, "label")
RESERVED_COLUMNS = (pit.ROW_ID, *pit.METADATA_COLUMNS)
UTC_DESIGNATORS = ("Z", "+00:00")
ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$"
ZONE_DESIGNATOR = r"(Z|[+-]\d{2}:\d{2})$"
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
    """The spine's format: the requested one, else Delta if it has a log, CSV by suffix."""
    if "://" not in path and not os.path.exists(path):
        raise UserError(f"spine {path} does not exist: give a Delta table, Parquet or CSV path")
    if requested != "auto":
        return requested
    if DeltaTable.isDeltaTable(spark, path):
        return "delta"
    lowered = path.lower().rstrip("/")
    if lowered.endswith((".csv", ".csv.gz")):
        return "csv"
    if os.path.isdir(path) and any(
        n.lower().endswith((".csv", ".csv.gz")) for n in os.listdir(path)
    ):
        return "csv"
    return "parquet"


def read_spine(spark: SparkSession, source: SpineSource) -> DataFrame:
    """The spine as stored; CSV columns are all strings (a header, no type inference)."""
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
    return spark.read.parquet(source.path)


def spine_schema_problem(schema: StructType) -> str | None:
    """Why a spine's columns cannot be used, or None when they can."""
    names = schema.fieldNames()
    missing = [c for c in REQUIRED_SPINE_COLUMNS if c not in names]
    if missing:
        return (
            f"spine has no column {', '.join(missing)} (found: {', '.join(names)}); "
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
            "spine column ts is TIMESTAMP_NTZ (no time zone): write it as a TIMESTAMP "
            "(a UTC instant) instead"
        )
    if not isinstance(ts_type, TimestampType | StringType):
        return (
            f"spine column ts is {ts_type.simpleString()}: it must be a TIMESTAMP or an "
            "ISO-8601 string ending in Z or +00:00"
        )
    return None


def typed_spine(spine: DataFrame) -> DataFrame:
    """The spine with ``ts`` as a timestamp: UTC strings parsed, instants kept as they are.

    Strings must already have passed ``spine_value_problem``.
    """
    if isinstance(spine.schema[pit.SPINE_TS].dataType, TimestampType):
        return spine
    return spine.withColumn(pit.SPINE_TS, F.col(pit.SPINE_TS).try_cast("timestamp"))


def spine_value_problem(spine: DataFrame) -> str | None:
    """Why a spine's values cannot be used (null keys, naive or non-UTC ts), or None.

    Runs one aggregation over the spine.
    """
    ts = F.col(pit.SPINE_TS)
    is_string = isinstance(spine.schema[pit.SPINE_TS].dataType, StringType)
    checks = [
        F.count(F.when(ts.isNull(), 1)).alias("null_ts"),
        F.count(F.when(F.col(pit.SPINE_KEY).isNull(), 1)).alias("null_users"),
    ]
    if is_string:
        zone = F.regexp_extract(ts, ZONE_DESIGNATOR, 1)
        malformed = ts.isNotNull() & ~ts.rlike(ISO_INSTANT)
        naive = ts.isNotNull() & ~malformed & (zone == "")
        checks += [
            F.count(F.when(malformed, 1)).alias("malformed"),
            F.min(F.when(malformed, ts)).alias("malformed_example"),
            F.count(F.when(naive, 1)).alias("naive"),
            F.min(F.when(naive, ts)).alias("naive_example"),
            F.sort_array(F.collect_set(F.when(zone != "", zone))).alias("zones"),
        ]
    found = spine.agg(*checks).first()
    if found["null_ts"]:
        return f"{found['null_ts']} spine row(s) have no ts: every row needs a UTC instant"
    if found["null_users"]:
        return f"{found['null_users']} spine row(s) have no user_id: every row needs one"
    if not is_string:
        return None
    if found["malformed"]:
        return (
            f"spine ts {found['malformed_example']!r} is not an ISO-8601 instant "
            f"({found['malformed']} such row(s)); write e.g. 2026-03-01T14:22:05Z"
        )
    if found["naive"]:
        return (
            f"spine ts {found['naive_example']!r} has no time zone ({found['naive']} such "
            "row(s)); write UTC instants ending in Z or +00:00"
        )
    zones = list(found["zones"])
    foreign = [z for z in zones if z not in UTC_DESIGNATORS]
    if foreign and len(zones) > 1:
        return (
            f"spine ts mixes time zones ({', '.join(zones)}): convert every ts to UTC "
            "and write it ending in Z or +00:00"
        )
    if foreign:
        return (
            f"spine ts uses offset {foreign[0]}: convert every ts to UTC and write it "
            "ending in Z or +00:00"
        )
    return None


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
    raw = read_spine(spark, request.spine)
    problem = spine_schema_problem(raw.schema)
    if problem is None:
        problem = spine_value_problem(raw)
    if problem:
        raise UserError(f"{request.spine.path}: {problem}")
    spine = restrict_to_dates(with_row_ids(typed_spine(raw)), request.start, request.end)
    bounds, fingerprint = measure_spine(spine)
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
            version = latest_version(spark, path)
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
