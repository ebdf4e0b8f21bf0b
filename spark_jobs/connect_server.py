"""A long-lived Spark Connect server for the lakehouse jobs: one warm JVM instead of one per task.

    python -m spark_jobs.connect_server                 # 127.0.0.1:15002, local[*], foreground
    python -m spark_jobs.connect_server --port 15010 --master spark://127.0.0.1:7077

A job whose environment has ``SPARK_REMOTE=sc://localhost:<port>`` builds a Spark Connect
session (``spark_jobs.session.build_spark``): its process holds only the client, so it
starts in about a second and every query runs in the server's JIT-warm JVM, with the
Delta log cache of the jobs before it. The server gets the lakehouse settings of
``session_conf`` (Delta, UTC, jars from the local cache, S3A); Delta commands go through
SQL, so no Delta Connect plugin is needed.

The server binds to 127.0.0.1 unless told otherwise and, when
``SPARK_CONNECT_AUTHENTICATE_TOKEN`` is set, refuses every client without that token. The
token and any S3 secret reach the server's JVM through its environment, never its
command line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from spark_jobs.config import DEFAULT_CONNECT_PORT, Settings
from spark_jobs.session import prepare_event_log, session_conf

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = DEFAULT_CONNECT_PORT
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"
# S3 secrets stay off the command line: S3A's default credential chain reads them from
# the AWS_* variables of the server's environment.
_SECRET_KEYS = (
    "spark.hadoop.fs.s3a.access.key",
    "spark.hadoop.fs.s3a.secret.key",
    "spark.hadoop.fs.s3a.aws.credentials.provider",
)


class ServerDidNotStart(RuntimeError):
    """The Spark Connect server exited or never opened its port."""


def spark_submit() -> str:
    """The spark-submit of the installed pyspark (the project's virtual environment)."""
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def remote_url(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """The ``SPARK_REMOTE`` URL of a server; loopback is named ``localhost``.

    pyspark sends a token over a local (loopback-only) channel only when the host is
    ``localhost``; any other name needs TLS.
    """
    name = "localhost" if host in ("127.0.0.1", "localhost", "::1") else host
    return f"sc://{name}:{port}"


def server_command(
    settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> list[str]:
    """The spark-submit command line that runs the server with the lakehouse settings."""
    conf = session_conf(settings)
    prepare_event_log(settings)
    jars = conf.pop("spark.jars")
    memory = conf.pop("spark.driver.memory")
    for key in _SECRET_KEYS:
        conf.pop(key, None)
    conf.update(
        {
            "spark.connect.grpc.binding.address": host,
            "spark.connect.grpc.binding.port": str(port),
        }
    )
    if settings.spark_master.startswith("local") or _on_loopback(settings.spark_master):
        conf.setdefault("spark.driver.bindAddress", "127.0.0.1")
        conf.setdefault("spark.driver.host", "127.0.0.1")
    command = [
        spark_submit(),
        "--master",
        settings.spark_master,
        "--class",
        SERVER_CLASS,
        "--name",
        "lakehouse-connect",
        "--jars",
        jars,
        "--driver-memory",
        memory,
    ]
    for key, value in sorted(conf.items()):
        command += ["--conf", f"{key}={value}"]
    return command


def _on_loopback(master: str) -> bool:
    """True for a cluster master on this machine's loopback (its driver stays there too)."""
    return any(name in master for name in ("//127.0.0.1:", "//localhost:"))


def server_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: the venv's Python for its workers, secrets from ``base``."""
    env = dict(os.environ if base is None else base)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.spark_master.startswith("local"):
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.pop("SPARK_REMOTE", None)  # the server is the session, not a client of one
    env.pop("PYSPARK_GATEWAY_PORT", None)  # nor a spark-submitted driver's child
    if settings.s3.access_key and settings.s3.secret_key:
        env["AWS_ACCESS_KEY_ID"] = settings.s3.access_key
        env["AWS_SECRET_ACCESS_KEY"] = settings.s3.secret_key
    return env


def start(
    settings: Settings,
    log_path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the server in the background, its output in ``log_path``; see ``wait_ready``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            server_command(settings, host, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_environment(settings, env),
            start_new_session=True,  # stopped as a process group with its JVM
        )


def wait_ready(
    process: subprocess.Popen[bytes],
    log_path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    timeout: float = 120,
) -> None:
    """Return once the server accepts connections; raise with its log's tail if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerDidNotStart(
                f"the Spark Connect server exited with code {process.returncode}:\n"
                + log_tail(log_path)
            )
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise ServerDidNotStart(
        f"the Spark Connect server did not open {host}:{port} in {timeout:.0f}s:\n"
        + log_tail(log_path)
    )


def stop(process: subprocess.Popen[bytes], grace_seconds: float = 30) -> None:
    """Stop a server started by ``start``: SIGTERM its process group, SIGKILL after the grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a server's log, for an error message (the JVM says why it died)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground until it is stopped (Ctrl-C, SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m spark_jobs.connect_server", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="gRPC port (15002)")
    parser.add_argument(
        "--master", default=None, help="Spark master (default: $SPARK_MASTER, else local[*])"
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env(spark_master=args.master, spark_remote="")
    print(f"Spark Connect server on {remote_url(args.host, args.port)}", flush=True)
    if not os.environ.get(TOKEN_ENV):
        print(f"warning: {TOKEN_ENV} is not set, so any local client may connect", flush=True)
    command = server_command(settings, args.host, args.port)
    return subprocess.call(command, env=server_environment(settings))


if __name__ == "__main__":
    sys.exit(main())
