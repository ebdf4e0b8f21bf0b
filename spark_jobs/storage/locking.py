"""One writer at a time per lakehouse: a lock every table-writing job holds while it runs.

On a local root the lock is ``flock`` on ``<root>/_locks/writer.lock``: the kernel
drops it when the holder exits, however it exits (SIGKILL included), so a killed job
never leaves a stale lock. A waiting job says every 30 s who holds it.

On an object store (``s3a://``) the lock is the object ``<root>/_locks/writer.lock``,
taken with a conditional write (``If-None-Match: *``: only one writer can create it) and
held as a lease: the holder rewrites it every quarter lease (``If-Match`` its own ETag),
and a waiter takes over a lock whose object the store has not seen rewritten for a whole
lease (``LAKEHOUSE_LOCK_LEASE_SECONDS``, 60 s), again with ``If-Match``, so two waiters
never both win. Ages are read on the store's clock (its ``Date`` and ``Last-Modified``),
so the writers' clocks need not agree. A killed holder blocks the next writer for at most
one lease. A holder that finds its lease taken (it stalled for a whole lease) stops
itself with SIGTERM before it writes anything more; its publish intents let a rerun
finish what it started. This is what makes Delta's single-driver S3 log store safe for
the product's writers: every job that writes holds this lock, so at most one process
commits to the lakehouse's tables at a time, wherever it runs. The Airflow pool
``lakehouse_writers`` (one slot) still serialises the writers Airflow starts, so they
queue in Airflow rather than in the lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from spark_jobs.storage import files as storage

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 4 * 3600
DEFAULT_LEASE_SECONDS = 60
REPORT_EVERY_SECONDS = 30


class LockTimeout(RuntimeError):
    """The writer lock stayed taken for longer than the caller would wait."""


def lock_file(root: str) -> Path:
    """The lock file of a local lakehouse root."""
    return Path(root.removeprefix("file:")) / "_locks" / "writer.lock"


def object_lock_path(root: str) -> str:
    """The lock object of an object-store lakehouse root."""
    return f"{root.rstrip('/')}/_locks/writer.lock"


def lease_seconds() -> float:
    """How long an object-store lock outlives its holder's last renewal (60 s)."""
    return float(os.environ.get("LAKEHOUSE_LOCK_LEASE_SECONDS") or DEFAULT_LEASE_SECONDS)


def timeout_seconds() -> float:
    """How long a job waits for the lock: ``LAKEHOUSE_LOCK_TIMEOUT_SECONDS``, else 4 hours."""
    return float(os.environ.get("LAKEHOUSE_LOCK_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS)


@contextlib.contextmanager
def writer_lock(root: str, holder: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lakehouse's writer lock for the ``with`` block (local roots).

    ``holder`` names the job and its dates, shown to whoever waits. Raises LockTimeout
    after ``timeout`` seconds (default ``timeout_seconds()``) naming the holder.
    """
    limit = timeout_seconds() if timeout is None else timeout
    if not storage.is_local(root):
        lease = ObjectStoreLease(object_lock_path(root), holder, lease_seconds())
        lease.acquire(limit)
        try:
            yield
        finally:
            lease.release()
        return
    path = lock_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
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


class ObjectStoreLease:
    """The writer lock of an object-store root: one lock object, renewed while held."""

    def __init__(self, path: str, holder: str, lease: float) -> None:
        self.path = path
        self.holder = holder
        self.lease = lease
        self.token = uuid.uuid4().hex
        self.etag: str | None = None
        self.lost = False
        self._beats = 0
        self._since = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _note(self) -> bytes:
        # Each write differs (beat count), so its ETag differs and a stale If-Match fails.
        self._beats += 1
        note = {
            "holder": self.holder,
            "token": self.token,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": self._since,
            "lease_seconds": self.lease,
            "beat": self._beats,
        }
        return json.dumps(note).encode()

    def acquire(self, limit: float) -> None:
        """Take the lock, waiting up to ``limit`` seconds; LockTimeout names the holder."""
        started = time.monotonic()
        reported = started
        while True:
            self._since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self.etag = storage.put_if_absent(self.path, self._note())
            if self.etag is not None:
                break
            current = storage.read_versioned(self.path)
            if current is None:
                continue  # released between our two calls: try again at once
            idle = (current.store_now - current.last_modified).total_seconds()
            if idle > self.lease:
                self.etag = storage.put_if_match(self.path, self._note(), current.etag)
                if self.etag is not None:
                    log.warning(
                        "%s: took over the writer lock of %s, not renewed for %.0f s",
                        self.holder,
                        _describe(current.data),
                        idle,
                    )
                    break
            now = time.monotonic()
            if now - started > limit:
                raise LockTimeout(
                    f"{self.holder}: the lakehouse writer lock {self.path} has been held by "
                    f"{_describe(current.data)} for over {limit:.0f} s; wait for that job "
                    "or stop it"
                )
            if now - reported >= REPORT_EVERY_SECONDS:
                log.info(
                    "%s: waiting for the writer lock held by %s",
                    self.holder,
                    _describe(current.data),
                )
                reported = now
            time.sleep(min(1.0, self.lease / 4))
        if time.monotonic() - started > 1:
            log.info("%s: writer lock taken after %.0f s", self.holder, time.monotonic() - started)
        self._renewer = threading.Thread(target=self._renew, name="writer-lock-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 4):
            assert self.etag is not None
            try:
                etag = storage.put_if_match(self.path, self._note(), self.etag)
            except Exception as exc:  # a store hiccup: try again next beat, the lease allows it
                log.warning("%s: could not renew the writer lock: %s", self.holder, exc)
                continue
            if etag is None:
                self.lost = True
                log.error(
                    "%s: lost the writer lock %s (not renewed for a whole lease, another "
                    "writer took it); stopping this job before it writes more",
                    self.holder,
                    self.path,
                )
                os.kill(os.getpid(), signal.SIGTERM)
                return
            self.etag = etag

    def release(self) -> None:
        """Stop renewing and delete the lock object if it is still this holder's."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        if self.etag is not None and not self.lost:
            storage.delete_if_match(self.path, self.etag)
        self.etag = None


def _describe(note_bytes: bytes) -> str:
    try:
        note = json.loads(note_bytes or b"{}")
    except json.JSONDecodeError:
        return "another job"
    if not note:
        return "another job"
    return (
        f"{note.get('holder')} (pid {note.get('pid')} on {note.get('host')}, "
        f"since {note.get('since')})"
    )
