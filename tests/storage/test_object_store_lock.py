"""The writer lock on an object store: a lease object taken and renewed with conditional
writes, on a real S3 server (s3proxy on loopback), by real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from spark_jobs.config import PROJECT_ROOT
from spark_jobs.storage import files
from spark_jobs.storage.locking import LockTimeout, object_lock_path, writer_lock
from tests.factories import S3_BUCKET, use_s3_server

# A writer: under the lock, read a counter object, wait, write it back plus one. Without
# mutual exclusion two writers read the same value and one increment is lost.
INCREMENT = textwrap.dedent(
    """
    import sys, time
    from spark_jobs.storage import files
    from spark_jobs.storage.locking import writer_lock

    root, rounds = sys.argv[1], int(sys.argv[2])
    for _ in range(rounds):
        with writer_lock(root, f"incrementer {sys.argv[3]}"):
            value = int(files.read_text(f"{root}/counter") or "0")
            time.sleep(0.2)
            files.write_text_atomic(f"{root}/counter", str(value + 1))
    """
)

HOLD = textwrap.dedent(
    """
    import sys, time
    from spark_jobs.storage.locking import writer_lock

    with writer_lock(sys.argv[1], "holder"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


@pytest.fixture
def root(s3_server, monkeypatch) -> str:
    use_s3_server(monkeypatch, s3_server)
    return f"s3a://{S3_BUCKET}/lock-{time.monotonic_ns()}"


def python(code: str, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_writers_never_overlap(root: str) -> None:
    writers = [python(INCREMENT, root, "3", str(n)) for n in range(4)]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err[-2000:]
    assert files.read_text(f"{root}/counter") == "12"
    assert files.read_text(object_lock_path(root)) is None  # released by the last one


def test_a_waiter_times_out_naming_the_holder(root: str) -> None:
    holder = python(HOLD, root, "30")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(LockTimeout, match=r"held by holder \(pid \d+"),
            writer_lock(root, "waiter", timeout=2),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_holder_renews_its_lease_while_it_works(root: str, monkeypatch) -> None:
    # The holder works for three leases; its renewals keep every waiter out meanwhile.
    monkeypatch.setenv("LAKEHOUSE_LOCK_LEASE_SECONDS", "2")
    holder = python(HOLD, root, "6", LAKEHOUSE_LOCK_LEASE_SECONDS="2")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout), writer_lock(root, "waiter", timeout=4.5):
            pass
        note = json.loads(files.read_text(object_lock_path(root)) or "{}")
        assert note["holder"] == "holder" and note["beat"] > 1
        holder.wait(timeout=30)
        assert holder.returncode == 0
        with writer_lock(root, "waiter", timeout=5):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holders_lock_is_taken_over_after_one_lease(
    root: str, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("LAKEHOUSE_LOCK_LEASE_SECONDS", "2")
    holder = python(HOLD, root, "600", LAKEHOUSE_LOCK_LEASE_SECONDS="2")
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert files.read_text(object_lock_path(root)) is not None  # left behind

    started = time.monotonic()
    with (
        caplog.at_level("WARNING", logger="spark_jobs.storage.locking"),
        writer_lock(root, "next writer", timeout=30),
    ):
        waited = time.monotonic() - started
        note = json.loads(files.read_text(object_lock_path(root)) or "{}")
        assert note["holder"] == "next writer"
    assert "took over the writer lock of holder" in caplog.text
    assert waited < 30


def test_a_holder_that_lost_its_lease_stops_itself(root: str) -> None:
    # Another writer overwrites the lock (as a takeover after a stall would); the holder's
    # next renewal finds it changed, and the holder ends itself with SIGTERM.
    holder = python(HOLD, root, "60", LAKEHOUSE_LOCK_LEASE_SECONDS="2")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        files.write_text_atomic(object_lock_path(root), '{"holder": "intruder"}')
        assert holder.wait(timeout=20) == -signal.SIGTERM
        assert "lost the writer lock" in (holder.stderr.read() if holder.stderr else "")
        # The lock is the new holder's: the stopped job did not delete it on its way out.
        assert "intruder" in (files.read_text(object_lock_path(root)) or "")
    finally:
        holder.kill()
        holder.wait()


def test_two_jobs_committing_to_one_s3a_table_at_once_both_land(
    spark, s3_server, root: str, tmp_path
) -> None:
    # Two ingest_bronze jobs, each its own Spark driver (as two spark-submit tasks, or a
    # task beside a job run by hand), start together on one table. Delta's S3 log store
    # would let both write the same commit version; the lock makes them take turns, so
    # the log holds both commits and the table both days.
    from devtools import generate_purchases
    from spark_jobs.catalog import BRONZE_PURCHASES
    from spark_jobs.storage.commit_log import commit_versions
    from tests.factories import read_s3_with, upload_landing

    days = ("2026-05-01", "2026-05-02")
    feed = tmp_path / "feed"
    argv = ["--root", str(feed), "--start", days[0], "--end", days[1], "--users", "20"]
    assert generate_purchases.main([*argv, "--skip-dates", "none"]) == 0
    upload_landing(s3_server, feed, root)
    env = {
        **s3_server.environment(root),
        "SPARK_MASTER": "local[1]",
        "SPARK_DRIVER_MEMORY": "1g",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    jobs = [
        subprocess.Popen(
            [sys.executable, "-m", "spark_jobs.jobs.ingest_bronze", "--start", day],
            # An empty SPARK_REMOTE (a shell's `export SPARK_REMOTE=`) means no server.
            env={**os.environ, **env, "SPARK_REMOTE": ""},
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for day in days
    ]
    outputs = []
    for job in jobs:
        out, _ = job.communicate(timeout=600)
        assert job.returncode == 0, out[-3000:]
        outputs.append(out)
    # They took turns: the second says it waited for the lock (on a loaded machine the
    # first may also need over a second to take it, and says so too).
    assert any("writer lock taken after" in out for out in outputs), outputs

    table = BRONZE_PURCHASES.path(root)
    names = [entry.path.rsplit("/", 1)[-1] for entry in files.children(f"{table}/_delta_log")]
    versions = commit_versions(names)
    assert versions == list(range(len(versions)))
    read_s3_with(spark, s3_server)
    landed = {
        str(r["_landing_date"])
        for r in spark.read.format("delta").load(table).select("_landing_date").distinct().collect()
    }
    assert landed == set(days)
