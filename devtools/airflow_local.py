"""A local Airflow for the lakehouse: configure, start, stop, and drive it over its REST API.

``python -m devtools.airflow_local start`` runs ``airflow db migrate`` and starts the API
server (http://127.0.0.1:8080), the scheduler (LocalExecutor), the DAG processor and the
triggerer with this project's ``dags/`` and ``plugins/``, a SQLite metadata DB under
``.airflow/`` (``--database-url``: PostgreSQL instead, e.g. ``python -m devtools.postgres``),
and a Spark Connect server on 127.0.0.1:15002 (``spark_jobs.connect_server``) that the
``spark_default`` connection points at, so every task runs its job in that one warm JVM.
``--spark-submit`` starts no server and gives each task a ``local[*]`` JVM of its own; a set
``AIRFLOW_CONN_SPARK_DEFAULT`` (a cluster master, another server) wins over both. It
stays in the foreground until Ctrl-C unless ``--detach`` is given; ``stop`` ends what a
detached start left running.

Login: user ``admin`` (``LAKEHOUSE_AIRFLOW_USER``) with ``LAKEHOUSE_AIRFLOW_PASSWORD``,
or a password generated on the first start, printed, and kept in
``.airflow/passwords.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from spark_jobs import connect_server
from spark_jobs.config import DEFAULT_LAKEHOUSE_ROOT, PROJECT_ROOT, Settings

DEFAULT_HOME = PROJECT_ROOT / ".airflow"
DEFAULT_PORT = 8080
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
LOCAL_SPARK_CONNECTION = json.dumps({"conn_type": "spark", "host": "local[*]"})
TERMINAL_RUN_STATES = ("success", "failed")


class AirflowLocalError(RuntimeError):
    """The local Airflow could not be started or did not answer as expected."""


@dataclass
class AirflowLocal:
    """One local Airflow installation: its home folder, port and lakehouse root."""

    home: Path = DEFAULT_HOME
    lakehouse_root: str = str(DEFAULT_LAKEHOUSE_ROOT)
    port: int = DEFAULT_PORT
    user: str = field(default_factory=lambda: os.environ.get("LAKEHOUSE_AIRFLOW_USER", "admin"))
    # How often the DAG processor looks for new files; short for tests.
    dag_refresh_seconds: int = 30
    # Run the jobs on a Spark Connect server started with Airflow (one warm JVM), not
    # one spark-submit JVM per task. Ignored when AIRFLOW_CONN_SPARK_DEFAULT is set.
    spark_connect: bool = True
    connect_port: int = connect_server.DEFAULT_PORT
    # The metadata DB: a SQLAlchemy URL (PostgreSQL in production shape), else SQLite
    # under the home folder.
    database_url: str | None = None

    @property
    def base_url(self) -> str:
        """Where the API server and UI answer."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def passwords_file(self) -> Path:
        """SimpleAuthManager's password file (plain JSON, inside the git-ignored home)."""
        return self.home / "passwords.json"

    def _secrets(self) -> dict[str, str]:
        # Every component must sign and check tokens with the same keys; generated once,
        # and a key a newer version needs is added to a home made before it.
        path = self.home / "secrets.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        sizes = {
            "jwt_secret": 64,  # HS512 signs the tokens: its key should be at least 64 bytes
            "secret_key": 32,
            "spark_connect_token": 32,  # asked of the jobs by the local Connect server
        }
        missing = {k: secrets.token_urlsafe(n) for k, n in sizes.items() if k not in values}
        if missing:
            values.update(missing)
            path.write_text(json.dumps(values))
            path.chmod(0o600)
        return values

    def connect_token(self) -> str:
        """The token the local Spark Connect server asks of its clients (kept in the home)."""
        return self._secrets()["spark_connect_token"]

    @property
    def uses_connect_server(self) -> bool:
        """True when this Airflow runs its jobs on the Spark Connect server it starts."""
        return self.spark_connect and "AIRFLOW_CONN_SPARK_DEFAULT" not in os.environ

    def spark_connection(self) -> str:
        """The ``spark_default`` connection of this installation, as Airflow's JSON form."""
        if not self.uses_connect_server:
            return os.environ.get("AIRFLOW_CONN_SPARK_DEFAULT", LOCAL_SPARK_CONNECTION)
        return json.dumps(
            {
                "conn_type": "spark_connect",
                "host": "localhost",
                "port": self.connect_port,
                "password": self.connect_token(),
            }
        )

    def password(self) -> str:
        """The login password: from the environment, the password file, or newly generated."""
        wanted = os.environ.get("LAKEHOUSE_AIRFLOW_PASSWORD")
        stored = json.loads(self.passwords_file.read_text()) if self.passwords_file.exists() else {}
        if wanted and stored.get(self.user) != wanted:
            stored[self.user] = wanted
        elif self.user not in stored:
            stored[self.user] = secrets.token_urlsafe(12)
        else:
            return stored[self.user]
        self.passwords_file.write_text(json.dumps(stored) + "\n")
        self.passwords_file.chmod(0o600)
        return stored[self.user]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for every Airflow process (and the Spark jobs it starts)."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if base is None else base)
        keys = self._secrets()
        venv_bin = str(Path(sys.executable).parent)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # Two cores: one Spark job at a time keeps each job fast.
                "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "2"),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_db_url(),
                "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple."
                "simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(self.dag_refresh_seconds),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW_CONN_SPARK_DEFAULT": self.spark_connection(),
                "LAKEHOUSE_ROOT": self.lakehouse_root,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p
                ),
                "PATH": os.pathsep.join([venv_bin, env.get("PATH", "")]),
            }
        )
        return env

    def metadata_db_url(self) -> str:
        """The metadata DB: ``database_url``, else SQLite in the home folder."""
        return self.database_url or f"sqlite:///{self.home / 'airflow.db'}"

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command against this installation."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.environment(),
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise AirflowLocalError(
                f"`airflow {' '.join(args)}` failed ({result.returncode}):\n"
                f"{result.stderr[-3000:] or result.stdout[-3000:]}"
            )
        return result

    def migrate(self) -> None:
        """Create or upgrade the metadata DB, and the pool the lakehouse writers share."""
        from include.dag_factory import WRITER_POOL

        self.airflow("db", "migrate")
        self.airflow(
            "pools",
            "set",
            WRITER_POOL,
            "1",
            "Tasks that write lakehouse tables: one at a time, whichever DAG or backfill",
        )

    @property
    def pids_file(self) -> Path:
        """Process ids of a detached start."""
        return self.home / "pids.json"

    def start(self) -> dict[str, subprocess.Popen[bytes]]:
        """Migrate the DB, then start every component in its own process group."""
        self.migrate()
        self.password()
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        processes = {}
        if self.uses_connect_server:
            processes["spark-connect"] = self.start_connect_server(logs / "spark-connect.log")
        for component in COMPONENTS:
            args = [sys.executable, "-m", "airflow", component]
            if component == "api-server":
                args += ["--host", "127.0.0.1", "--port", str(self.port)]
            with open(logs / f"{component}.log", "ab") as log:
                processes[component] = subprocess.Popen(
                    args,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=PROJECT_ROOT,
                )
        self.pids_file.write_text(json.dumps({c: p.pid for c, p in processes.items()}))
        return processes

    def start_connect_server(self, log_path: Path) -> subprocess.Popen[bytes]:
        """Start the Spark Connect server the jobs run on and wait until it answers."""
        settings = Settings.from_env(lakehouse_root=self.lakehouse_root, spark_remote="")
        env = {**os.environ, connect_server.TOKEN_ENV: self.connect_token()}
        process = connect_server.start(settings, log_path, port=self.connect_port, env=env)
        try:
            connect_server.wait_ready(process, log_path, port=self.connect_port)
        except connect_server.ServerDidNotStart as exc:
            _terminate_groups([process.pid], children=[process])
            raise AirflowLocalError(str(exc)) from None
        return process

    def wait_until_healthy(self, timeout: float = 180) -> None:
        """Block until the API server answers and the scheduler has a heartbeat."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health") as response:
                    health = json.load(response)
                if health.get("scheduler", {}).get("status") == "healthy":
                    return
                last = json.dumps(health)
            except (urllib.error.URLError, ConnectionError) as exc:
                last = str(exc)
            time.sleep(2)
        raise AirflowLocalError(
            f"Airflow at {self.base_url} not healthy after {timeout:.0f}s ({last}); "
            f"see the logs in {self.home / 'logs'}"
        )

    def stop(self) -> list[int]:
        """Stop the process groups a detached start recorded; returns their ids."""
        if not self.pids_file.exists():
            return []
        pids = list(json.loads(self.pids_file.read_text()).values())
        _terminate_groups(pids)
        self.pids_file.unlink()
        return pids

    def client(self) -> AirflowClient:
        """A REST client logged in as the configured user."""
        return AirflowClient(self.base_url, self.user, self.password())


def _terminate_groups(
    pids: list[int], grace_seconds: float = 20, children: Iterable[subprocess.Popen] = ()
) -> None:
    """SIGTERM every process group at once, wait for all, SIGKILL what is left.

    Children of this process are reaped while waiting: an unreaped leader would keep
    its group alive as a zombie until the grace period ran out.
    """
    for pid in pids:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        for child in children:
            child.poll()
        alive = [pid for pid in alive if _group_exists(pid)]
        if alive:
            time.sleep(0.25)
    for pid in alive:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _group_exists(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def running(airflow: AirflowLocal, timeout: float = 180) -> Iterator[AirflowLocal]:
    """Airflow started for the duration of a ``with`` block, stopped afterwards."""
    processes = airflow.start()
    try:
        airflow.wait_until_healthy(timeout)
        yield airflow
    finally:
        _terminate_groups([p.pid for p in processes.values()], children=list(processes.values()))
        airflow.pids_file.unlink(missing_ok=True)


@dataclass
class AirflowClient:
    """The few REST calls the demo and the tests need (Airflow 3 public API, JWT login)."""

    base_url: str
    user: str
    password: str
    _token: str | None = None

    def token(self) -> str:
        """A JWT access token for the user (``POST /auth/token``)."""
        if self._token is None:
            answer = self._call(
                "POST",
                "/auth/token",
                {"username": self.user, "password": self.password},
                auth=False,
            )
            self._token = answer["access_token"]
        return self._token

    def _call(self, method: str, path: str, body: object = None, auth: bool = True) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(request) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise AirflowLocalError(
                f"{method} {path} -> {exc.code}: {exc.read().decode()[:2000]}"
            ) from None
        return json.loads(text) if text else {}

    def get(self, path: str) -> dict:
        """GET a public API path (``/api/v2/...``)."""
        return self._call("GET", path)

    def post(self, path: str, body: object) -> dict:
        """POST to a public API path."""
        return self._call("POST", path, body)

    def patch(self, path: str, body: object) -> dict:
        """PATCH a public API path."""
        return self._call("PATCH", path, body)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """The DAG's details once the DAG processor has parsed it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.get(f"/api/v2/dags/{dag_id}")
            except AirflowLocalError:
                time.sleep(2)
        raise AirflowLocalError(f"DAG {dag_id} not parsed after {timeout:.0f}s")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause a DAG."""
        self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: Mapping[str, object] | None = None) -> str:
        """Trigger a manual run with ``conf`` (the Params); returns its run id."""
        run = self.post(
            f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": dict(conf or {})}
        )
        return run["dag_run_id"]

    def create_backfill(
        self,
        dag_id: str,
        from_date: str,
        to_date: str,
        reprocess_behavior: str = "none",
        max_active_runs: int = 1,
    ) -> dict:
        """Create a backfill over [from_date, to_date] (logical dates, YYYY-MM-DD)."""
        return self.post(
            "/api/v2/backfills",
            {
                "dag_id": dag_id,
                "from_date": f"{from_date}T00:00:00Z",
                "to_date": f"{to_date}T00:00:00Z",
                "reprocess_behavior": reprocess_behavior,
                "max_active_runs": max_active_runs,
                "run_backwards": False,
                "dag_run_conf": {},
            },
        )

    def dag_runs(self, dag_id: str) -> list[dict]:
        """Every run of a DAG, oldest logical date first."""
        answer = self.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=1000&order_by=logical_date")
        return answer["dag_runs"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1800) -> str:
        """Block until a run ends; returns its final state."""
        deadline = time.monotonic() + timeout
        quoted = urllib.parse.quote(run_id, safe="")
        while time.monotonic() < deadline:
            state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")["state"]
            if state in TERMINAL_RUN_STATES:
                return state
            time.sleep(3)
        raise AirflowLocalError(f"run {run_id} of {dag_id} still running after {timeout:.0f}s")

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        """Task ids of a run that failed or were not run because of a failure."""
        quoted = urllib.parse.quote(run_id, safe="")
        answer = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances")
        return [
            ti["task_id"]
            for ti in answer["task_instances"]
            if ti["state"] in ("failed", "upstream_failed")
        ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.airflow_local", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=("start", "stop", "password"))
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="AIRFLOW_HOME")
    parser.add_argument(
        "--root",
        default=os.environ.get("LAKEHOUSE_ROOT") or str(DEFAULT_LAKEHOUSE_ROOT),
        help="lakehouse root (default: $LAKEHOUSE_ROOT, else ./lakehouse)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--detach", action="store_true", help="return once healthy, leaving Airflow running"
    )
    parser.add_argument(
        "--spark-submit",
        action="store_true",
        help="spark-submit every task in its own JVM instead of running the jobs on a "
        "Spark Connect server started with Airflow",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LAKEHOUSE_AIRFLOW_DATABASE_URL") or None,
        help="metadata DB as a SQLAlchemy URL, e.g. postgresql+psycopg2://... "
        "($LAKEHOUSE_AIRFLOW_DATABASE_URL; default: SQLite under the home folder)",
    )
    return parser


def login_banner(airflow: AirflowLocal) -> str:
    """Where the UI is and how to log in."""
    return (
        f"Airflow UI: {airflow.base_url}  (user {airflow.user!r}, password "
        f"{airflow.password()!r}; kept in {airflow.passwords_file})"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: start, stop, or print the password."""
    args = _parser().parse_args(argv)
    root = args.root if "://" in args.root else str(Path(args.root).expanduser().resolve())
    airflow = AirflowLocal(
        home=args.home.resolve(),
        lakehouse_root=root,
        port=args.port,
        spark_connect=not args.spark_submit,
        database_url=args.database_url,
    )
    if args.command == "stop":
        stopped = airflow.stop()
        print(f"stopped {len(stopped)} Airflow process group(s)" if stopped else "nothing to stop")
        return 0
    if args.command == "password":
        print(login_banner(airflow))
        return 0
    if args.detach:
        airflow.start()
        airflow.wait_until_healthy()
        print(login_banner(airflow))
        print("stop it with: python -m devtools.airflow_local stop")
        return 0
    print(f"starting Airflow in {airflow.home} (logs in {airflow.home / 'logs'}) ...")
    with running(airflow):
        print(login_banner(airflow))
        print("Ctrl-C stops it.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping Airflow ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
