"""What a training set is made of, and how it is joined and checked.

A ``Request`` (from the CLI or a manifest) names the spine, the point-in-time options
and the feature tables. ``plan_tables`` decides which features each table gives and
under which output names; ``read_features`` picks the table versions to read;
``build_training_frame`` joins the spine to them with ``spark_jobs.transforms.pit``;
``training_problems`` says why a built set must not be published (row counts, leakage).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.catalog import GOLD_USER_FEATURES, GOLD_USER_FEATURES_HISTORY, Table
from spark_jobs.cli import UserError
from spark_jobs.quality.wap import consistent_version
from spark_jobs.storage import delta
from spark_jobs.training.spine import SpineSource
from spark_jobs.transforms import pit

# A feature table and the history of all its versions (the as_known source).
FEATURE_SOURCES: dict[str, tuple[Table, Table]] = {
    GOLD_USER_FEATURES.name: (GOLD_USER_FEATURES, GOLD_USER_FEATURES_HISTORY),
}


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
    ).collect()[0]  # an aggregate without groups: exactly one row
    bounds = pit.SpineBounds.from_micros(found["rows"], found["min_ts"], found["max_ts"])
    return bounds, f"{found['rows']}:{found['fingerprint'] or 0}"


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


def read_features(
    spark: SparkSession, root: str, plans: Sequence[TablePlan], request: Request
) -> tuple[dict[str, DataFrame], dict[str, dict[str, Any]]]:
    """Each planned table's features as the build reads them, and the inputs to record.

    The as_known mode reads a table's history of versions, event_time its latest
    versions. A rebuild reads the Delta versions its manifest recorded; a build, the
    version of the table's last finished publish.
    """
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
        frames[plan.table] = delta.read_version(spark, path, version)
        inputs[table.name] = {"path": path, "delta_version": version}
    return frames, inputs


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
    ).collect()[0]
    problems = []
    if found["rows"] != spine_rows or found["ids"] != spine_rows:
        problems.append(
            f"row count: {found['rows']} rows with {found['ids']} distinct spine_row_id, "
            f"expected exactly one per spine row ({spine_rows})"
        )
    leaks = pit.leakage_violations(training, options, prefixes)
    leak_count = leaks.count()
    if leak_count:
        example = leaks.orderBy(pit.ROW_ID).take(1)[0]
        columns = [pit.ROW_ID, pit.SPINE_KEY, pit.SPINE_TS] + [
            p + c for p in prefixes for c in (pit.FEATURE_TS, pit.AVAILABLE_AT)
        ]
        detail = ", ".join(f"{c}={example[c]}" for c in columns)
        problems.append(
            f"leakage: {leak_count} row(s) saw a snapshot not usable at their ts, e.g. {detail}"
        )
    return problems
