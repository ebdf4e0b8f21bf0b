"""Puts the landing files in place: Spark renders every line, the storage layer moves them.

Spark writes the lines once, one file per partition, under a scratch folder of the
landing folder (``_generating_<start>_<end>``, ignored by readers as its name starts with
``_``). Each file then moves into its day's folder under its final name through
spark_jobs.storage.files, which works on local folders and ``s3a://`` alike. Spark's
``.crc`` side files and ``_SUCCESS`` marker stay in the scratch folder, which is removed
at the end, so the landing folder holds only the data files.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession

from devtools.sample_data.plan import DayPlan, file_groups
from spark_jobs.catalog import join_path, landing_day_path, landing_path
from spark_jobs.storage import files as storage

# The record expression fuses into one Java method far above HotSpot's 8000-byte limit
# for JIT compilation, and the JVM would interpret it; with this limit Spark compiles the
# steps separately instead, which runs faster.
_JIT_FRIENDLY_CODEGEN = {"spark.sql.codegen.hugeMethodLimit": "8000"}


def scratch_path(root: str, start: dt.date, end: dt.date) -> str:
    """The folder a run renders its files into before they move into place."""
    return join_path(landing_path(root), f"_generating_{start}_{end}")


def suffix(compress: bool) -> str:
    """The file name ending of a landing file."""
    return ".jsonl.gz" if compress else ".jsonl"


def render(
    spark: SparkSession,
    lines: DataFrame,
    plans: Sequence[DayPlan],
    scratch: str,
    compress: bool,
) -> dict[tuple[int, int], str]:
    """Write the ``value`` lines under scratch, one file per partition; where each landed.

    The result maps (day index, file number) to the rendered file's path; partition i of
    ``lines`` is file_groups(plans)[i].
    """
    with _session_conf(spark, _JIT_FRIENDLY_CODEGEN):
        (
            lines.write.mode("overwrite")
            .option("compression", "gzip" if compress else "none")
            .option("maxRecordsPerFile", 0)
            .text(scratch)
        )
    groups = file_groups(plans)
    written = {}
    for entry in storage.children(scratch):
        name = entry.path.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith("part-"):
            group = groups[int(name[5:10])]
            written[(group.plan.index, group.number)] = join_path(scratch, name)
    return written


def replace_day(
    root: str,
    day: dt.date,
    plan: DayPlan | None,
    written: dict[tuple[int, int], str],
    compress: bool,
    empty_file: bool,
) -> int:
    """Replace the day's folder with its rendered files (none without a plan); files moved.

    With ``empty_file`` the day also gets a zero-line file after its data files.
    """
    folder = landing_day_path(root, day)
    storage.delete_tree(folder)
    if plan is None:
        return 0
    storage.make_folder(folder)
    ending = suffix(compress)
    sources = [
        (number, written[(plan.index, number)])
        for number in range(plan.files)
        if (plan.index, number) in written
    ]
    for number, source in sources:
        storage.move(source, join_path(folder, f"part-{number:05d}{ending}"))
    if empty_file:
        # Zero lines; gzipped, still a valid (empty) gzip stream.
        empty = gzip.compress(b"", mtime=0) if compress else b""
        storage.write_bytes_atomic(join_path(folder, f"part-{plan.files:05d}{ending}"), empty)
    return len(sources)


def remove_scratch(scratch: str) -> None:
    """Remove the scratch folder and what Spark left in it (markers, checksums)."""
    storage.delete_tree(scratch)


@contextmanager
def _session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Set SQL settings for a block, then restore what the caller had."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, before in previous.items():
            if before is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, before)
