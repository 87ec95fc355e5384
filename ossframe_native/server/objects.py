"""Buckets and objects on disk, with the metadata OSS returns (ETag, CRC-64, type, user meta).

The layout is ``LocalStore``'s: bucket ``b`` is the directory ``<root>/b`` and object ``k`` the
file ``<root>/b/k``, so ``ossframe process --root`` and the service share data. The service's
own files live under ``<root>/.server/`` (a dotted name, never a bucket): ``tmp/`` holds uploads
in progress, ``meta/<bucket>/<key>`` one JSON record per object, ``tasks.db`` the task queue.

An upload is streamed to ``tmp/`` while its MD5 and CRC-64 are computed, checked, and renamed
into place only when complete; the metadata record is written first and names the size and
modification time of the file it describes, so a crash between the two, or an object written
by ``LocalStore``, is detected and its metadata computed again from the bytes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import mimetypes
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anycrc

from ossframe_native.errors import InvalidArgument
from ossframe_native.server.xml import ListedObject, OssError
from ossframe_native.store import TEMP_SUFFIX, atomic_write, validate_bucket, validate_key

SERVER_DIR = ".server"
_READ_CHUNK = 1 << 20
_WRITE_BATCH = 1 << 20


_CRC64_XZ = anycrc.Model("CRC64-XZ")


class Crc64:
    """Running CRC-64/XZ, the ``x-oss-hash-crc64ecma`` of OSS (``.value``: an unsigned int).

    anycrc computes it at GB/s (crcmod, what oss2 uses, is some 30 times slower).
    """

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = _CRC64_XZ.calc(data, init=self.value) if self.value else _CRC64_XZ.calc(data)


def check_bucket_name(bucket: str) -> str:
    try:
        return validate_bucket(bucket)
    except InvalidArgument as exc:
        raise OssError(400, "InvalidBucketName", str(exc).partition(": ")[2]) from None


def check_key(key: str) -> str:
    try:
        return validate_key(key)
    except InvalidArgument as exc:
        raise OssError(400, "InvalidObjectName", str(exc).partition(": ")[2]) from None


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD/GET report about an object."""

    path: str
    size: int
    mtime: float
    etag: str  # quoted upper-case MD5 hex
    crc64: str  # unsigned decimal
    content_type: str
    user_meta: Mapping[str, str] = field(default_factory=dict)


class Upload:
    """An object being received: a temporary file plus running MD5, CRC-64 and size."""

    def __init__(self, tmp_dir: str, limit: int) -> None:
        self.path = os.path.join(tmp_dir, f"{uuid.uuid4().hex}{TEMP_SUFFIX}")
        self.file = open(self.path, "xb", buffering=0)  # noqa: SIM115 - closed by commit/abort
        self.md5 = hashlib.md5()
        self.crc = Crc64()
        self.size = 0
        self.limit = limit
        self._pending = bytearray()  # small network chunks, hashed and written in batches

    def append(self, chunk: bytes) -> None:
        """Adds a received chunk; ``EntityTooLarge`` once the object would exceed the limit."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise OssError(400, "EntityTooLarge", MaxSizeAllowed=str(self.limit))
        self._pending += chunk

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self) -> bytes:
        """The pending bytes, handed to :meth:`consume` (possibly in another thread)."""
        data = bytes(self._pending)
        self._pending.clear()
        return data

    def consume(self, data: bytes) -> None:
        """Hashes and writes one batch; batches must be consumed one at a time, in order."""
        self.md5.update(data)
        self.crc.update(data)
        view = memoryview(data)
        while view:
            view = view[self.file.write(view) :]  # a raw file may write part of it

    def flush(self) -> None:
        """Consumes what is pending, in this thread."""
        if self._pending:
            self.consume(self.take())

    def abort(self) -> None:
        """Closes and removes the temporary file (idempotent)."""
        if not self.file.closed:
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class ObjectStore:
    """The service's view of the store root: buckets, objects and their metadata."""

    def __init__(self, root: str, max_object_size: int) -> None:
        self.root = os.path.abspath(root)
        self.max_object_size = max_object_size
        self.server_dir = os.path.join(self.root, SERVER_DIR)
        self.tmp_dir = os.path.join(self.server_dir, "tmp")
        self.meta_dir = os.path.join(self.server_dir, "meta")

    def open(self) -> None:
        """Creates the service directories and removes uploads a previous run left behind."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        os.makedirs(self.tmp_dir, exist_ok=True)
        os.makedirs(self.meta_dir, exist_ok=True)

    # -- buckets ---------------------------------------------------------------------------

    def bucket_dir(self, bucket: str) -> str:
        return os.path.join(self.root, check_bucket_name(bucket))

    def require_bucket(self, bucket: str) -> str:
        directory = self.bucket_dir(bucket)
        if not os.path.isdir(directory):
            raise OssError(404, "NoSuchBucket", BucketName=bucket)
        return directory

    def list_buckets(self) -> list[tuple[str, float]]:
        """(name, creation time) of every bucket, sorted by name."""
        found = []
        for entry in os.scandir(self.root):
            if entry.is_dir() and not entry.name.startswith("."):
                with contextlib.suppress(OssError):
                    found.append((check_bucket_name(entry.name), entry.stat().st_ctime))
        return sorted(found)

    def create_bucket(self, bucket: str) -> None:
        """Creates the bucket; creating one that exists is allowed (as for its owner on OSS)."""
        os.makedirs(self.bucket_dir(bucket), exist_ok=True)

    def delete_bucket(self, bucket: str) -> None:
        directory = self.require_bucket(bucket)
        if next(self._walk(directory), None) is not None:
            raise OssError(409, "BucketNotEmpty", BucketName=bucket)
        shutil.rmtree(directory)
        shutil.rmtree(os.path.join(self.meta_dir, bucket), ignore_errors=True)

    # -- objects ---------------------------------------------------------------------------

    def object_path(self, bucket: str, key: str) -> str:
        return os.path.join(self.bucket_dir(bucket), *check_key(key).split("/"))

    def _meta_path(self, bucket: str, key: str) -> str:
        return os.path.join(self.meta_dir, bucket, *key.split("/"))

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        """The object's metadata; 404 ``NoSuchKey`` (or ``NoSuchBucket``) when missing."""
        path = self.object_path(bucket, key)
        self.require_bucket(bucket)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise OssError(404, "NoSuchKey", Key=key) from None
        if not os.path.isfile(path) or _temporary(path) or not self._inside(bucket, path):
            raise OssError(404, "NoSuchKey", Key=key)
        record = self._read_meta(bucket, key)
        if (
            record is None
            or record.get("size") != st.st_size
            or record.get("mtime_ns") != (st.st_mtime_ns)
        ):
            record = self._compute_meta(path, key, st, record)
            self._write_meta(bucket, key, record)
        return ObjectInfo(
            path=path,
            size=st.st_size,
            mtime=st.st_mtime,
            etag=record["etag"],
            crc64=record["crc64"],
            content_type=record["content_type"],
            user_meta=record.get("user_meta", {}),
        )

    def _inside(self, bucket: str, path: str) -> bool:
        """False for a file reached through a symbolic link that leaves the bucket."""
        top = os.path.realpath(self.bucket_dir(bucket))
        return os.path.realpath(path).startswith(top + os.sep)

    def _read_meta(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            with open(self._meta_path(bucket, key), "rb") as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _write_meta(self, bucket: str, key: str, record: Mapping[str, Any]) -> None:
        path = self._meta_path(bucket, key)
        directory, name = os.path.split(path)
        try:
            os.makedirs(directory, exist_ok=True)
            if os.path.isdir(path):  # key "a" after key "a/b" was deleted
                shutil.rmtree(path)
            atomic_write(directory, name, json.dumps(record).encode())
        except OSError:
            pass  # metadata is a cache of what the bytes say, except type and user meta

    @staticmethod
    def _compute_meta(
        path: str, key: str, st: os.stat_result, old: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        md5, crc = hashlib.md5(), Crc64()
        with open(path, "rb") as f:
            while chunk := f.read(_READ_CHUNK):
                md5.update(chunk)
                crc.update(chunk)
        return {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "etag": f'"{md5.hexdigest().upper()}"',
            "crc64": str(crc.value),
            "content_type": mimetypes.guess_type(key)[0] or "application/octet-stream",
            "user_meta": {},
        }

    def begin_upload(self) -> Upload:
        return Upload(self.tmp_dir, self.max_object_size)

    def commit(
        self,
        upload: Upload,
        bucket: str,
        key: str,
        content_type: str,
        user_meta: Mapping[str, str],
        content_md5: str | None,
    ) -> ObjectInfo:
        """Checks ``Content-MD5``, then moves the upload into place with its metadata."""
        try:
            final = self.object_path(bucket, key)
            self.require_bucket(bucket)
            digest = upload.md5.digest()
            if content_md5 is not None and content_md5 != base64.b64encode(digest).decode():
                raise OssError(400, "InvalidDigest")
            upload.flush()
            os.fsync(upload.file.fileno())
            upload.file.close()
            st = os.stat(upload.path)
            record = {
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "etag": f'"{digest.hex().upper()}"',
                "crc64": str(upload.crc.value),
                "content_type": content_type or "application/octet-stream",
                "user_meta": dict(user_meta),
            }
            self._place(upload.path, final, bucket, key)
            self._write_meta(bucket, key, record)
            os.replace(upload.path, final)
        finally:
            upload.abort()
        return self.stat(bucket, key)

    def _place(self, tmp: str, final: str, bucket: str, key: str) -> None:
        directory = os.path.dirname(final)
        try:
            os.makedirs(directory, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise OssError(
                409,
                "InvalidObjectName",
                f"object {key!r} cannot be stored: a part of its name is already an object",
            ) from None
        top = os.path.realpath(self.bucket_dir(bucket))
        real = os.path.realpath(directory)
        if real != top and not real.startswith(top + os.sep):
            raise OssError(400, "InvalidObjectName", f"object {key!r} resolves outside its bucket")
        if os.path.isdir(final):
            raise OssError(
                409, "InvalidObjectName", f"object {key!r} is a prefix of other objects' names"
            )

    def delete(self, bucket: str, key: str) -> None:
        """Removes the object if present (204 either way), and folders it leaves empty."""
        path = self.object_path(bucket, key)
        top = self.require_bucket(bucket)
        if _temporary(path):  # a write in progress (or a killed one's leftover): not an object
            return
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.unlink(self._meta_path(bucket, key))
        _prune(os.path.dirname(path), top)
        _prune(os.path.dirname(self._meta_path(bucket, key)), os.path.join(self.meta_dir, bucket))

    # -- listings --------------------------------------------------------------------------

    def _walk(self, top: str) -> Iterator[str]:
        for dirpath, dirs, files in os.walk(top):
            dirs.sort()
            rel = os.path.relpath(dirpath, top)
            for name in files:
                if not _temporary(name):
                    yield name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"

    def list(
        self, bucket: str, prefix: str, after: str, delimiter: str, max_keys: int
    ) -> tuple[list[ListedObject], list[str], bool, str | None]:
        """One page of a listing: objects, common prefixes, truncated?, the last name given.

        Names (keys and common prefixes) sort together and ``after`` is exclusive, as on OSS.
        """
        top = self.require_bucket(bucket)
        keys = sorted(k for k in self._walk(top) if k.startswith(prefix))
        objects: list[ListedObject] = []
        prefixes: list[str] = []
        last: str | None = None
        for key in keys:
            name = key
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    name = key[: cut + len(delimiter)]
            if name <= after or (prefixes and prefixes[-1] == name):
                continue
            if len(objects) + len(prefixes) >= max_keys:
                return objects, prefixes, True, last
            if name != key:
                prefixes.append(name)
            else:
                info = self._listed(bucket, key)
                if info is None:
                    continue
                objects.append(info)
            last = name
        return objects, prefixes, False, last

    def _listed(self, bucket: str, key: str) -> ListedObject | None:
        try:
            info = self.stat(bucket, key)
        except OssError:
            return None  # deleted while listing
        return ListedObject(key, info.mtime, info.etag, info.size)


def _prune(directory: str, top: str) -> None:
    """Removes empty folders from ``directory`` up to (not including) ``top``."""
    while directory.startswith(top + os.sep):
        try:
            os.rmdir(directory)
        except OSError:
            return
        directory = os.path.dirname(directory)


def _temporary(path: str) -> bool:
    """Whether ``path`` names a store's temporary file (a write not yet renamed into place):
    never listed, served or deleted as an object."""
    return path.endswith(TEMP_SUFFIX)
