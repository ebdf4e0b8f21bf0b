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

This module is the entry point: it turns the arguments (or a manifest) into a request,
then builds, stages, gates and publishes. Reading and checking the spine is
``spark_jobs.training.spine``, planning and joining ``spark_jobs.training.plan``, the
manifest ``spark_jobs.training.manifest``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from spark_jobs import names
from spark_jobs.catalog import (
    GOLD_USER_FEATURES,
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
from spark_jobs.quality.suites import TRAINING_SET_SUITE  # one suite gates every training set
from spark_jobs.quality.wap import (
    Output,
    audit_and_publish,
    latest_version,
    prepare_gates,
    read_staged,
    stage_outputs,
)
from spark_jobs.session import build_spark
from spark_jobs.storage.locking import writer_lock
from spark_jobs.training import manifest as manifests
from spark_jobs.training.plan import (
    FEATURE_SOURCES,
    Request,
    build_training_frame,
    measure_spine,
    plan_tables,
    read_features,
    restrict_to_dates,
    training_problems,
)
from spark_jobs.training.spine import (
    SPINE_FORMATS,
    UNREADABLE,
    SpineSource,
    checked_spine,
    detect_spine_format,
    unreadable,
)
from spark_jobs.transforms import pit

log = logging.getLogger(__name__)

REBUILD_SUFFIX = "_rebuilt"


def build_parser() -> argparse.ArgumentParser:
    """The job's argument parser: the common options plus the training-set ones."""
    parser = job_parser(
        "build_training_set",
        "Join a spine of (user_id, ts, label) rows to the feature snapshots each row could "
        "have seen at its ts, check it for leakage, publish it with a manifest.",
        # --start/--end only bound the spine's ts range here, so they are optional.
        start_help="optional: keep spine rows whose ts falls on or after this UTC date",
        end_help="optional: keep spine rows whose ts falls on or before this UTC date",
        steps="build: join and stage with a draft manifest; publish: gate and publish the "
        "staged set; all: both",
    )
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


# ---------------------------------------------------------------- build and publish


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
    # The manifest is a file anyone with write access to the root may have edited: the
    # output name taken from it passes the same rule as --name.
    name = args.name or names.validate_name(
        f"{recorded['name']}{REBUILD_SUFFIX}", f"output name derived from {path}"
    )
    return manifests.recorded_request(recorded, path, name)


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
        raise UserError(unreadable(request.spine, exc)) from None
    if request.spine_fingerprint is not None and fingerprint != request.spine_fingerprint:
        raise UserError(
            f"spine {request.spine.path} changed since the manifest was written "
            f"(fingerprint {fingerprint}, recorded {request.spine_fingerprint}); a rebuild "
            "needs the same spine: keep spines in Delta to rebuild from any version"
        )
    plans = plan_tables(spine.columns, request.feature_tables, request.features)
    frames, inputs = read_features(spark, root, plans, request)
    training = build_training_frame(spine, frames, plans, request.options, bounds)
    run_key = _run_key(request)
    output = training_table(request.name, training.schema)
    stage_outputs(spark, root, run_key, {output: training})
    draft = manifests.draft_manifest(request, bounds, fingerprint, plans, inputs)
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
    options = manifests.recorded_options(draft)
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
        {"name": request.name},
    )
    path = training_path(root, request.name)
    published = spark.read.format("delta").load(path)
    final = manifests.final_manifest(draft, path, result.versions[output.name], published)
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
    prepare_gates(args.step)
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
