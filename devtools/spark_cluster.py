"""A Spark standalone cluster on loopback: a master, a worker, and the Connect server on it.

    python -m devtools.spark_cluster            # make cluster: foreground until Ctrl-C

starts a master on 127.0.0.1:7077 (UI :8081), one worker (UI :8082) and a Spark Connect
server on 127.0.0.1:15002 whose driver schedules the jobs' queries on that cluster. Point
Airflow at it with ``AIRFLOW_CONN_SPARK_DEFAULT`` (printed) or run a job as a client with
``SPARK_REMOTE``.

The processes come from the pyspark install (its ``spark-class``), which is the Spark
distribution a worker machine has. A worker needs neither this checkout nor the project's
virtual environment: its executors run the system Python (``--python``, Spark's own
``pyspark.zip`` on its path); the project's code reaches them as one archive of the
``spark_jobs`` package that each job uploads to its Connect session (``ship_code`` in the
connection's extra, ``LAKEHOUSE_SHIP_CODE`` for a job run by hand;
``spark_jobs.artifacts``), and the jars as the server's ``spark.jars`` from the local
Maven cache, served by the driver.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from spark_jobs import connect_server
from spark_jobs.config import PROJECT_ROOT, Settings

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
DEFAULT_HOME = PROJECT_ROOT / ".cluster"
_PYTHON_NAME = f"python{sys.version_info.major}.{sys.version_info.minor}"


def _system_python() -> str:
    """The Python a worker machine has: the OS's, never the project's venv.

    Its minor version must be the clients' (a job's Python UDF is pickled by the client
    and unpickled on an executor).
    """
    for folder in ("/usr/bin", "/usr/local/bin", str(Path(sys.base_prefix) / "bin")):
        candidate = Path(folder) / _PYTHON_NAME
        if candidate.is_file() and not candidate.resolve().is_relative_to(Path(sys.prefix)):
            return str(candidate)
    return ""


SYSTEM_PYTHON = _system_python()
# Environment a worker must not inherit from a developer's shell or the venv.
_PRIVATE_ENV = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "SPARK_REMOTE", "PYSPARK_PYTHON")


class ClusterDidNotStart(RuntimeError):
    """The master or the worker exited, or the worker never registered."""


def spark_class() -> str:
    """``spark-class`` of the installed Spark distribution (pyspark's bin folder)."""
    return str(Path(connect_server.spark_submit()).with_name("spark-class"))


def worker_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """A worker's (and master's) environment: loopback, nothing of the venv."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _PRIVATE_ENV}
    env["SPARK_LOCAL_IP"] = HOST
    env["SPARK_NO_DAEMONIZE"] = "1"
    return env


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as response:
        return dict(json.load(response))


@dataclass
class StandaloneCluster:
    """One master and one worker on 127.0.0.1, their logs and work folder under ``home``."""

    home: Path
    master_port: int = 7077
    master_ui_port: int = 8081
    worker_ui_port: int = 8082
    worker_cores: int = 2
    worker_memory: str = "3g"
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        """The ``--master`` of a driver that runs on this cluster."""
        return f"spark://{HOST}:{self.master_port}"

    @property
    def ui_url(self) -> str:
        """The master's web UI (and its ``/json/`` state)."""
        return f"http://{HOST}:{self.master_ui_port}"

    @property
    def work_dir(self) -> Path:
        """Where the worker keeps each application's executor folders and logs."""
        return self.home / "work"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [spark_class(), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=worker_environment(),
                cwd=self.home,  # not the checkout
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def start(self, timeout: float = 90) -> None:
        """Start the master, then the worker; return once the worker is registered."""
        self._spawn(
            "master",
            [MASTER_CLASS, "--host", HOST, "--port", str(self.master_port),
             "--webui-port", str(self.master_ui_port)],
        )  # fmt: skip
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "worker",
            [WORKER_CLASS, self.master_url, "--host", HOST, "--cores", str(self.worker_cores),
             "--memory", self.worker_memory, "--webui-port", str(self.worker_ui_port),
             "--work-dir", str(self.work_dir)],
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, name in zip(self.processes, ("master", "worker"), strict=True):
                if process.poll() is not None:
                    self.stop()
                    raise ClusterDidNotStart(
                        f"the Spark {name} exited with code {process.returncode}:\n"
                        + connect_server.log_tail(self.home / f"{name}.log")
                    )
            if self.alive_workers() >= 1:
                return
            time.sleep(0.5)
        self.stop()
        raise ClusterDidNotStart(
            f"no worker registered with {self.master_url} in {timeout:.0f}s:\n"
            + connect_server.log_tail(self.home / "worker.log")
        )

    def state(self) -> dict[str, object]:
        """The master's JSON state: workers, active and completed applications."""
        return _get_json(f"{self.ui_url}/json/")

    def alive_workers(self) -> int:
        """How many workers the master sees as ALIVE (0 while it is not answering)."""
        try:
            workers = self.state().get("workers", [])
        except OSError:
            return 0
        if not isinstance(workers, list):
            return 0
        return sum(1 for w in workers if isinstance(w, dict) and w.get("state") == "ALIVE")

    def stop(self) -> None:
        """Stop the worker, then the master (SIGTERM, SIGKILL after 20 s)."""
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()


def server_environment(python: str = SYSTEM_PYTHON) -> dict[str, str]:
    """The Connect server's environment on a cluster: its executors' Python is ``python``."""
    if not python:
        raise ClusterDidNotStart(
            f"no {_PYTHON_NAME} outside the virtual environment for the executors"
        )
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYTHONPATH")}
    env["PYSPARK_PYTHON"] = python
    env["SPARK_LOCAL_IP"] = HOST
    return env


def main(argv: list[str] | None = None) -> int:
    """``make cluster``: master, worker and a Connect server on it, until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.spark_cluster", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="logs and work folder")
    parser.add_argument("--connect-port", type=int, default=connect_server.DEFAULT_PORT)
    parser.add_argument("--cores", type=int, default=2, help="the worker's cores (2)")
    parser.add_argument("--memory", default="3g", help="the worker's memory (3g)")
    parser.add_argument("--python", default=SYSTEM_PYTHON, help="the executors' Python")
    args = parser.parse_args(argv)

    cluster = StandaloneCluster(args.home, worker_cores=args.cores, worker_memory=args.memory)
    cluster.start()
    print(f"Spark master {cluster.master_url}, UI {cluster.ui_url}", flush=True)
    settings = Settings.from_env(spark_master=cluster.master_url, spark_remote="")
    log_path = args.home / "connect-server.log"
    env = server_environment(args.python)
    token = env.setdefault(connect_server.TOKEN_ENV, secrets.token_urlsafe(24))
    server = connect_server.start(settings, log_path, port=args.connect_port, env=env)
    try:
        connect_server.wait_ready(server, log_path, port=args.connect_port)
        url = connect_server.remote_url(port=args.connect_port)
        print(f"Spark Connect server {url} on the cluster (log {log_path})", flush=True)
        conn = {"conn_type": "spark_connect", "host": "localhost", "port": args.connect_port,
                "password": token, "extra": {"ship_code": True}}  # fmt: skip
        print(f"AIRFLOW_CONN_SPARK_DEFAULT='{json.dumps(conn)}'", flush=True)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        connect_server.stop(server)
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
