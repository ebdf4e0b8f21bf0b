"""The one module of builders the tests share: landing lines and files, silver rows,
feature snapshots, whole-pipeline runs and table snapshots.

Test modules import builders from here, never from each other. Every job run here is
real (build, Great Expectations gate, publish) unless its name says it skips the gate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import (
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
)

from spark_jobs.catalog import (
    ALL_TABLES,
    GOLD_USER_FEATURES_SCHEMA,
    SILVER_CHANGES,
    SILVER_CHANGES_SCHEMA,
    SILVER_PURCHASES,
    SILVER_PURCHASES_SCHEMA,
    landing_day_path,
)
from spark_jobs.cli import DateRange, run_cli
from spark_jobs.config import PROJECT_ROOT
from spark_jobs.jobs import build_features, build_gold, build_silver, ingest_bronze
from spark_jobs.quality import wap

UTC = dt.UTC
DAY0 = dt.date(2026, 3, 1)  # the first as_of_date of the point-in-time cases
D = dt.date.fromisoformat

STAGES = (ingest_bronze, build_silver, build_gold, build_features)


def run_stage(job, root: str, start: dt.date, end: dt.date | None = None) -> None:
    """One job through its command line: build, gate and publish; it must exit 0."""
    argv = ["--root", root, "--start", str(start), "--end", str(end or start)]
    assert job.main(argv) == 0, f"{job.__name__} {start}..{end or start}"


def run_day(root: str, day: dt.date, stages=STAGES) -> None:
    """Every stage of one landing date, in pipeline order (what purchases_daily runs)."""
    for job in stages:
        run_stage(job, root, day)


def run_range(root: str, start: dt.date, end: dt.date) -> None:
    """Every stage over ``start..end`` as one run each, in pipeline order (a rebuild).

    By convergence these are the tables of the same days run one at a time, in order;
    the reference side of a comparison uses it for its four runs instead of four a day.
    """
    for job in STAGES:
        run_stage(job, root, start, end)


def land(root: str, day: dt.date, records: list[dict]) -> None:
    """Land ``records`` as the one file of a landing date."""
    folder = Path(landing_day_path(root, day))
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    (folder / "part-00000.jsonl").write_text(lines)


def purchase(event_id: str, user_id: str, event_time: str, quantity: int = 1) -> dict:
    """A sound USD purchase line of the landing contract."""
    return {
        "event_id": event_id,
        "order_id": f"o-{event_id}",
        "user_id": user_id,
        "event_type": "purchase",
        "event_time": event_time,
        "sku": "S1",
        "category": "books",
        "quantity": quantity,
        "unit_price": "10.00",
        "currency": "USD",
    }


def published_rows(spark, root: str) -> dict[str, list[tuple]]:
    """Every published table of a lakehouse, as sorted rows in schema order.

    The lakehouse's own location (in ``_source_file``) reads ``<root>``, so two
    lakehouses built from the same landed files compare equal, on a folder (``file:``
    URIs) or an object store alike.
    """
    local = f"file:{root}"

    def relative(value: object) -> object:
        if not isinstance(value, str):
            return value
        return value.replace(local, "<root>").replace(root, "<root>")

    tables = {}
    for table in ALL_TABLES:
        frame = spark.read.format("delta").load(table.path(root))
        rows = frame.select(*[f.name for f in table.schema.fields]).collect()
        tables[table.name] = sorted(
            (tuple(relative(v) for v in r) for r in rows),
            key=lambda r: [(v is not None, str(v)) for v in r],
        )
    return tables


def differences(actual: dict[str, list[tuple]], expected: dict[str, list[tuple]]) -> list[str]:
    """Tables whose rows differ, with the count of rows only on either side."""
    problems = []
    for name, rows in expected.items():
        got = actual[name]
        if got != rows:
            only_got = len(set(got) - set(rows))
            only_expected = len(set(rows) - set(got))
            problems.append(
                f"{name}: {len(got)} rows vs {len(rows)} in order "
                f"({only_got} only here, {only_expected} only in the in-order pass)"
            )
    return problems


def reset_metadata_db() -> None:
    """An empty metadata DB with the one-slot pool every lakehouse writer task takes."""
    from airflow.models.pool import Pool
    from airflow.utils import db

    from include.dag_factory import WRITER_POOL

    db.resetdb()
    Pool.create_or_update_pool(
        WRITER_POOL, slots=1, description="lakehouse writers", include_deferred=False
    )


# Builders of bad landing input (tests/jobs/test_bad_input_corpus.py and others).
DROP = object()  # a landing_line override that leaves the field out


def landing_line(event_id: str, /, **overrides: object) -> str:
    """One landing line as JSON text: a sound USD purchase of 2026-03-02 unless overridden.

    An override of ``DROP`` leaves the field out; any other value is written as JSON.
    """
    fields: dict[str, object] = {
        **purchase(event_id, "u1", "2026-03-02T10:00:00Z"),
        "order_id": f"o-{event_id}",
    }
    fields.update(overrides)
    kept = {k: v for k, v in fields.items() if v is not DROP}
    return json.dumps(kept, separators=(",", ":"), ensure_ascii=False)


def land_bytes(root: str, day: dt.date, name: str, data: bytes) -> str:
    """Land ``data`` byte for byte as file ``name`` of a landing date; returns its path."""
    folder = Path(landing_day_path(root, day))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return str(path)


def jsonl_bytes(lines: list[str | bytes], newline: bytes = b"\n") -> bytes:
    """Lines (text as UTF-8, or bytes as they are) joined into a landing file's bytes."""
    encoded = [line if isinstance(line, bytes) else line.encode() for line in lines]
    return b"".join(line + newline for line in encoded)


def table_frame(spark, root: str, table):
    """A published Delta table of a lakehouse as a DataFrame."""
    return spark.read.format("delta").load(table.path(root))


# Feature snapshots and instants for point-in-time joins.


def midnight_after(as_of_date: dt.date) -> dt.datetime:
    """feature_ts of a snapshot: the instant right after its as_of_date, UTC."""
    return dt.datetime.combine(as_of_date + dt.timedelta(days=1), dt.time(0), tzinfo=UTC)


def snapshot_row(
    user_id: str,
    as_of_date: dt.date,
    value: int,
    available_at: dt.datetime | None = None,
) -> dict:
    """A full gold.user_features row whose features carry ``value``."""
    defaults = {
        LongType: 0,
        IntegerType: 0,
        DoubleType: 0.0,
        DecimalType: Decimal("0"),
        DateType: as_of_date,
        StringType: None,
    }
    row = {f.name: defaults.get(type(f.dataType)) for f in GOLD_USER_FEATURES_SCHEMA.fields}
    feature_ts = midnight_after(as_of_date)
    row.update(
        user_id=user_id,
        as_of_date=as_of_date,
        lifetime_orders=value,
        monetary_value=float(value) / 4,
        feature_ts=feature_ts,
        available_at=available_at or feature_ts,
    )
    return row


def feature_frame(spark: SparkSession, rows: list[dict]) -> DataFrame:
    """A features DataFrame with the gold.user_features schema."""
    names = GOLD_USER_FEATURES_SCHEMA.fieldNames()
    return spark.createDataFrame(
        [tuple(r[n] for n in names) for r in rows], GOLD_USER_FEATURES_SCHEMA
    )


def micros(instant: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return int(instant.timestamp() * 1_000_000)


def at(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """An instant on DAY0 + day, UTC."""
    return dt.datetime.combine(DAY0 + dt.timedelta(days=day), dt.time(hour, minute), tzinfo=UTC)


# Silver rows written directly, for gold and feature tests.


def silver_row(
    user_id: str,
    event_time: str,
    event_type: str = "purchase",
    order_id: str = "o1",
    quantity: int = 1,
    unit_price: str = "10.00",
    category: str | None = "books",
    landing: str | None = None,
    offset_minutes: int = 0,
    event_id: str | None = None,
) -> dict:
    """A silver.purchases row (USD, rate 1); ``event_time`` is UTC, landing defaults to its day."""
    moment = dt.datetime.fromisoformat(event_time)
    amount = Decimal(unit_price) * quantity
    landing_date = D(landing) if landing else moment.date()
    return {
        "event_id": event_id or f"{user_id}-{event_time}-{event_type}-{order_id}-{category}",
        "order_id": order_id,
        "user_id": user_id,
        "event_type": event_type,
        "event_time": moment,
        "event_date": moment.date(),
        "event_utc_offset_minutes": offset_minutes,
        "sku": f"sku-{category}",
        "category": category,
        "quantity": quantity,
        "unit_price": Decimal(unit_price),
        "currency": "USD",
        "fx_rate_to_usd": Decimal("1"),
        "fx_rate_date": moment.date(),
        "amount_usd": -amount if event_type == "refund" else amount,
        "_source_file": f"landing/purchases/dt={landing_date}/part-00000.jsonl",
        "_landing_date": landing_date,
        "_ingested_at": dt.datetime.combine(landing_date + dt.timedelta(days=1), dt.time()),
    }


def write_silver(spark, root: str, rows: list[dict]) -> None:
    """Write silver.purchases and the silver.changes that build_silver would record."""
    purchases = spark.createDataFrame(
        [Row(**{f.name: r[f.name] for f in SILVER_PURCHASES_SCHEMA.fields}) for r in rows],
        SILVER_PURCHASES_SCHEMA,
    )
    (
        purchases.write.format("delta")
        .mode("overwrite")
        .partitionBy(*SILVER_PURCHASES.partition_by)
        .save(SILVER_PURCHASES.path(root))
    )
    touched: dict[tuple, int] = {}
    for r in rows:
        key = (r["_landing_date"], r["event_date"], r["user_id"])
        touched[key] = touched.get(key, 0) + 1
    changes = spark.createDataFrame(
        [
            Row(_landing_date=k[0], event_date=k[1], user_id=k[2], rows=n)
            for k, n in touched.items()
        ],
        SILVER_CHANGES_SCHEMA,
    )
    (
        changes.write.format("delta")
        .mode("overwrite")
        .partitionBy(*SILVER_CHANGES.partition_by)
        .save(SILVER_CHANGES.path(root))
    )


def run_job(module, root: str, start: str, end: str | None = None, step: str = "all") -> None:
    """Run a job's CLI in-process; it must exit 0."""
    argv = ["--root", root, "--start", start, "--end", end or start, "--step", step]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(module.main, argv)
    assert exit_info.value.code == 0


def rows_by_repr(spark, root: str, table) -> list[tuple]:
    """Every row of a published table, as sorted tuples in schema order."""
    frame = spark.read.format("delta").load(table.path(root))
    return sorted(
        (tuple(r) for r in frame.select([f.name for f in table.schema.fields]).collect()),
        key=repr,
    )


# Bronze: landing files, ungated publishes, table snapshots.


def write_landing(root: str, landing_date: dt.date, name: str, lines: Sequence[str]) -> str:
    """Land ``lines`` as one file of a landing date (gzipped when the name ends in .gz)."""
    folder = Path(landing_day_path(root, landing_date))
    folder.mkdir(parents=True, exist_ok=True)
    data = "".join(f"{line}\n" for line in lines).encode()
    path = folder / name
    path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return f"file:{path}"


def publish_ungated(spark, root: str, stage: str, days: DateRange, outputs) -> None:
    """Publish staged outputs through WAP without the GX suites (they have tests of their own)."""
    ungated = [dataclasses.replace(o, gated=False) for o in outputs]
    params = {"start": str(days.start), "end": str(days.end), "stage": stage}
    wap.audit_and_publish(spark, root, stage, days.key, ungated, params)


def ingest(spark, root: str, start: dt.date, end: dt.date | None = None) -> None:
    """Build and publish bronze for [start, end] (gates skipped)."""
    days = DateRange(start, end or start)
    ingest_bronze.build(spark, root, days)
    publish_ungated(spark, root, "bronze", days, ingest_bronze.outputs(days))


def same_columns(actual, expected) -> bool:
    """Same column names and types in the same order (Delta keeps written nullability)."""
    return [(f.name, f.dataType) for f in actual.fields] == [
        (f.name, f.dataType) for f in expected.fields
    ]


def sorted_rows(rows) -> list[tuple]:
    """Rows as tuples in a total order that tolerates nulls."""
    return sorted((tuple(r) for r in rows), key=lambda r: [(v is not None, str(v)) for v in r])


def table_rows(spark, root: str, table) -> list[tuple]:
    """Every row of a published table, columns in schema order, sorted."""
    frame = spark.read.format("delta").load(table.path(root))
    return sorted_rows(frame.select(*[f.name for f in table.schema.fields]).collect())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


S3_BUCKET = "lakehouse-test"


def use_s3_server(monkeypatch: pytest.MonkeyPatch, server) -> None:
    """Point spark_jobs.storage.files (boto3, from the environment) at a loopback S3 server."""
    for key, value in server.environment("").items():
        if key != "LAKEHOUSE_ROOT":
            monkeypatch.setenv(key, value)


def upload_landing(s3_server, feed: Path, root: str) -> int:
    """Put the feed's landing files under ``root`` on the S3 server; how many."""
    bucket, prefix = root.removeprefix("s3a://").split("/", 1)
    client = s3_server.client()
    uploaded = 0
    for path in sorted((feed / "landing").rglob("*")):
        if path.is_file():
            key = f"{prefix}/landing/{path.relative_to(feed / 'landing').as_posix()}"
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            uploaded += 1
    return uploaded


def read_s3_with(spark, server, bucket: str = S3_BUCKET) -> None:
    """Let a test's own session read ``bucket`` of ``server`` (per-bucket S3A settings)."""
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in {
        "endpoint": server.endpoint,
        "access.key": server.access_key,
        "secret.key": server.secret_key,
        "endpoint.region": "us-east-1",
        "path.style.access": "true",
        "connection.ssl.enabled": "false",
        "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }.items():
        hadoop.set(f"fs.s3a.bucket.{bucket}.{key}", value)


@dataclasses.dataclass(frozen=True)
class ConnectServer:
    """A running Spark Connect server of the test run: where it is and its token."""

    url: str
    token: str

    def client_environment(self) -> dict[str, str]:
        """What a job's process needs to run on this server."""
        return {"SPARK_REMOTE": self.url, "SPARK_CONNECT_AUTHENTICATE_TOKEN": self.token}


def client_run(
    server: ConnectServer,
    module: str,
    root: str,
    day: dt.date,
    token: str | None = None,
    **extra_env: str,
) -> subprocess.CompletedProcess[str]:
    """One job as a Connect client in its own process (its whole output captured)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYSPARK_GATEWAY_PORT", "SPARK_CONNECT_AUTHENTICATE_TOKEN")
    }
    env.update(server.client_environment())
    if token is not None:
        env["SPARK_CONNECT_AUTHENTICATE_TOKEN"] = token
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-m", f"spark_jobs.jobs.{module}", "--root", root, "--start", str(day)],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@contextlib.contextmanager
def patched_env(**values: str | None) -> Iterator[None]:
    """Environment variables set (None: unset) for the block, restored after it."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def lakehouse_env(root: str, **extra: str) -> contextlib.AbstractContextManager[None]:
    """LAKEHOUSE_ROOT (and extra variables) set while DAGs are parsed and run."""
    return patched_env(LAKEHOUSE_ROOT=root, **extra)


def ops_metrics_on() -> contextlib.AbstractContextManager[None]:
    """Stage runs record ops.stage_runs rows, as by default outside the tests (conftest)."""
    return patched_env(LAKEHOUSE_OPS_METRICS=None)


def run_daily(root: str, day: dt.date, **env: str) -> dict[str, str]:
    """Run purchases_daily for one logical date with dag.test(); task id -> final state.

    Without its publish deadline: Airflow 3.3.2's dag.test() fails a run that succeeds
    when its DAG has a DeadlineAlert (it looks the alert up by its definition instead of
    its id). The real scheduler's path is tested in tests/dags/test_airflow_postgres.py.
    """
    from airflow.dag_processing.dagbag import DagBag

    env = {"LAKEHOUSE_PUBLISH_DEADLINE_HOURS": "off", **env}
    with lakehouse_env(root, **env):
        dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags")).dags["purchases_daily"]
        run = dag.test(logical_date=dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC))
        return {ti.task_id: ti.state for ti in run.get_task_instances()}


def connect_connection(server: ConnectServer, **extra: object) -> str:
    """A ``spark_default`` connection (Airflow's JSON form) to a test's Connect server."""
    from urllib.parse import urlparse

    url = urlparse(server.url)
    connection: dict[str, object] = {
        "conn_type": "spark_connect",
        "host": url.hostname,
        "port": url.port,
        "password": server.token,
    }
    if extra:
        connection["extra"] = extra
    return json.dumps(connection)
