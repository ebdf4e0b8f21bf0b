"""The lakehouse runs on an S3 API as on a folder: a real S3 server (s3proxy) on loopback."""

from __future__ import annotations

import datetime as dt
import gzip
import time
from pathlib import Path

import pytest

from spark_jobs.cli import DateRange, UserError
from spark_jobs.storage import files
from tests.factories import S3_BUCKET as BUCKET
from tests.factories import use_s3_server


@pytest.fixture
def s3_root(spark, s3_server, monkeypatch) -> str:
    """An s3a:// lakehouse root whose bucket lives on the loopback S3 server."""
    use_s3_server(monkeypatch, s3_server)
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in {
        f"fs.s3a.bucket.{BUCKET}.endpoint": s3_server.endpoint,
        f"fs.s3a.bucket.{BUCKET}.access.key": s3_server.access_key,
        f"fs.s3a.bucket.{BUCKET}.secret.key": s3_server.secret_key,
        f"fs.s3a.bucket.{BUCKET}.endpoint.region": "us-east-1",
        f"fs.s3a.bucket.{BUCKET}.path.style.access": "true",
        f"fs.s3a.bucket.{BUCKET}.connection.ssl.enabled": "false",
        f"fs.s3a.bucket.{BUCKET}.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
    }.items():
        hadoop.set(key, value)
    root = f"s3a://{BUCKET}/run-{time.monotonic_ns()}"
    monkeypatch.setenv("LAKEHOUSE_ROOT", root)
    return root


def test_bronze_and_silver_build_on_an_s3a_root(spark, s3_root):
    from devtools.generate_purchases import generate
    from spark_jobs.catalog import BRONZE_PURCHASES, SILVER_PURCHASES, SILVER_QUARANTINE
    from spark_jobs.jobs import build_silver, ingest_bronze
    from spark_jobs.quality.accounting import check_accounting

    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    summary = generate(spark, s3_root, start, end, users=40, seed=11)
    dates = ["--root", s3_root, "--start", str(start), "--end", str(end)]
    assert ingest_bronze.main(dates) == 0
    assert build_silver.main(dates) == 0

    bronze = spark.read.format("delta").load(BRONZE_PURCHASES.path(s3_root)).count()
    silver = spark.read.format("delta").load(SILVER_PURCHASES.path(s3_root)).count()
    quarantined = spark.read.format("delta").load(SILVER_QUARANTINE.path(s3_root)).count()
    assert bronze == summary.events_written
    assert silver > 0 and quarantined > 0
    rows = check_accounting(spark, s3_root, start, end)
    assert sum(r.bronze for r in rows) == bronze
    assert all(r.balanced for r in rows)


# ------------------------------------------------------- spark_jobs.storage.files, both stores


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path, monkeypatch) -> str:
    """An empty folder: a local path, or a prefix on the loopback S3 server (no Spark)."""
    if request.param == "local":
        return str(tmp_path / "store")
    use_s3_server(monkeypatch, request.getfixturevalue("s3_server"))
    return f"s3a://{BUCKET}/files-{time.monotonic_ns()}"


def listed(path: str) -> str:
    """A path as the listings write it: local paths as ``file:/absolute``."""
    return f"file:{path}" if files.is_local(path) and "://" not in path else path


def test_files_list_read_and_glob(store: str) -> None:
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(seconds=2)
    assert not files.exists(store)
    assert files.children(store) == []
    files.write_text_atomic(f"{store}/a/_manifest.json", '{"n": 1}')
    files.write_bytes_atomic(f"{store}/a/part/data.bin", b"\x00\x01")
    files.write_text_atomic(f"{store}/b/_manifest.json", "{}")
    files.make_folder(f"{store}/empty")

    assert files.exists(store) and files.exists(f"{store}/a/part")
    assert files.exists(f"{store}/empty")
    assert not files.exists(f"{store}/a/_manifest")
    top = files.children(store)
    assert [(e.path, e.is_dir) for e in top] == [
        (listed(f"{store}/{name}"), True) for name in ("a", "b", "empty")
    ]
    inside = files.children(f"{store}/a")
    assert [(e.path, e.is_dir) for e in inside] == [
        (listed(f"{store}/a/_manifest.json"), False),
        (listed(f"{store}/a/part"), True),
    ]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert all(before <= e.modified_at <= now for e in inside)
    # Listing a file gives the file itself.
    assert [e.path for e in files.children(f"{store}/a/_manifest.json")] == [
        listed(f"{store}/a/_manifest.json")
    ]

    assert files.glob(f"{store}/*/_manifest.json") == [
        listed(f"{store}/a/_manifest.json"),
        listed(f"{store}/b/_manifest.json"),
    ]
    assert files.glob(f"{store}/*") == [listed(f"{store}/{n}") for n in ("a", "b", "empty")]
    assert files.glob(f"{store}/a/_manifest.json") == [listed(f"{store}/a/_manifest.json")]
    assert files.glob(f"{store}/*/missing.json") == []
    assert files.glob(f"{store}/missing/*") == []

    assert files.read_text(f"{store}/a/_manifest.json") == '{"n": 1}'
    assert files.read_bytes(f"{store}/a/part/data.bin") == b"\x00\x01"
    assert files.read_bytes(f"{store}/a/nothing.bin") is None
    assert files.read_text(f"{store}/nothing/at/all.json") is None


def test_files_atomic_write_replaces_the_whole_file(store: str) -> None:
    path = f"{store}/intents/silver.json"
    files.write_text_atomic(path, "first version, the longer one")
    files.write_text_atomic(path, "second")
    assert files.read_text(path) == "second"
    # No draft is left beside the file.
    assert [e.path for e in files.children(f"{store}/intents")] == [listed(path)]
    files.write_bytes_atomic(path, "é".encode())
    assert files.read_text(path) == "é"


def test_files_move_and_delete(store: str) -> None:
    files.write_text_atomic(f"{store}/run/a.json", "a")
    files.write_text_atomic(f"{store}/run/deep/b.json", "b")

    files.move(f"{store}/run", f"{store}/published/run")
    assert not files.exists(f"{store}/run")
    assert files.read_text(f"{store}/published/run/a.json") == "a"
    assert files.read_text(f"{store}/published/run/deep/b.json") == "b"
    files.move(f"{store}/published/run/a.json", f"{store}/a.json")
    assert files.read_text(f"{store}/a.json") == "a"
    assert not files.exists(f"{store}/published/run/a.json")
    with pytest.raises(FileNotFoundError):
        files.move(f"{store}/run", f"{store}/elsewhere")

    assert files.delete(f"{store}/a.json")
    assert not files.delete(f"{store}/a.json")
    assert not files.exists(f"{store}/a.json")
    assert files.delete_tree(f"{store}/published")
    assert not files.exists(f"{store}/published/run/deep/b.json")
    assert not files.delete_tree(f"{store}/published")
    files.make_folder(f"{store}/kept")
    assert files.delete(f"{store}/kept")
    assert not files.exists(f"{store}/kept")


def test_landing_listing_skips_hidden_entries_and_reports_directories(store: str) -> None:
    from spark_jobs.catalog import landing_day_path, landing_path
    from spark_jobs.jobs.ingest_bronze import LandedDay, landing_files

    day, quiet = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    days = DateRange(day, quiet)
    with pytest.raises(UserError, match="no landing folder"):
        landing_files(store, days)

    folder = landing_day_path(store, day)
    files.write_bytes_atomic(f"{folder}/part-1.jsonl", b'{"a": 1}\n')
    files.write_bytes_atomic(f"{folder}/part-2.jsonl.gz", gzip.compress(b"{}\n"))
    files.write_bytes_atomic(f"{folder}/.part-3.jsonl", b"uploading")
    files.write_bytes_atomic(f"{folder}/_part-4.jsonl", b"uploading")
    files.write_bytes_atomic(f"{folder}/notes.txt", b"not landing data")
    files.write_bytes_atomic(f"{folder}/folder.jsonl/inside.jsonl", b"{}\n")
    assert files.exists(landing_path(store))

    assert landing_files(store, days) == {
        day: LandedDay(
            files=[listed(f"{folder}/part-1.jsonl"), listed(f"{folder}/part-2.jsonl.gz")],
            directories=[listed(f"{folder}/folder.jsonl")],
        ),
        quiet: LandedDay([], []),
    }


def test_local_files_take_file_uris_and_hide_checksums(tmp_path: Path) -> None:
    files.write_text_atomic(f"file://{tmp_path}/t/x.json", "x")
    (tmp_path / "t" / ".x.json.crc").write_bytes(b"crc")
    assert files.read_text(f"file:{tmp_path}/t/x.json") == "x"
    assert files.read_text(str(tmp_path / "t" / "x.json")) == "x"
    for form in (str(tmp_path / "t"), f"file:{tmp_path}/t", f"file://{tmp_path}/t"):
        assert [e.path for e in files.children(form)] == [f"file:{tmp_path}/t/x.json"]
    assert files.is_local(str(tmp_path)) and files.is_local(f"file:{tmp_path}")
    assert not files.is_local("s3a://bucket/prefix") and not files.is_local("s3://bucket/p")
