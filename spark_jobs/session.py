"""The one SparkSession factory: Delta, UTC, jars from the local cache, S3A when needed."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pyspark.sql import SparkSession

from spark_jobs.config import Settings

REQUIRED_JAR_PREFIXES = ("delta-spark_", "delta-storage-")
# The S3A connector and its AWS SDK bundle (~700 MB) add seconds to every JVM start;
# they are loaded only when the lakehouse lives on an object store.
S3A_JAR_PREFIXES = ("hadoop-aws-", "bundle-", "analyticsaccelerator-s3-", "wildfly-openssl-")
# SPARK_CODEGEN=off: expressions are evaluated interpreted and no query is compiled to
# Java first. ``factoryMode`` is the setting Spark's own test suites use for this.
INTERPRETED_CONF = {
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.codegen.wholeStage": "false",
}
# Spark's own values of the same settings (SPARK_CODEGEN=on sets none of them).
COMPILED_CONF = {
    "spark.sql.codegen.factoryMode": "FALLBACK",
    "spark.sql.codegen.wholeStage": "true",
}


class MissingJarsError(RuntimeError):
    """The Delta / S3A jars are not in the local cache."""


def cached_jars(jars_dir: Path, with_s3a: bool = False) -> list[str]:
    """Absolute paths of the jars in the cache, sorted; raises when Delta's are absent.

    The jars are fetched once by ``make jars`` (Maven, ``include/pom.xml``); a session
    never downloads anything at start-up. S3A jars are included only ``with_s3a``.
    """
    jars = sorted(str(p) for p in Path(jars_dir).glob("*.jar"))
    if not with_s3a:
        jars = [j for j in jars if not Path(j).name.startswith(S3A_JAR_PREFIXES)]
    names = [Path(j).name for j in jars]
    required = REQUIRED_JAR_PREFIXES + (("hadoop-aws-", "bundle-") if with_s3a else ())
    missing = [p for p in required if not any(n.startswith(p) for n in names)]
    if missing:
        raise MissingJarsError(
            f"Delta jars not found in {jars_dir} (missing {', '.join(missing)}*.jar). "
            "Run `make jars` to fetch them with Maven from include/pom.xml."
        )
    return jars


def session_settings(settings: Settings) -> dict[str, str]:
    """The settings a session may set for itself at run time, a Spark Connect client too.

    Everything else in ``session_conf`` (jars, extensions, memory, S3A) belongs to the
    JVM that runs the queries: the job's own, or the Connect server's.
    """
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        # Delta: let replaceWhere use arbitrary predicates, never widen a schema silently.
        "spark.databricks.delta.replaceWhere.dataColumns.enabled": "true",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
    }
    if not settings.codegen:
        conf.update(INTERPRETED_CONF)
    return conf


def session_conf(settings: Settings) -> dict[str, str]:
    """The lakehouse's Spark settings: Delta, UTC, jars from the cache, S3A when needed.

    The one list for an embedded session, a spark-submit driver and a Spark Connect
    server (``spark_jobs.connect_server``).
    """
    conf: dict[str, str] = {
        **session_settings(settings),
        "spark.jars": ",".join(cached_jars(settings.jars_dir, settings.needs_s3a)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.driver.memory": settings.driver_memory,
        # Python workers run the driver's interpreter (the project venv), not whatever
        # `python3` is first on PATH.
        "spark.pyspark.python": sys.executable,
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        # Rebuilding a table's snapshot from its log is a Spark job over this many
        # partitions (Delta's default, 50, makes every read and commit of a small table
        # schedule 50 tasks, most of them empty).
        "spark.databricks.delta.snapshotPartitions": str(settings.shuffle_partitions),
        # Java 17 opens needed by Spark's off-heap code paths.
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC -XX:+UseG1GC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    }
    if settings.needs_s3a:
        conf.update(_s3a_conf(settings))
    if event_log := settings.event_log_dir:
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = event_log
    return conf


def prepare_event_log(settings: Settings) -> None:
    """Create a local event log folder: Spark refuses to start when it is missing."""
    event_log = settings.event_log_dir
    if event_log and "://" not in event_log.removeprefix("file://"):
        Path(event_log.removeprefix("file://")).mkdir(parents=True, exist_ok=True)


def build_spark(
    settings: Settings | None = None,
    app_name: str = "purchase-lakehouse",
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Return the process's SparkSession, creating it with the lakehouse defaults.

    With ``SPARK_REMOTE`` (``settings.spark_remote``) the session is a Spark Connect
    client of a running server, which holds the JVM, the jars and the Delta extension;
    the job's process then starts no JVM at all. Under spark-submit the master comes
    from the submitter; the Delta extension, UTC session time zone and S3A settings are
    applied either way.
    """
    settings = settings or Settings.from_env()
    if settings.spark_remote:
        return _remote_session(settings.spark_remote, settings, app_name)
    if os.environ.get("SPARK_REMOTE") == "":
        # Set but empty means "no server" here, as in Settings; pyspark would refuse a
        # master beside any SPARK_REMOTE at all.
        del os.environ["SPARK_REMOTE"]
    conf = session_conf(settings)
    if extra_conf:
        conf.update(extra_conf)
    if conf.get("spark.eventLog.enabled") == "true":
        prepare_event_log(settings)
    if under_spark_submit():
        # spark-submit already started the JVM with its --master and --jars; static
        # settings set here would be ignored or, for the master, silently override it.
        for static_key in ("spark.jars", "spark.driver.memory"):
            conf.pop(static_key)
    if settings.spark_master.startswith("local") and not under_spark_submit():
        # An embedded session serves nothing beyond this machine: bind to loopback.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        conf.setdefault("spark.driver.bindAddress", "127.0.0.1")
        conf.setdefault("spark.driver.host", "127.0.0.1")
    # At DEBUG, py4j logs every command sent to the JVM, S3 secret keys of the conf
    # included: it never logs below INFO, whatever LAKEHOUSE_LOG_LEVEL asks.
    py4j_log = logging.getLogger("py4j")
    if py4j_log.getEffectiveLevel() < logging.INFO:
        py4j_log.setLevel(logging.INFO)
    builder = SparkSession.builder.appName(app_name)
    if settings.spark_master and not under_spark_submit():
        builder = builder.master(settings.spark_master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _remote_session(url: str, settings: Settings, app_name: str) -> SparkSession:
    """A Spark Connect session on ``url``, with the lakehouse's session settings.

    The client needs neither the jar cache nor the S3A settings: the server has them.
    The server's token, when it has one, comes from ``SPARK_CONNECT_AUTHENTICATE_TOKEN``
    (read by pyspark), never from the URL that logs and process lists show.
    """
    from spark_jobs.cli import ServiceUnavailable

    try:
        spark = SparkSession.builder.remote(url).appName(app_name).getOrCreate()
        for key, value in session_settings(settings).items():  # the first calls to the server
            spark.conf.set(key, value)
        if settings.ship_code:
            _ship_code(spark)
    except Exception as exc:  # grpc and pyspark raise several kinds; all mean the same
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailable(
            f"cannot use the Spark Connect server at {url} ({reason}); "
            "check that it runs (python -m spark_jobs.connect_server), SPARK_REMOTE, and "
            "that SPARK_CONNECT_AUTHENTICATE_TOKEN holds its token"
        ) from None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt_and_exit(spark))
    # Release the server-side session when the job ends: its cached and checkpointed
    # frames are freed then, not an idle timeout later.
    atexit.register(_release, spark)
    return spark


def _ship_code(spark: SparkSession) -> None:
    """Upload the ``spark_jobs`` archive to this Connect session (``spark_jobs.artifacts``)."""
    from spark_jobs.artifacts import package_archive

    with tempfile.TemporaryDirectory(prefix="lakehouse-code-") as folder:
        spark.addArtifacts(str(package_archive(Path(folder))), pyfile=True)


def _release(spark: SparkSession) -> None:
    try:
        spark.stop()
    except Exception as exc:  # the server may be gone; nothing is left to free then
        logging.getLogger("spark_jobs").debug("could not release the Connect session: %s", exc)


def _interrupt_and_exit(spark: SparkSession) -> Callable[[int, FrameType | None], None]:
    """A SIGTERM handler for a Connect client: stop its queries on the server, then exit.

    Without it a killed job's last query would run on in the server after the process
    is gone. The exit unwinds the job, so its writer lock is released (exit code 143).
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("spark_jobs").warning("SIGTERM: interrupting this job's queries")
        try:
            spark.interruptAll()
        except Exception as exc:  # the server may be gone already
            logging.getLogger("spark_jobs").warning("could not interrupt: %s", exc)
        raise SystemExit(128 + signum)

    return handler


def under_spark_submit() -> bool:
    """True when this Python process was launched by spark-submit (its JVM already runs)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _s3a_conf(settings: Settings) -> dict[str, str]:
    s3 = settings.s3
    conf = {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.path.style.access": str(s3.path_style_access).lower(),
        # This log store is safe for one writer at a time only: the Airflow pool
        # lakehouse_writers serialises every writer Airflow starts (docs/CONVERGENCE.md);
        # jobs started by hand beside Airflow on one S3 root are not supported.
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
        "spark.delta.logStore.s3.impl": "io.delta.storage.S3SingleDriverLogStore",
    }
    if s3.endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = s3.endpoint
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
            s3.endpoint.startswith("https")
        ).lower()
    if s3.region:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = s3.region
    if s3.access_key and s3.secret_key:
        conf["spark.hadoop.fs.s3a.access.key"] = s3.access_key
        conf["spark.hadoop.fs.s3a.secret.key"] = s3.secret_key
        conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        )
    return conf
