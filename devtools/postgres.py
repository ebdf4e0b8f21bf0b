"""A throw-away PostgreSQL server on loopback for Airflow's metadata DB (tests, `make airflow`).

    python -m devtools.postgres                 # 127.0.0.1:5433, data under .postgres/

uses the server binaries of the OS package (Debian's ``postgresql``: ``initdb``,
``pg_ctl``), makes a cluster in a folder of its own with a generated password
(``scram-sha-256``, TCP on 127.0.0.1 only, its socket inside that folder), creates the
``airflow`` database and prints the SQLAlchemy URL to give Airflow as
``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``. PostgreSQL refuses to run as root, so under root
it runs as the ``postgres`` system user the package creates.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from spark_jobs.config import PROJECT_ROOT

HOST = "127.0.0.1"
DEFAULT_HOME = PROJECT_ROOT / ".postgres"
DATABASE = "airflow"
USER = "airflow"


class PostgresDidNotStart(RuntimeError):
    """No server binaries, or the server did not initialise or start."""


def server_binaries() -> Path:
    """The folder with ``initdb`` and ``pg_ctl`` (newest installed major version)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not versions:
        raise PostgresDidNotStart(
            "no PostgreSQL server binaries (pg_ctl): install the OS package `postgresql`"
        )
    return Path(versions[-1]).parent


@dataclass
class LocalPostgres:
    """One PostgreSQL cluster in ``home``, serving the ``airflow`` database on ``port``."""

    home: Path
    port: int = 5433
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``airflow`` database."""
        return f"postgresql+psycopg2://{USER}:{self.password}@{HOST}:{self.port}/{DATABASE}"

    def _run(self, *args: str, env: dict[str, str] | None = None) -> None:
        command = [str(server_binaries() / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses root; run as the package's system user
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **(env or {})}
        )
        if result.returncode != 0:
            raise PostgresDidNotStart(
                f"{args[0]} failed ({result.returncode}): {result.stderr[-2000:] or result.stdout}"
            )

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(path, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        """Initialise the cluster on first use, start it, create the database."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._own(self.home)
        password_file = self.home / "password"
        if not (self.data_dir / "PG_VERSION").exists():
            password_file.write_text(self.password + "\n")
            password_file.chmod(0o600)
            self._own(password_file)
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", USER, "--auth=scram-sha-256",
                f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8",
            )  # fmt: skip
        else:
            self.password = password_file.read_text().strip()
        options = f"-c listen_addresses={HOST} -p {self.port} -k {self.home}"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-o", options, "-l",
            str(self.home / "postgres.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        self._create_database()

    def _create_database(self) -> None:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                connection = psycopg2.connect(
                    host=HOST, port=self.port, user=USER, password=self.password, dbname="postgres"
                )
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        connection.close()

    def stop(self) -> None:
        """Stop the server (fast shutdown); the data stays for the next start."""
        with contextlib.suppress(PostgresDidNotStart):
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")


def main(argv: list[str] | None = None) -> int:
    """The server in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.postgres", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    parser.add_argument("--port", type=int, default=5433)
    args = parser.parse_args(argv)
    server = LocalPostgres(args.home, port=args.port)
    server.start()
    print(f"PostgreSQL on {HOST}:{args.port}, data in {server.data_dir}")
    print(f"export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN='{server.url}'", flush=True)
    stopped = False

    def stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopped:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
