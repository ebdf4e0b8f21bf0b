"""Spark's History Server on 127.0.0.1, over the lakehouse's event log.

    python -m devtools.history_server            # make history: foreground until Ctrl-C

Every Spark session of the product (a job's own, a Connect server's) writes its event
log under ``<lakehouse root>/_spark_events`` unless ``LAKEHOUSE_EVENT_LOG`` says
otherwise (``spark_jobs.config.Settings.event_log``). This serves those logs: each
application's jobs, stages, tasks, shuffle sizes and SQL plans, after the fact, at
http://127.0.0.1:18080 (REST: ``/api/v1/applications``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.spark_cluster import HOST, spark_class, worker_environment
from spark_jobs import connect_server
from spark_jobs.config import PROJECT_ROOT, Settings
from spark_jobs.session import prepare_event_log

HISTORY_CLASS = "org.apache.spark.deploy.history.HistoryServer"
DEFAULT_PORT = 18080


@dataclass
class HistoryServer:
    """One History Server process reading ``log_dir``, its own log at ``log_path``."""

    log_dir: str
    log_path: Path
    port: int = DEFAULT_PORT
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60) -> None:
        """Start it and return once its REST API answers."""
        env = worker_environment()  # SPARK_LOCAL_IP=127.0.0.1: the UI binds to loopback
        env["SPARK_HISTORY_OPTS"] = " ".join(
            [
                f"-Dspark.history.fs.logDirectory={self.log_dir}",
                f"-Dspark.history.ui.port={self.port}",
                "-Dspark.history.fs.update.interval=2s",
                "-Dspark.history.retainedApplications=50",
            ]
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [spark_class(), HISTORY_CLASS],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the History Server exited with code {self.process.returncode}:\n"
                    + connect_server.log_tail(self.log_path)
                )
            try:
                self.applications()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(
            f"the History Server did not answer on {self.url} within {timeout:.0f} s:\n"
            + connect_server.log_tail(self.log_path)
        )

    def applications(self) -> list[dict]:
        """The applications it lists (REST ``/api/v1/applications``)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/applications", timeout=5) as response:
            return list(json.load(response))

    def stop(self) -> None:
        if self.process is not None:
            connect_server.stop(self.process)
            self.process = None


def main(argv: list[str] | None = None) -> int:
    """``make history``: serve the event log until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.history_server", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--log-dir", default=None, help="event log folder or URI (default: the lakehouse's)"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    log_dir = args.log_dir or settings.event_log_dir
    if log_dir is None:
        print("error: the event log is off (LAKEHOUSE_EVENT_LOG=off): nothing to serve")
        return 2
    if args.log_dir is None:
        prepare_event_log(settings)
    server = HistoryServer(log_dir, PROJECT_ROOT / ".history" / "history-server.log", args.port)
    server.start()
    print(f"Spark History Server {server.url} reading {log_dir}", flush=True)
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
