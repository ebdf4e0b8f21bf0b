"""Write-audit-publish: stage a stage's output, validate it, then commit it atomically.

A job declares its outputs (which table, how its staged rows are committed). The build
step writes each output's rows to ``<root>/_staging/...``; the publish step reads them
back, runs the table's Great Expectations gate on them, and only if every gate passes
commits them to the real tables. A failing gate commits nothing: every real table keeps
its version, the report stays, and ``GateFailed`` carries a readable summary.

Airflow's purchase DAGs run both steps in one task (``--step all``: the staged rows are
validated where they were built, one process start); ``--step build`` and ``--step
publish`` run them apart, as the training-set DAGs' two tasks do.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession

from spark_jobs.catalog import Table, join_path, publishing_root, staging_path
from spark_jobs.cli import GateFailed, UserError
from spark_jobs.names import child_path
from spark_jobs.ops import metrics
from spark_jobs.storage import delta
from spark_jobs.storage import files as storage

if TYPE_CHECKING:
    from spark_jobs.quality.results import GateResult

log = logging.getLogger(__name__)

FAULT_POINT_ENV = "LAKEHOUSE_FAULT_POINT"
# Beside a build's staged rows: the Delta versions of the tables it read.
INPUTS_FILE = "_inputs.json"

Publisher = Callable[[SparkSession, DataFrame, str], None]


@dataclass(frozen=True)
class Output:
    """One table a stage writes, and how its staged rows are committed."""

    table: Table
    publish: Publisher
    gated: bool = True


@dataclass
class StageResult:
    """What a stage published (or would have): versions, row counts, gate results."""

    stage: str
    run_key: str
    published: bool = False
    row_counts: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    gate_results: dict[str, GateResult] = field(default_factory=dict)


def fault_point(name: str) -> None:
    """Die here as SIGKILL would when ``LAKEHOUSE_FAULT_POINT`` names this point.

    For crash tests only: they kill a real job at a known step, rerun it, and compare
    the tables. Points: ``staged:<table>``, ``gated:<stage>``, ``published:<table>``
    (between the commits of a multi-table publish), ``accounting`` (silver's check).
    """
    if os.environ.get(FAULT_POINT_ENV) == name:
        log.warning("fault point %s: killing this process", name)
        os.kill(os.getpid(), signal.SIGKILL)


def prepare_gates(step: str) -> None:
    """Before a run whose step gates (``all``, ``publish``): import GX in the background."""
    if step in ("all", "publish"):
        from spark_jobs.quality import gx_runner

        gx_runner.preload()


def stage_outputs(
    spark: SparkSession,
    root: str,
    run_key: str,
    frames: Mapping[Table, DataFrame],
) -> None:
    """Write each frame to its staging location, replacing what a previous try left."""
    for table, frame in frames.items():
        path = staging_path(root, table, run_key)
        log.info("staging %s -> %s", table.name, path)
        (
            frame.select([f.name for f in table.schema.fields])
            .write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .save(path)
        )
        fault_point(f"staged:{table.name}")
    metrics.mark_built()


def read_staged(spark: SparkSession, root: str, table: Table, run_key: str) -> DataFrame:
    """The staged rows of one output; a clear error when the build step never ran."""
    path = staging_path(root, table, run_key)
    staged = delta.read_if_exists(spark, path)
    if staged is None:
        raise UserError(
            f"no staged output for {table.name} at {path}: run the build step "
            "(--step build) for the same dates first"
        )
    return staged


def audit_and_publish(
    spark: SparkSession,
    root: str,
    stage: str,
    run_key: str,
    outputs: Sequence[Output],
    gate_params: Mapping[str, object],
) -> StageResult:
    """Validate every staged output, then publish all of them; publish none if any fails.

    ``gate_params`` carries the run's ``start`` and ``end`` dates (the suites' date checks
    use them) and may override any ``gates.GateSettings`` threshold. Every gate runs even
    after one fails, so a single GateFailed names every problem of the stage and every
    table has its report. Warn-level misses are logged and reported, never blocking.
    """
    from spark_jobs.quality import gates

    result = StageResult(stage=stage, run_key=run_key)
    staged = {o.table: read_staged(spark, root, o.table, run_key) for o in outputs}
    failures = []
    with metrics.phase("gate"):
        for output in outputs:
            if not output.gated:
                continue
            gate = gates.validate_table(
                spark,
                root,
                output.table,
                staged[output.table],
                dict(gate_params),
                run_key,
                index_when_passed=False,
            )
            result.gate_results[output.table.name] = gate
            if not gate.passed:
                failures.append(gate)
    metrics.gated(result.gate_results.values())
    if failures:
        raise GateFailed(
            f"stage {stage} ({run_key}) published nothing:\n"
            + "\n".join(g.summary() for g in failures)
        )
    fault_point(f"gated:{stage}")
    with metrics.phase("publish"):
        begin_publish(spark, root, stage, run_key, [o.table for o in outputs])
        for output in outputs:
            path = output.table.path(root)
            # A staging write replaces its whole table: its commit counted the staged rows.
            result.row_counts[output.table.name] = delta.row_count(
                spark, staging_path(root, output.table, run_key)
            )
            output.publish(spark, staged[output.table], path)
            result.versions[output.table.name] = latest_version(spark, path)
            log.info(
                "published %s version %s", output.table.name, result.versions[output.table.name]
            )
            fault_point(f"published:{output.table.name}")
        end_publish(spark, root, stage, run_key)
    result.published = True
    observe(spark, root, outputs, staged, result)
    for gate in result.gate_results.values():
        gates.index_validation(spark, root, gate)
    remove_staged(spark, root, [o.table for o in outputs], run_key)
    return result


def observe(
    spark: SparkSession,
    root: str,
    outputs: Sequence[Output],
    staged: Mapping[Table, DataFrame],
    result: StageResult,
) -> None:
    """Tell the run metrics what was published, while the staged rows are still there."""
    if metrics.current() is None:
        return
    main = next(
        (o.table for o in outputs if o.gated and o.table.quarantine_of is None), outputs[0].table
    )
    try:
        metrics.published(root, main, result.row_counts, result.versions)
        metrics.observe_output(spark, staged[main])
        for output in outputs:
            if output.table.quarantine_of is not None:
                metrics.observe_quarantine(staged[output.table])
    except Exception as exc:
        log.warning("ops metrics: could not record the publish: %s", exc)


def publish_intent_path(root: str, stage: str, run_key: str) -> str:
    """Where a stage's publish records the versions its tables had before it began.

    One file per stage and date range (the run part of the key left out): a rerun of
    the same dates by any run, Airflow retry or manual, finishes the same publish.
    """
    dates = run_key.split("__", 1)[0]
    return child_path(publishing_root(root), f"{stage}__{dates}", "publish intent") + ".json"


def begin_publish(
    spark: SparkSession, root: str, stage: str, run_key: str, tables: Sequence[Table]
) -> None:
    """Record the last consistent version of each table before a multi-table publish.

    Until ``end_publish``, readers (``read_consistent``) see those versions, so no one
    reads a stage whose commits are half done. A publish that was cut short left its
    intent: it is kept, because the tables have moved on since those versions were taken.
    """
    path = publish_intent_path(root, stage, run_key)
    if storage.read_text(path) is not None:
        log.warning("finishing the publish of stage %s that %s began before", stage, path)
        return
    versions = {table.name: latest_version(spark, table.path(root)) for table in tables}
    intent = {"stage": stage, "run_key": run_key, "versions": versions}
    storage.write_text_atomic(path, json.dumps(intent, sort_keys=True))


def end_publish(spark: SparkSession, root: str, stage: str, run_key: str) -> None:
    """Every table of the stage is committed: readers see the new versions."""
    storage.delete_tree(publish_intent_path(root, stage, run_key))


def unfinished_publishes(spark: SparkSession, root: str) -> list[dict]:
    """The intents of publishes in progress or cut short by a kill (oldest first)."""
    intents = []
    for entry in storage.children(publishing_root(root)):
        if entry.is_dir or not entry.path.endswith(".json"):
            continue
        text = storage.read_text(entry.path)
        if text is None:  # finished between the listing and the read
            continue
        try:
            intent = json.loads(text)
        except ValueError:
            log.warning("ignoring unreadable publish intent %s", entry.path)
            continue
        intents.append({**intent, "path": entry.path})
    return intents


@dataclass(frozen=True)
class UnfinishedPublish:
    """A table's version from before a publish that has not finished, and which publish."""

    version: int
    stage: str
    dates: str  # "2026-03-02..2026-03-02"

    def describe(self) -> str:
        return f"the publish of stage {self.stage} for landing dates {self.dates}"


def unfinished_tables(spark: SparkSession, root: str) -> dict[str, UnfinishedPublish]:
    """Tables with an unfinished publish, each with the version from before it.

    With several unfinished publishes of one table, the earliest version wins: the
    newest version every one of them left intact.
    """
    pinned: dict[str, UnfinishedPublish] = {}
    for intent in unfinished_publishes(spark, root):
        start, _, end = intent["run_key"].split("__", 1)[0].partition("_")
        for name, version in intent["versions"].items():
            if name not in pinned or version < pinned[name].version:
                pinned[name] = UnfinishedPublish(int(version), intent["stage"], f"{start}..{end}")
    return pinned


def consistent_version(spark: SparkSession, root: str, table: Table) -> int:
    """The version of a table as of its last finished publish (-1: none yet).

    Normally the newest version. While a stage publishes, or after a kill cut its
    publish short, the version from before that publish: a reader never combines
    tables of which some hold a publish and others do not.
    """
    unfinished = unfinished_tables(spark, root).get(table.name)
    if unfinished is None:
        return latest_version(spark, table.path(root))
    log.warning(
        "%s: %s has not finished; reading version %s, from before it",
        table.name,
        unfinished.describe(),
        unfinished.version,
    )
    return unfinished.version


def read_consistent(spark: SparkSession, root: str, table: Table) -> DataFrame | None:
    """A table as of its last finished publish (``consistent_version``); None if none."""
    version = consistent_version(spark, root, table)
    if version < 0:
        return None
    return delta.read_version(spark, table.path(root), version)


def require_finished(spark: SparkSession, root: str, tables: Sequence[Table]) -> None:
    """Refuse to build on a table whose last publish was cut short (UserError).

    A writer never builds on a stage of which some tables hold a publish and others do
    not; rerunning the stage for the dates named finishes that publish.
    """
    unfinished = unfinished_tables(spark, root)
    for table in tables:
        if table.name in unfinished:
            pin = unfinished[table.name]
            raise UserError(
                f"{table.name}: {pin.describe()} did not finish (a run killed while "
                f"committing?): run that stage again for {pin.dates}, then this one"
            )


def remove_staged(spark: SparkSession, root: str, tables: Sequence[Table], run_key: str) -> None:
    """Delete a run's staged rows once they are published: staging must not grow per run.

    A run that died before publishing leaves its staging; maintenance removes it later.
    """
    for table in tables:
        if storage.delete_tree(staging_path(root, table, run_key)):
            log.info("removed staged %s of run %s", table.name, run_key)


def input_versions(spark: SparkSession, root: str, tables: Sequence[Table]) -> dict[str, int]:
    """The Delta version of each table a build step reads (-1: not there yet).

    Taken before the build reads them: a commit that slips in between only makes the
    publish step build again, never publish rows built on an older state.
    """
    return {table.name: latest_version(spark, table.path(root)) for table in tables}


def record_inputs(
    spark: SparkSession, root: str, run_key: str, anchor: Table, versions: Mapping[str, int]
) -> None:
    """Keep the input versions of a build beside its staged ``anchor`` output."""
    metrics.note(input_versions=dict(versions))
    path = join_path(staging_path(root, anchor, run_key), INPUTS_FILE)
    storage.write_text_atomic(path, json.dumps(dict(versions), sort_keys=True))


def changed_inputs(
    spark: SparkSession, root: str, run_key: str, anchor: Table, tables: Sequence[Table]
) -> list[str]:
    """Inputs committed to since the build step staged ``anchor`` ([] when none).

    Another writer (a rebuild beside the daily run, a backfill) may have published
    between this run's build and publish steps; its rows were not seen by the build.
    """
    text = storage.read_text(join_path(staging_path(root, anchor, run_key), INPUTS_FILE))
    if text is None:
        return []
    recorded = json.loads(text)
    current = input_versions(spark, root, tables)
    return [
        f"{name} v{recorded.get(name)} -> v{version}"
        for name, version in current.items()
        if recorded.get(name) != version
    ]


def latest_version(spark: SparkSession, path: str) -> int:
    """The newest Delta version of the table at ``path`` (-1 when it does not exist)."""
    version = delta.latest_version(spark, path)
    return -1 if version is None else version


def replace_where(predicate: str, table: Table) -> Publisher:
    """A publisher that atomically replaces the rows matching ``predicate``.

    The first publish creates the table with its partitioning.
    """

    def publish(spark: SparkSession, staged: DataFrame, path: str) -> None:
        writer = (
            staged.select([f.name for f in table.schema.fields])
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", predicate)
        )
        if table.partition_by:
            writer = writer.partitionBy(*table.partition_by)
        writer.save(path)

    return publish


def read_table(spark: SparkSession, root: str, table: Table, produced_by: str) -> DataFrame:
    """A published table, or a clear error naming the job that produces it.

    Refused while the table's stage has an unfinished publish (``wap.require_finished``).
    """
    path = table.path(root)
    require_finished(spark, root, [table])
    published = delta.read_if_exists(spark, path)
    if published is None:
        raise UserError(
            f"{table.name} not found at {path}: run {produced_by} for these dates first"
        )
    return published
