"""The lakehouse writer lock: one holder at a time, named to whoever waits, and gone with a
killed holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from spark_jobs.config import PROJECT_ROOT
from spark_jobs.storage.locking import LockTimeout, lock_file, writer_lock

HOLDER = """
import sys, time
from spark_jobs.storage.locking import writer_lock
with writer_lock(sys.argv[1], "build_silver 2026-03-01_2026-03-01"):
    print("held", flush=True)
    time.sleep(600)
"""


def start_holder(root: str) -> subprocess.Popen[str]:
    """Another process that takes the lock and keeps it until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, root],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_waits_and_is_told_who_holds_the_lock(lakehouse: str) -> None:
    holder = start_holder(lakehouse)
    try:
        with (
            pytest.raises(LockTimeout, match=r"held by build_silver 2026-03-01_2026-03-01"),
            writer_lock(lakehouse, "build_gold 2026-03-01_2026-03-01", timeout=1),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(lakehouse: str) -> None:
    holder = start_holder(lakehouse)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()

    started = time.monotonic()
    with writer_lock(lakehouse, "build_gold 2026-03-01_2026-03-01", timeout=5):
        assert time.monotonic() - started < 5
    assert lock_file(lakehouse).read_text() == ""


def test_writers_in_one_process_take_turns(lakehouse: str) -> None:
    inside: list[str] = []
    overlaps: list[str] = []

    def write(name: str) -> None:
        with writer_lock(lakehouse, name, timeout=30):
            if inside:
                overlaps.append(f"{name} beside {inside}")
            inside.append(name)
            time.sleep(0.3)
            inside.remove(name)

    threads = [threading.Thread(target=write, args=(f"writer-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert overlaps == []
