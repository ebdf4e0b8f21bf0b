"""One writer at a time per lakehouse: a lock every table-writing job holds while it runs.

On a local root the lock is ``flock`` on ``<root>/_locks/writer.lock``: the kernel
drops it when the holder exits, however it exits (SIGKILL included), so a killed job
never leaves a stale lock. A waiting job says every 30 s who holds it. Object stores
have no such lock; there the Airflow pool ``lakehouse_writers`` (one slot) serialises
the writers Airflow starts, and each publish step checks that its inputs did not
change since its build step (``spark_jobs.quality.wap``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from spark_jobs.storage import files as storage

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 4 * 3600
REPORT_EVERY_SECONDS = 30


class LockTimeout(RuntimeError):
    """The writer lock stayed taken for longer than the caller would wait."""


def lock_file(root: str) -> Path:
    """The lock file of a local lakehouse root."""
    return Path(root.removeprefix("file:")) / "_locks" / "writer.lock"


def timeout_seconds() -> float:
    """How long a job waits for the lock: ``LAKEHOUSE_LOCK_TIMEOUT_SECONDS``, else 4 hours."""
    return float(os.environ.get("LAKEHOUSE_LOCK_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS)


@contextlib.contextmanager
def writer_lock(root: str, holder: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lakehouse's writer lock for the ``with`` block (local roots).

    ``holder`` names the job and its dates, shown to whoever waits. Raises LockTimeout
    after ``timeout`` seconds (default ``timeout_seconds()``) naming the holder.
    """
    if not storage.is_local(root):
        yield
        return
    path = lock_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    limit = timeout_seconds() if timeout is None else timeout
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(descriptor, path, holder, limit)
        os.ftruncate(descriptor, 0)
        note = {"holder": holder, "pid": os.getpid(), "since": dt.datetime.now(dt.UTC).isoformat()}
        os.pwrite(descriptor, json.dumps(note).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _acquire(descriptor: int, path: Path, holder: str, limit: float) -> None:
    started = time.monotonic()
    reported = started
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if time.monotonic() - started > 1:
                log.info("%s: writer lock taken after %.0f s", holder, time.monotonic() - started)
            return
        except BlockingIOError:
            pass
        now = time.monotonic()
        if now - started > limit:
            raise LockTimeout(
                f"{holder}: the lakehouse writer lock {path} has been held by "
                f"{_holder_of(path)} for over {limit:.0f} s; wait for that job or stop it"
            )
        if now - reported >= REPORT_EVERY_SECONDS:
            log.info("%s: waiting for the writer lock held by %s", holder, _holder_of(path))
            reported = now
        time.sleep(0.5)


def _holder_of(path: Path) -> str:
    try:
        note = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return "another job"
    if not note:
        return "another job"
    return f"{note.get('holder')} (pid {note.get('pid')}, since {note.get('since')})"
