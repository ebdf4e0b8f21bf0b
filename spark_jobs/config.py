"""Typed settings, filled once from the environment.

One variable, ``LAKEHOUSE_ROOT``, decides where every table lives: a local folder
(the embedded default) or ``s3a://bucket/prefix`` on an object store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LAKEHOUSE_ROOT = PROJECT_ROOT / "lakehouse"
DEFAULT_JARS_DIR = PROJECT_ROOT / ".cache" / "jars"
# Spark Connect's own default port, where spark_jobs.connect_server listens unless told.
DEFAULT_CONNECT_PORT = 15002
INCLUDE_DIR = PROJECT_ROOT / "include"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"


# The words an on/off environment variable accepts, lower-cased.
ON_WORDS = ("on", "true", "1", "yes")
OFF_WORDS = ("off", "false", "0", "no")


class SettingsError(ValueError):
    """An environment variable holds a value the product cannot use; names the variable."""


@dataclass(frozen=True)
class S3Settings:
    """Object-store connection; credentials come from the environment, never the repo."""

    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    path_style_access: bool = True


EVENT_LOG_FOLDER = "_spark_events"


@dataclass(frozen=True)
class Settings:
    """Everything a job needs to know about its environment."""

    lakehouse_root: str = str(DEFAULT_LAKEHOUSE_ROOT)
    spark_master: str = "local[*]"
    # A Spark Connect server (sc://host:port) the jobs run on instead of a JVM of their own.
    spark_remote: str | None = None
    jars_dir: Path = DEFAULT_JARS_DIR
    shuffle_partitions: int = 8
    driver_memory: str = "4g"
    s3: S3Settings = field(default_factory=S3Settings)
    # Load the S3A jars even for a local root (a session that serves both kinds of root).
    s3a_jars: bool = False
    # A Connect client uploads the spark_jobs package to its session, for a server whose
    # executors do not have it (a cluster's workers); see spark_jobs.artifacts.
    ship_code: bool = False
    # Spark's event log (what the History Server shows, ``make history``): "" writes it
    # under a local lakehouse root (``_spark_events``; none for an s3a:// root), "off"
    # turns it off, anything else is the existing folder or URI to write it to
    # (LAKEHOUSE_EVENT_LOG).
    event_log: str = ""
    # Spark's code generation (SPARK_CODEGEN, on by default). "off" evaluates expressions
    # interpreted: no Java compile per query, slower per row; for small data, such as
    # the test suite's (bench/codegen.py measures both).
    codegen: bool = True

    @property
    def event_log_dir(self) -> str | None:
        """Where Spark writes its event log; None when it is off."""
        if self.event_log.lower() in OFF_WORDS:
            return None
        if self.event_log:
            return self.event_log
        if self.is_object_store:
            # Spark refuses to start unless the folder exists, and an object store has
            # none to create before the session: name one with LAKEHOUSE_EVENT_LOG.
            return None
        return f"{self.lakehouse_root.rstrip('/')}/{EVENT_LOG_FOLDER}"

    @property
    def is_object_store(self) -> bool:
        """True when the lakehouse lives on S3 (or an S3-compatible store)."""
        return self.lakehouse_root.startswith(("s3a://", "s3://"))

    @property
    def needs_s3a(self) -> bool:
        """True when the session must carry the S3A connector."""
        return self.is_object_store or self.s3a_jars

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``LAKEHOUSE_*`` / ``SPARK_*`` / ``AWS_*`` variables, then overrides.

        An override is a field name and its value; a None value leaves the field as read.
        """
        env = os.environ if environ is None else environ
        s3 = S3Settings(
            endpoint=env.get("LAKEHOUSE_S3_ENDPOINT") or None,
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            path_style_access=env.get("LAKEHOUSE_S3_PATH_STYLE", "true").lower() == "true",
        )
        settings = cls(
            lakehouse_root=env.get("LAKEHOUSE_ROOT") or str(DEFAULT_LAKEHOUSE_ROOT),
            spark_master=env.get("SPARK_MASTER") or "local[*]",
            spark_remote=env.get("SPARK_REMOTE") or None,
            jars_dir=Path(env.get("LAKEHOUSE_JARS_DIR") or DEFAULT_JARS_DIR),
            shuffle_partitions=_positive(env, "SPARK_SHUFFLE_PARTITIONS", default=8),
            driver_memory=env.get("SPARK_DRIVER_MEMORY") or "4g",
            s3=s3,
            s3a_jars=env.get("LAKEHOUSE_S3A_JARS", "false").lower() == "true",
            ship_code=env.get("LAKEHOUSE_SHIP_CODE", "false").lower() in ("true", "1"),
            event_log=env.get("LAKEHOUSE_EVENT_LOG", ""),
            codegen=_switch(env, "SPARK_CODEGEN", default=True),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    """An on/off variable; anything but the words for on and off is an error naming it."""
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ON_WORDS:
        return True
    if value in OFF_WORDS:
        return False
    raise SettingsError(f"{name}={env.get(name)!r}: expected on or off")


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number above zero; anything else is an error naming the variable."""
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) == 0:
        raise SettingsError(f"{name}={env.get(name)!r}: expected a whole number above 0")
    return int(value)
