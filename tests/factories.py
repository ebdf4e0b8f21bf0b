"""Builders the end-to-end tests share: landing lines, whole-pipeline runs, table snapshots.

Every job runs for real (build, Great Expectations gate, publish) through its ``main``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from spark_jobs.catalog import ALL_TABLES, landing_day_path
from spark_jobs.jobs import build_features, build_gold, build_silver, ingest_bronze

STAGES = (ingest_bronze, build_silver, build_gold, build_features)


def run_stage(job, root: str, start: dt.date, end: dt.date | None = None) -> None:
    """One job through its command line: build, gate and publish; it must exit 0."""
    argv = ["--root", root, "--start", str(start), "--end", str(end or start)]
    assert job.main(argv) == 0, f"{job.__name__} {start}..{end or start}"


def run_day(root: str, day: dt.date, stages=STAGES) -> None:
    """Every stage of one landing date, in pipeline order (what purchases_daily runs)."""
    for job in stages:
        run_stage(job, root, day)


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
    lakehouses built from the same landed files compare equal.
    """

    def relative(value: object) -> object:
        return value.replace(root, "<root>") if isinstance(value, str) else value

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


# Builders of bad landing input (tests/spark_jobs/test_bad_input_corpus.py and others).
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
