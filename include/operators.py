"""The two operators the lakehouse DAGs are made of.

``LakehouseSparkSubmitOperator`` runs one ``spark_jobs.jobs.<job>``: on the Spark Connect
server of the ``spark_default`` connection when that is a ``spark_connect`` connection (the
task starts no JVM), else through the Spark provider's spark-submit (the connection
decides ``local[*]`` or a cluster master). It turns the jobs' exit codes into Airflow
outcomes (a failed gate or bad input fails at once, without retries) and puts the
published Delta version and row counts on the task's Asset events. ``LandingDaySensor``
waits for a landing date's files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from spark_jobs.cli import EXIT_BAD_INPUT, EXIT_GATE_FAILED
from spark_jobs.config import DEFAULT_CONNECT_PORT, PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from pydantic import JsonValue

INDEX_TAIL_BYTES = 256 * 1024
# A connection of this type (the Spark provider's Spark Connect connection) runs the
# jobs on that server instead of spark-submitting them.
CONNECT_CONN_TYPE = "spark_connect"
KILL_GRACE_SECONDS = 30


def job_application(job: str) -> str:
    """Absolute path of a job module, the file spark-submit runs."""
    return str(PROJECT_ROOT / "spark_jobs" / "jobs" / f"{job}.py")


class LakehouseSparkSubmitOperator(SparkSubmitOperator):
    """spark-submit one lakehouse job (``spark_jobs/jobs/<job>.py --root R ...``) in client mode.

    On success, every outlet Asset whose URI is a Delta table gets an event carrying
    that table's new version and the commit's row counts; with ``published_training_set``
    (a template: the name is known at run time) that training set's commit is recorded
    on every outlet instead. Arguments rendered to an empty ``--option=``
    are dropped, so optional Params can be left empty.
    """

    template_fields: Sequence[str] = (
        *SparkSubmitOperator.template_fields,
        "published_training_set",
    )

    def __init__(
        self,
        *,
        job: str,
        lakehouse_root: str,
        job_args: Sequence[str],
        conn_id: str = "spark_default",
        aws_conn_id: str = "aws_default",
        published_training_set: str | None = None,
        **kwargs: Any,  # passed on to the Airflow operator
    ) -> None:
        settings = Settings.from_env()
        kwargs.setdefault("driver_memory", settings.driver_memory)
        super().__init__(
            application=job_application(job),
            application_args=["--root", lakehouse_root, *job_args],
            conn_id=conn_id,
            deploy_mode="client",
            name=f"lakehouse-{job}",
            # The driver JVM is already running when the job's session builder runs, so
            # JVM options and the Delta jars must be given to spark-submit itself.
            conf={
                "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
                "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
            },
            **kwargs,
        )
        self.job = job
        self.lakehouse_root = lakehouse_root
        self.aws_conn_id = aws_conn_id
        self.published_training_set = published_training_set

    def execute(self, context: Context) -> None:
        """Run the job, map its exit code, then record what it published on the outlets.

        A ``spark_connect`` connection runs the job as a Spark Connect client of that
        server (no JVM in the task); any other Spark connection spark-submits it.
        """
        self.application_args = [
            arg for arg in self.application_args or [] if not _is_empty_option(arg)
        ]
        # Who runs the job, for its ops.stage_runs row (spark_jobs.ops.metrics).
        self.env_vars = {**(self.env_vars or {}), **run_identity(context)}
        connection = self._connection_of(self._conn_id)
        if connection is not None and connection.conn_type == CONNECT_CONN_TYPE:
            self._run_on_connect(connection)
        else:
            self._spark_submit(context)
        self._record_outlet_events(context)

    @staticmethod
    def _connection_of(conn_id: str) -> Any:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            return None

    def _spark_submit(self, context: Context) -> None:
        from spark_jobs.session import cached_jars

        settings = Settings.from_env(lakehouse_root=self.lakehouse_root)
        self.jars = ",".join(cached_jars(settings.jars_dir, settings.is_object_store))
        self.env_vars = {**(self.env_vars or {}), **_job_environment(self.lakehouse_root)}
        self._hook = self._get_hook()
        # The job's session builder applies SPARK_MASTER over the submitter's --master,
        # so hand it the master this connection resolved to.
        master = self._hook._connection["master"]
        self.env_vars["SPARK_MASTER"] = master
        if settings.is_object_store:
            self.env_vars.update(self._object_store_environment(master))
        try:
            super().execute(context)
        except AirflowException as exc:
            self._raise_for_exit(self._exit_code(), str(exc))
            raise

    def _run_on_connect(self, connection: Any) -> None:
        """Run ``python -m spark_jobs.jobs.<job>`` as a client of the connection's server.

        The token (the connection's password) goes to the job's environment, never its
        command line or URL; the job's output streams into the task log.
        """
        url, env = self._connect_target(connection)
        command = [
            sys.executable,
            "-m",
            f"spark_jobs.jobs.{self.job}",
            *[str(a) for a in self.application_args or []],
        ]
        self.log.info("running on Spark Connect %s: %s", url, " ".join(command[1:]))
        self._job_process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(PROJECT_ROOT),
        )
        assert self._job_process.stdout is not None
        tail: list[str] = []
        for raw in self._job_process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            self.log.info("%s", line)
            tail = [*tail[-19:], line]
        code = self._job_process.wait()
        if code != 0:
            detail = "\n".join(tail)
            self._raise_for_exit(code, detail)
            raise AirflowException(
                f"{self.task_id}: spark_jobs.jobs.{self.job} exited with code {code}\n{detail}"
            )

    def _connect_target(self, connection: Any) -> tuple[str, dict[str, str]]:
        """The ``SPARK_REMOTE`` URL of a ``spark_connect`` connection and the job's environment.

        ``ship_code`` in the connection's extra makes the job upload the ``spark_jobs``
        archive to its session (a cluster's executors do not have the package).
        """
        host = connection.host or "localhost"
        if "://" in host:
            host = host.split("://", 1)[1]
        url = f"sc://{host.rstrip('/')}:{connection.port or DEFAULT_CONNECT_PORT}"
        env = {**os.environ, **(self.env_vars or {}), **_job_environment(self.lakehouse_root)}
        env["SPARK_REMOTE"] = url
        if _extra(connection).get("ship_code"):  # a cluster: executors lack the package
            env["LAKEHOUSE_SHIP_CODE"] = "true"
        if connection.password:
            from airflow.sdk.log import mask_secret

            mask_secret(connection.password, "SPARK_CONNECT_AUTHENTICATE_TOKEN")
            env["SPARK_CONNECT_AUTHENTICATE_TOKEN"] = connection.password
        if Settings.from_env(lakehouse_root=self.lakehouse_root).is_object_store:
            env.update(object_store_environment(self.aws_conn_id))
        return url, env

    def on_kill(self) -> None:
        """Stop the job: SIGTERM (a Connect client interrupts its queries), then SIGKILL."""
        process = getattr(self, "_job_process", None)
        if process is None:
            super().on_kill()
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()

    def _raise_for_exit(self, code: int | None, detail: str) -> None:
        """Turn the exit codes that must not be retried into a failed task."""
        if code == EXIT_GATE_FAILED:
            raise AirflowFailException(
                f"{self.task_id}: the validation gate rejected the staged rows; nothing was "
                f"published. Open the report named below, fix the data or the suite, then "
                f"clear this task.\n{detail}"
            ) from None
        if code == EXIT_BAD_INPUT:
            raise AirflowFailException(
                f"{self.task_id}: spark_jobs.{self.job} rejected its input (exit 2); check "
                f"the arguments and parameters of this run.\n{detail}"
            ) from None

    def _object_store_environment(self, master: str) -> dict[str, str]:
        # On YARN and Kubernetes the Spark hook copies env_vars into --conf options of
        # the logged spark-submit command line: secrets never go that way.
        if "yarn" in master or "k8s" in master:
            self.log.warning(
                "master %s: S3 credentials are not forwarded (the Spark hook would put "
                "them on the command line); the job uses the cluster's own AWS credentials",
                master,
            )
            return {}
        return object_store_environment(self.aws_conn_id)

    def _exit_code(self) -> int | None:
        process = getattr(self._hook, "_submit_sp", None)
        return None if process is None else process.returncode

    def _record_outlet_events(self, context: Context) -> None:
        from include.delta_log import latest_commit
        from spark_jobs.catalog import training_path

        for asset in self.outlets:
            path: str | None
            if self.published_training_set:
                path = training_path(self.lakehouse_root, self.published_training_set)
            else:
                path = _table_path_of(getattr(asset, "uri", ""))
            if path is None:
                continue
            commit = latest_commit(path)
            if commit is None:
                continue
            extra = commit.as_event_extra()
            extra.update(
                table_path=path,
                gate="passed",
                logical_date=context.get("ds"),
                run_id=context["run_id"],
            )
            validation = latest_validation(self.lakehouse_root, asset.name)
            if validation is not None:
                extra["gate_report"] = validation
            context["outlet_events"][asset].extra = extra
            self.log.info("%s is now at Delta version %s", asset.name, commit.version)


def latest_validation(root: str, table: str) -> dict[str, JsonValue] | None:
    """The newest gate validation of ``table`` in ``<root>/_reports/index.jsonl`` (local roots).

    Only the end of the index is read: it grows by one line per validation.
    """
    from spark_jobs.catalog import reports_path

    index = Path(reports_path(root), "index.jsonl")
    if "://" in root or not index.is_file():
        return None
    with index.open("rb") as handle:
        handle.seek(max(0, index.stat().st_size - INDEX_TAIL_BYTES))
        lines = handle.read().decode("utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # the first line of the tail may be cut
        if entry.get("table") == table:
            return {
                "success": entry.get("success"),
                "evaluated": entry.get("evaluated"),
                "warned": entry.get("warned"),
                "run_key": entry.get("run_key"),
                "report": str(Path(reports_path(root), str(entry.get("report")))),
            }
    return None


def _is_empty_option(arg: object) -> bool:
    """True for ``--option=`` with nothing after the ``=`` (an optional value left empty)."""
    text = str(arg)
    return text.startswith("--") and text.endswith("=") and text.count("=") == 1


def _table_path_of(uri: str) -> str | None:
    """The Spark path of an Asset URI that names a table (file:// or s3://), else None."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    if uri.startswith("s3://"):
        return "s3a://" + uri[len("s3://") :]
    return None


def object_store_environment(aws_conn_id: str = "aws_default") -> dict[str, str]:
    """S3 credentials and endpoint for a job, as environment variables, from one source.

    The Airflow connection ``aws_conn_id`` (the one the landing sensor lists S3 with)
    when it exists: its credentials through the Amazon provider's hook, its endpoint from
    the extra ``endpoint_url``. Without the connection, the worker's environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``LAKEHOUSE_S3_ENDPOINT``).
    Either way the secret is registered with Airflow's secrets masker, so task logs show
    ``***`` in its place. Only for the job's environment: never a command-line option.
    """
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret

    try:
        AwsBaseHook.get_connection(aws_conn_id)
    except AirflowNotFoundException:
        s3 = Settings.from_env().s3
        if s3.secret_key:
            mask_secret(s3.secret_key, "AWS_SECRET_ACCESS_KEY")
        return {}  # spark-submit inherits the worker's environment as it is
    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
    credentials = hook.get_credentials()
    if credentials.token:
        # Temporary credentials need a session token, which the job's S3A settings do
        # not take; the job then resolves its own through the default AWS chain.
        mask_secret(credentials.token, "AWS_SESSION_TOKEN")
        return {}
    mask_secret(credentials.secret_key, "AWS_SECRET_ACCESS_KEY")
    environment = {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
    }
    endpoint = hook.conn_config.get_service_endpoint_url("s3")
    if endpoint:
        environment["LAKEHOUSE_S3_ENDPOINT"] = endpoint
    if hook.conn_config.region_name:
        environment["AWS_REGION"] = hook.conn_config.region_name
    return environment


def _extra(connection: Any) -> dict[str, Any]:
    """A connection's extra as a dict; an extra that is not a JSON object counts as empty."""
    try:
        extra = connection.extra_dejson
    except (AttributeError, ValueError):
        return {}
    return extra if isinstance(extra, dict) else {}


def run_identity(context: Context) -> dict[str, str]:
    """The DAG, run, task and try of a task, as the environment a job reads them from."""
    ti = context.get("ti")
    dag_run = context.get("dag_run")
    identity = {}
    if ti is not None:
        identity = {
            "LAKEHOUSE_DAG_ID": str(ti.dag_id),
            "LAKEHOUSE_TASK_ID": str(ti.task_id),
            "LAKEHOUSE_TRY_NUMBER": str(ti.try_number),
        }
    if dag_run is not None:
        identity["LAKEHOUSE_DAG_RUN_ID"] = str(dag_run.run_id)
    return identity


def _job_environment(lakehouse_root: str) -> dict[str, str]:
    """Environment for spark-submit: the project importable, the venv's Python and tools."""
    venv_bin = str(Path(sys.executable).parent)
    pythonpath = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {
        "PYTHONPATH": pythonpath,
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "LAKEHOUSE_ROOT": lakehouse_root,
        # A local-mode driver binds to loopback; a cluster deployment sets its own address.
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    }


class LandingDaySensor(BaseSensorOperator):
    """Wait until the landing folder ``dt=<ds>`` holds at least one ``.jsonl`` file.

    Local folders are listed directly; ``s3a://`` roots through the amazon provider's
    S3 hook (connection ``aws_default``). Runs in reschedule mode: no worker slot is
    held while waiting.
    """

    template_fields: Sequence[str] = ("landing_date",)

    def __init__(
        self,
        *,
        lakehouse_root: str,
        landing_date: str = "{{ ds }}",
        aws_conn_id: str = "aws_default",
        **kwargs: Any,  # passed on to the Airflow operator
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.lakehouse_root = lakehouse_root
        self.landing_date = landing_date
        self.aws_conn_id = aws_conn_id

    def _folder(self) -> str:
        from spark_jobs.catalog import landing_day_path

        return landing_day_path(self.lakehouse_root, self.landing_date)

    def poke(self, context: Context) -> bool:
        """True once the landing date's folder holds a landing file."""
        from spark_jobs.catalog import is_landing_file

        folder = self._folder()
        self.log.info("looking for landing files in %s", folder)
        if folder.startswith(("s3a://", "s3://")):
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            bucket, prefix = S3Hook.parse_s3_url("s3://" + folder.split("://", 1)[1])
            keys = S3Hook(aws_conn_id=self.aws_conn_id).list_keys(
                bucket_name=bucket, prefix=prefix.rstrip("/") + "/"
            )
            return any(is_landing_file(k.rsplit("/", 1)[-1]) for k in keys or [])
        path = Path(folder)
        # The files ingest would read: a hidden marker of an unfinished upload is not one.
        if not path.is_dir():
            return False
        return any(p.is_file() and is_landing_file(p.name) for p in path.iterdir())

    def execute(self, context: Context) -> None:
        """Poke until files arrive; on timeout, say which folder stayed empty and what to do."""
        try:
            super().execute(context)
        except AirflowSensorTimeout:
            raise AirflowSensorTimeout(
                f"no landing files (*.jsonl, *.jsonl.gz) for {self.landing_date} in "
                f"{self._folder()} after {self.timeout:.0f}s: check the order system's export "
                "for that day, then clear this task to wait again"
            ) from None
