"""File-system access for the lakehouse's own paths, local folders and S3 alike.

A path is a local folder path (plain, or a ``file:`` URI) or an ``s3a://`` / ``s3://``
URI. Local paths go through ``os``; object stores through boto3, with the endpoint and
credentials of ``Settings.from_env().s3``, the settings the Spark session gives to S3A.
No call needs a Spark session. Used for what Delta does not do itself: listing landing
and run folders, small JSON files (manifests, publish intents), removing staging.

Paths this module returns are written the way Hadoop writes them, so they compare equal
to what Spark reports (``_metadata.file_path``, ``input_file_name``): a local path as
``file:/absolute/path``, an object as ``s3a://bucket/key`` with the scheme it was asked
with. Paths are not URL-encoded.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import fnmatch
import functools
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spark_jobs.config import S3Settings, Settings

OBJECT_STORE_SCHEMES = ("s3a://", "s3://")
_WILDCARDS = ("*", "?", "[")
_DELETE_BATCH = 1000  # S3's DeleteObjects limit
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class Entry:
    """One child of a folder: its path, when it last changed (UTC, naive), and its kind."""

    path: str
    modified_at: dt.datetime
    is_dir: bool


# ------------------------------------------------------------------------- public API


def is_local(path: str) -> bool:
    """True for a local folder path (or ``file:`` URI), False for an object store."""
    return "://" not in path or path.startswith("file:")


def exists(path: str) -> bool:
    """True when a file or folder is at ``path`` (on S3: an object, or objects under it)."""
    if is_local(path):
        return _local(path).exists()
    bucket, key = _split(path)
    return _head(bucket, key) is not None or _has_objects_under(bucket, key)


def children(path: str) -> list[Entry]:
    """The entries directly under a folder, by path; [] when there is nothing there.

    Listing a file gives the file itself. Locally, Hadoop's checksum files (``.x.crc``)
    are left out, as Spark's own listing leaves them out. On S3 a folder is a key
    prefix: it is reported as changed when the newest object under it was written.
    """
    if is_local(path):
        target = _local(path)
        if target.is_file():
            return [_local_entry(target)]
        if not target.is_dir():
            return []
        with os.scandir(target) as scan:
            names = [e.name for e in scan if not _is_checksum(e.name)]
        entries = []
        for name in names:
            try:
                entries.append(_local_entry(target / name))
            except FileNotFoundError:  # removed since the folder was read
                continue
        return sorted(entries, key=lambda e: e.path)
    listed = _s3_children(path)
    if listed:
        return listed
    bucket, key = _split(path)
    head = _head(bucket, key)
    if head is None:
        return []
    return [Entry(_s3_uri(path, key), _naive_utc(head["LastModified"]), False)]


def glob(pattern: str) -> list[str]:
    """The paths that match ``pattern``, sorted; ``*``, ``?``, ``[...]`` within a segment.

    A wildcard never crosses a ``/``. Without wildcards: the path itself when it exists.
    """
    parts = pattern.rstrip("/").split("/")
    first = next((i for i, p in enumerate(parts) if any(w in p for w in _WILDCARDS)), len(parts))
    base = "/".join(parts[:first]) or ("/" if pattern.startswith("/") else ".")
    candidates = [_normalised(base)]
    for segment in parts[first:]:
        if any(w in segment for w in _WILDCARDS):
            candidates = [
                entry.path
                for folder in candidates
                for entry in _folder_entries(folder)
                if fnmatch.fnmatchcase(_name(entry.path), segment)
            ]
        elif segment:
            candidates = [f"{c}/{segment}" for c in candidates if exists(f"{c}/{segment}")]
    return sorted(c for c in candidates if first < len(parts) or exists(c))


def read_bytes(path: str) -> bytes | None:
    """The content of a file; None when there is no such file."""
    if is_local(path):
        try:
            return _local(path).read_bytes()
        except FileNotFoundError:
            return None
    bucket, key = _split(path)
    try:
        response = _client().get_object(Bucket=bucket, Key=key)
    except _client().exceptions.NoSuchKey:
        return None
    return bytes(response["Body"].read())


def read_text(path: str) -> str | None:
    """The UTF-8 text of a small file; None when there is no such file."""
    data = read_bytes(path)
    return None if data is None else data.decode("utf-8")


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Replace a file so that a reader sees the old or the new content, never half.

    Locally the data goes to a hidden sibling first and is renamed over the file (one
    rename is atomic on POSIX); missing parent folders are made. An object store shows
    an object only once its upload completed, so there it is one ``put_object``.
    """
    if is_local(path):
        target = _local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # One draft per writing thread; opened as any file is, so the umask applies.
        draft = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(draft, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(draft, target)
        finally:
            draft.unlink(missing_ok=True)
        return
    bucket, key = _split(path)
    _client().put_object(Bucket=bucket, Key=key, Body=data)


def write_text_atomic(path: str, text: str) -> None:
    """``write_bytes_atomic`` of ``text`` encoded as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))


# Conditional writes (object stores): the compare-and-swap an object-store lock is made of.
# S3 and S3-compatible servers answer a failed condition with 412 PreconditionFailed (409
# ConditionalRequestConflict when two conditional writes race).
_CONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


@dataclass(frozen=True)
class Versioned:
    """An object's content, its ETag (what a conditional write names) and the store's clock."""

    data: bytes
    etag: str
    last_modified: dt.datetime  # naive UTC, by the store's clock
    store_now: dt.datetime  # naive UTC: the ``Date`` of the store's answer


def read_versioned(path: str) -> Versioned | None:
    """An object with its ETag and ages by the store's own clock; None when absent."""
    bucket, key = _split(path)
    client = _client()
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except client.exceptions.NoSuchKey:
        return None
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    answered = headers.get("date")
    store_now = email.utils.parsedate_to_datetime(answered) if answered else dt.datetime.now(dt.UTC)
    return Versioned(
        data=bytes(response["Body"].read()),
        etag=str(response["ETag"]),
        last_modified=_naive_utc(response["LastModified"]),
        store_now=_naive_utc(store_now),
    )


def put_if_absent(path: str, data: bytes) -> str | None:
    """Create an object only if none exists (``If-None-Match: *``): its ETag, else None."""
    return _conditional_put(path, data, IfNoneMatch="*")


def put_if_match(path: str, data: bytes, etag: str) -> str | None:
    """Replace an object only if its ETag is still ``etag``: the new ETag, else None."""
    return _conditional_put(path, data, IfMatch=etag)


def delete_if_match(path: str, etag: str) -> bool:
    """Delete an object only if its ETag is still ``etag``; False when it changed or is gone."""
    bucket, key = _split(path)
    client = _client()
    try:
        client.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
    except client.exceptions.ClientError as exc:
        if _error_code(exc) in (*_CONDITION_FAILED, "NoSuchKey", "404"):
            return False
        raise
    return True


def _conditional_put(path: str, data: bytes, **condition: str) -> str | None:
    bucket, key = _split(path)
    client = _client()
    try:
        response = client.put_object(Bucket=bucket, Key=key, Body=data, **condition)
    except client.exceptions.ClientError as exc:
        if _error_code(exc) in (*_CONDITION_FAILED, "NoSuchKey", "404"):
            return None
        raise
    return str(response["ETag"])


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def delete(path: str) -> bool:
    """Remove one file (or an empty local folder); False when there was nothing there."""
    if is_local(path):
        target = _local(path)
        try:
            if target.is_dir() and not target.is_symlink():
                target.rmdir()
            else:
                target.unlink()
        except FileNotFoundError:
            return False
        return True
    bucket, key = _split(path)
    marker = _head(bucket, f"{key}/")
    if _head(bucket, key) is None and marker is None:
        return False
    _client().delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": key}, {"Key": f"{key}/"}], "Quiet": True},
    )
    return True


def delete_tree(path: str) -> bool:
    """Remove a folder and everything under it (or one file); False when nothing was there."""
    if is_local(path):
        target = _local(path)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
            return True
        return delete(path)
    bucket, key = _split(path)
    keys = [o["Key"] for o in _objects_under(bucket, key)]
    if _head(bucket, key) is not None:
        keys.append(key)
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = keys[start : start + _DELETE_BATCH]
        _client().delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
    return bool(keys)


def make_folder(path: str) -> None:
    """Make a folder and its parents; nothing when it exists.

    On S3 an empty folder is a ``key/`` marker object (as S3A writes it), so that
    ``exists`` sees the folder before anything is written into it.
    """
    if is_local(path):
        _local(path).mkdir(parents=True, exist_ok=True)
        return
    if exists(path):
        return
    bucket, key = _split(path)
    _client().put_object(Bucket=bucket, Key=f"{key}/", Body=b"")


def move(source: str, target: str) -> None:
    """Move a file or a folder to ``target`` (whose parents are made); both on one store.

    Locally one rename (atomic); a folder can only replace a missing or empty folder.
    On S3 every object is copied, then the sources are removed: not atomic, a reader
    may see both for a moment. Raises FileNotFoundError when ``source`` does not exist.
    """
    if is_local(source) != is_local(target):
        raise ValueError(f"cannot move {source} to {target}: not on the same store")
    if is_local(source):
        origin, destination = _local(source), _local(target)
        if not origin.exists():
            raise FileNotFoundError(f"nothing to move at {source}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(origin, destination)
        return
    bucket, key = _split(source)
    target_bucket, target_key = _split(target)
    under = _objects_under(bucket, key)
    pairs = [(o["Key"], f"{target_key}/{o['Key'][len(key) + 1 :]}") for o in under]
    if _head(bucket, key) is not None:
        pairs.append((key, target_key))
    if not pairs:
        raise FileNotFoundError(f"nothing to move at {source}")
    client = _client()
    for old, new in pairs:
        client.copy({"Bucket": bucket, "Key": old}, target_bucket, new)
    for start in range(0, len(pairs), _DELETE_BATCH):
        batch = pairs[start : start + _DELETE_BATCH]
        client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": old} for old, _ in batch], "Quiet": True}
        )


# ----------------------------------------------------------------------- local paths


def _local(path: str) -> Path:
    """The ``os`` path of a plain path or ``file:`` / ``file://`` URI."""
    if path.startswith("file:"):
        return Path(path.removeprefix("file:").removeprefix("//"))
    return Path(path)


def _local_uri(path: Path) -> str:
    return f"file:{os.path.abspath(path)}"


def _local_entry(path: Path) -> Entry:
    status = path.stat()
    # Hadoop reports times in whole milliseconds.
    modified = dt.datetime.fromtimestamp(status.st_mtime_ns // 1_000_000 / 1000, tz=dt.UTC)
    return Entry(_local_uri(path), modified.replace(tzinfo=None), path.is_dir())


def _is_checksum(name: str) -> bool:
    return name.startswith(".") and name.endswith(".crc")


# ----------------------------------------------------------------------- object stores


@functools.lru_cache(maxsize=4)
def _client_for(settings: S3Settings) -> Any:
    import boto3
    from botocore.config import Config

    endpoint = settings.endpoint
    if endpoint and "://" not in endpoint:
        # S3A takes a bare host:port and, without https, speaks plain HTTP to it.
        endpoint = f"http://{endpoint}"
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=settings.access_key if settings.secret_key else None,
        aws_secret_access_key=settings.secret_key if settings.access_key else None,
        region_name=settings.region,
        config=Config(s3={"addressing_style": "path" if settings.path_style_access else "virtual"}),
    )


def _client() -> Any:
    """An S3 client for the environment's object store (one per distinct setting)."""
    return _client_for(Settings.from_env().s3)


def _split(path: str) -> tuple[str, str]:
    """(bucket, key without a trailing ``/``) of an object-store URI."""
    for scheme in OBJECT_STORE_SCHEMES:
        if path.startswith(scheme):
            bucket, _, key = path[len(scheme) :].partition("/")
            return bucket, key.strip("/")
    raise ValueError(f"not an s3a:// or s3:// path: {path}")


def _s3_uri(path: str, key: str) -> str:
    scheme = next(s for s in OBJECT_STORE_SCHEMES if path.startswith(s))
    bucket, _ = _split(path)
    return f"{scheme}{bucket}/{key}" if key else f"{scheme}{bucket}"


def _normalised(path: str) -> str:
    """A path written as the listings write it."""
    if is_local(path):
        return _local_uri(_local(path))
    return _s3_uri(path, _split(path)[1])


def _head(bucket: str, key: str) -> dict | None:
    if not key or key == "/":
        return None
    client = _client()
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _prefix(key: str) -> str:
    return f"{key}/" if key else ""


def _objects_under(bucket: str, key: str) -> Iterator[dict]:
    """Every object whose key starts with ``key/`` (markers included)."""
    pages = _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=_prefix(key))
    for page in pages:
        yield from page.get("Contents", [])


def _has_objects_under(bucket: str, key: str) -> bool:
    response = _client().list_objects_v2(Bucket=bucket, Prefix=_prefix(key), MaxKeys=1)
    return bool(response.get("KeyCount", 0))


def _s3_children(path: str) -> list[Entry]:
    bucket, key = _split(path)
    prefix = _prefix(key)
    files: dict[str, dt.datetime] = {}
    folders: dict[str, dt.datetime] = {}
    for item in _objects_under(bucket, key):
        relative = item["Key"][len(prefix) :]
        if not relative:  # the folder's own marker
            continue
        name, slash, _ = relative.partition("/")
        modified = _naive_utc(item["LastModified"])
        if slash:
            folders[name] = max(modified, folders.get(name, _EPOCH))
        else:
            files[name] = modified
    entries = [Entry(_s3_uri(path, prefix + n), t, False) for n, t in files.items()]
    entries += [Entry(_s3_uri(path, prefix + n), t, True) for n, t in folders.items()]
    return sorted(entries, key=lambda e: e.path)


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _folder_entries(path: str) -> list[Entry]:
    """``children`` of a folder; [] for a file or nothing."""
    found = children(path)
    if len(found) == 1 and not found[0].is_dir and found[0].path == _normalised(path):
        return []
    return found


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
