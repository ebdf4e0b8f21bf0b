"""Spark's event log is on by default under the lakehouse root; make history serves it."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from devtools.history_server import HistoryServer
from spark_jobs.config import PROJECT_ROOT, Settings
from spark_jobs.session import session_conf
from tests.factories import free_port, landing_line, write_landing

DAY = dt.date(2026, 3, 2)


def test_the_event_log_is_on_by_default_and_can_be_moved_or_turned_off(tmp_path) -> None:
    root = str(tmp_path / "lakehouse")
    default = session_conf(Settings.from_env({"LAKEHOUSE_ROOT": root}))
    assert default["spark.eventLog.enabled"] == "true"
    assert default["spark.eventLog.dir"] == f"{root}/_spark_events"
    moved = Settings.from_env({"LAKEHOUSE_ROOT": root, "LAKEHOUSE_EVENT_LOG": "s3a://logs/x"})
    assert session_conf(moved)["spark.eventLog.dir"] == "s3a://logs/x"
    on_s3 = Settings.from_env({"LAKEHOUSE_ROOT": "s3a://bucket/lakehouse"})
    assert on_s3.event_log_dir is None  # no folder to create before the session starts
    off = session_conf(Settings.from_env({"LAKEHOUSE_ROOT": root, "LAKEHOUSE_EVENT_LOG": "off"}))
    assert not any(key.startswith("spark.eventLog") for key in off)


def test_a_job_writes_its_event_log_and_the_history_server_lists_it(tmp_path) -> None:
    root = tmp_path / "lakehouse"
    write_landing(str(root), DAY, "part-0.jsonl", [landing_line(f"e{i}") for i in range(5)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_REMOTE", "LAKEHOUSE_"))}
    env.update(LAKEHOUSE_ROOT=str(root), SPARK_MASTER="local[1]", PYTHONPATH=str(PROJECT_ROOT))
    job = subprocess.run(
        [sys.executable, "-m", "spark_jobs.jobs.ingest_bronze", "--start", str(DAY)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    logs = [p for p in (root / "_spark_events").iterdir() if not p.name.startswith(".")]
    assert len(logs) == 1, logs

    server = HistoryServer(str(root / "_spark_events"), tmp_path / "history.log", free_port())
    server.start()
    try:
        deadline = time.monotonic() + 60
        while not (apps := server.applications()):
            assert time.monotonic() < deadline, Path(server.log_path).read_text()[-3000:]
            time.sleep(1)
        assert [app["name"] for app in apps] == ["ingest_bronze"]
        (attempt,) = apps[0]["attempts"]
        assert attempt["completed"] is True
        assert server.url.startswith("http://127.0.0.1:")
    finally:
        server.stop()
    assert server.process is None
