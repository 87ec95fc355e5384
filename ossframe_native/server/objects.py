"""Buckets and objects on disk, with the metadata OSS returns (ETag, CRC-64, type, user meta).

The layout is ``LocalStore``'s: bucket ``b`` is the directory ``<root>/b`` and object ``k`` the
file ``<root>/b/k``, so ``ossframe process --root`` and the service share data. The service's
own files live under ``<root>/.server/`` (a dotted name, never a bucket): ``tmp/`` holds uploads
in progress, ``meta/<bucket>/<key>`` one JSON record per object, ``uploads/`` the multipart
uploads (``multipart.py``), ``tasks.db`` the task queue.

An upload is streamed to ``tmp/`` while its MD5 and CRC-64 are computed, checked, and renamed
into place only when complete; the metadata record is written first and names the size and
modification time of the file it describes, so a crash between the two, or an object written
by ``LocalStore``, is detected and its metadata computed again from the bytes. Appends are the
exception (the data grows in place, then the record follows): a file longer than its
appendable record is cut back to it, the append that was never answered.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import hashlib
import json
import mimetypes
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import anycrc

from ossframe_native.errors import InvalidArgument
from ossframe_native.server.xml import ListedObject, OssError
from ossframe_native.store import (
    TEMP_SUFFIX,
    atomic_write,
    root_lock,
    unstorable_name,
    validate_bucket,
    validate_key,
)

SERVER_DIR = ".server"
_READ_CHUNK = 1 << 20
NORMAL, APPENDABLE, MULTIPART = "Normal", "Appendable", "Multipart"

_CRC64_XZ = anycrc.Model("CRC64-XZ")


class Crc64:
    """Running CRC-64/XZ, the ``x-oss-hash-crc64ecma`` of OSS (``.value``: an unsigned int).

    anycrc computes it at GB/s (crcmod, what oss2 uses, is some 30 times slower).
    """

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = _CRC64_XZ.calc(data, init=self.value) if self.value else _CRC64_XZ.calc(data)


def crc64_combine(first: int, second: int, second_length: int) -> int:
    """The CRC-64 of two byte strings joined, from the CRC of each and the second's length."""
    return int(_CRC64_XZ.combine(first, second, second_length))


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


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the file system (or the user's quota) has no room left."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return type(exc).__name__ == "OperationalError" and "full" in str(exc)  # sqlite3


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD/GET report about an object."""

    path: str
    size: int
    mtime: float
    etag: str  # quoted upper-case MD5 hex (or a multipart / appendable ETag)
    crc64: str  # unsigned decimal
    content_type: str
    user_meta: Mapping[str, str] = field(default_factory=dict)
    type: str = NORMAL


class Upload:
    """Bytes being received: a temporary file plus running MD5, CRC-64 and size.

    The receiving side counts each chunk with :meth:`add` (in the event loop: size and limit
    only) and hands them to :meth:`write` in batches, one at a time and in order, in a thread:
    there each chunk is hashed and written in one pass while it is in the processor's cache,
    and a slow disk never holds up the event loop.
    """

    def __init__(self, path: str, limit: int, offset: int | None = None) -> None:
        """A new file ``path`` (a temporary name), or with ``offset`` the bytes of a file from
        ``offset`` on (a multipart upload's data file, kept by :meth:`abort`)."""
        self.path = path
        self.offset = offset
        if offset is None:
            self.file = open(path, "xb", buffering=0)  # noqa: SIM115 - closed by commit/abort
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            os.lseek(fd, offset, os.SEEK_SET)
            self.file = open(fd, "wb", buffering=0)  # noqa: SIM115 - the descriptor, not truncated
        self.md5 = hashlib.md5()
        self.crc = Crc64()
        self.size = 0
        self.limit = limit
        self._writing = threading.Lock()  # a batch being written, or the file being closed

    def add(self, chunk: bytes | bytearray) -> None:
        """Counts a received chunk; ``EntityTooLarge`` once the object would exceed the limit."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise OssError(400, "EntityTooLarge", MaxSizeAllowed=str(self.limit))

    def write(self, chunks: Iterable[bytes | bytearray]) -> None:
        """Hashes and writes counted chunks, in order, and starts writing them to the disk (so
        that :meth:`finish` has little left to wait for)."""
        with self._writing:
            start = self.file.tell()
            for chunk in chunks:
                self.md5.update(chunk)
                self.crc.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[self.file.write(view) :]  # a raw file may write part of it
            start_writeback(self.file.fileno(), start, self.file.tell() - start)

    def finish(self) -> os.stat_result:
        """Makes the bytes durable and closes the file."""
        with self._writing:
            os.fsync(self.file.fileno())
            self.file.close()
        return os.stat(self.path)

    def abort(self) -> None:
        """Closes and removes the temporary file (idempotent; waits for a batch being
        written)."""
        with self._writing:
            if not self.file.closed:
                self.file.close()
        if self.offset is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def _sync_file_range() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):  # not Linux
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Starts writing a range of a file to the disk without waiting (Linux's
    ``sync_file_range``), so that a later ``fsync`` finds it done or under way: the write to
    the disk overlaps the receiving instead of following it. Elsewhere nothing happens."""
    if _SYNC_FILE_RANGE is not None and length > 0:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def copy_bytes(
    src: BinaryIO, dst: BinaryIO, length: int, md5: Any = None, crc: Crc64 | None = None
) -> None:
    """Copies ``length`` bytes from ``src`` (at its position) to ``dst``, hashing them when
    ``md5``/``crc`` are given; in the kernel (``copy_file_range``) when nothing is hashed, each
    64 MiB sent on to the disk at once (:func:`start_writeback`)."""
    if md5 is None and crc is None and hasattr(os, "copy_file_range"):
        with contextlib.suppress(OSError):
            while length > 0:
                offset = os.lseek(dst.fileno(), 0, os.SEEK_CUR)
                copied = os.copy_file_range(src.fileno(), dst.fileno(), min(length, 64 << 20))
                if copied == 0:
                    raise OssError(409, "InvalidArgument", "the source object changed while copied")
                start_writeback(dst.fileno(), offset, copied)
                length -= copied
            return
    while length > 0:
        chunk = src.read(min(_READ_CHUNK, length))
        if not chunk:
            raise OssError(409, "InvalidArgument", "the source object changed while copied")
        if md5 is not None:
            md5.update(chunk)
        if crc is not None:
            crc.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[dst.write(view) or 0 :]
        length -= len(chunk)


class ObjectStore:
    """The service's view of the store root: buckets, objects and their metadata."""

    def __init__(self, root: str, max_object_size: int) -> None:
        self.root = os.path.abspath(root)
        self.max_object_size = max_object_size
        self.server_dir = os.path.join(self.root, SERVER_DIR)
        self.tmp_dir = os.path.join(self.server_dir, "tmp")
        self.meta_dir = os.path.join(self.server_dir, "meta")
        self._append_locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._lock = ExitStack()

    def open(self) -> int:
        """Creates the service directories; removes the temporary files of killed writers when
        no other process writes to the root (it holds the root lock exclusively then).
        Returns how many were removed."""
        os.makedirs(self.tmp_dir, exist_ok=True)
        os.makedirs(self.meta_dir, exist_ok=True)
        removed = 0
        with root_lock(self.root, shared=False, blocking=False) as alone:
            if alone:
                for directory in self._swept_dirs():
                    removed += _remove_temporaries(directory)
        # Held shared while the service runs: its own uploads in .server/tmp are writes in
        # progress that a second service on this root must not sweep.
        self._lock = ExitStack()
        self._lock.enter_context(root_lock(self.root, shared=True))
        return removed

    def close(self) -> None:
        """Releases the root lock."""
        self._lock.close()

    def _swept_dirs(self) -> Iterator[str]:
        yield self.tmp_dir
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False) and entry.name != SERVER_DIR:
                yield entry.path  # buckets, and the .tasks / .notify records

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
        """The object's metadata; 404 ``NoSuchKey`` (or ``NoSuchBucket``) when missing.

        May read the whole object (an object written by someone else is hashed on first
        access): call it off the event loop.
        """
        path = self.object_path(bucket, key)
        self.require_bucket(bucket)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise OssError(404, "NoSuchKey", Key=key) from None
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:  # a name no object here can have
                raise
            raise OssError(404, "NoSuchKey", Key=key) from None
        if not os.path.isfile(path) or _temporary(path) or not self._inside(bucket, path):
            raise OssError(404, "NoSuchKey", Key=key)
        record = self._read_meta(bucket, key)
        if record is not None and record.get("type") == APPENDABLE:
            st = _cut_unanswered_append(path, st, record)
        if (
            record is None
            or record.get("size") != st.st_size
            or record.get("mtime_ns") != st.st_mtime_ns
        ):
            record = self._compute_meta(path, key, st)
            self._write_meta(bucket, key, record, required=False)
        return ObjectInfo(
            path=path,
            size=st.st_size,
            mtime=st.st_mtime,
            etag=record["etag"],
            crc64=record["crc64"],
            content_type=record["content_type"],
            user_meta=record.get("user_meta", {}),
            type=record.get("type", NORMAL),
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

    def _write_meta(
        self, bucket: str, key: str, record: Mapping[str, Any], required: bool = True
    ) -> None:
        """Writes the record; ``required=False``: a cache of what the bytes say, so a failure
        is ignored (the next access computes it again)."""
        path = self._meta_path(bucket, key)
        directory, name = os.path.split(path)
        try:
            try:
                os.makedirs(directory, exist_ok=True)
            except (FileExistsError, NotADirectoryError):  # records of objects deleted directly
                _remove_files_on(directory, os.path.join(self.meta_dir, bucket))
                os.makedirs(directory, exist_ok=True)
            if os.path.isdir(path):  # key "a" after key "a/b" was deleted
                shutil.rmtree(path)
            atomic_write(directory, name, json.dumps(record).encode())
        except OSError:
            if required:
                raise

    @staticmethod
    def _compute_meta(path: str, key: str, st: os.stat_result) -> dict[str, Any]:
        md5, crc = hashlib.md5(), Crc64()
        head = b""
        with open(path, "rb") as f:
            while chunk := f.read(_READ_CHUNK):
                head = head or chunk[:16]
                md5.update(chunk)
                crc.update(chunk)
        return {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "etag": f'"{md5.hexdigest().upper()}"',
            "crc64": str(crc.value),
            "content_type": sniff_type(head) or guess_type(key),
            "user_meta": {},
        }

    def begin_upload(self, limit: int | None = None) -> Upload:
        """An upload into a new temporary file."""
        path = os.path.join(self.tmp_dir, f"{uuid.uuid4().hex}{TEMP_SUFFIX}")
        return Upload(path, self.max_object_size if limit is None else limit)

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
            st = upload.finish()
            digest = upload.md5.digest()
            if content_md5 is not None and content_md5 != base64.b64encode(digest).decode():
                raise OssError(400, "InvalidDigest")
            record = new_record(
                st, f'"{digest.hex().upper()}"', upload.crc.value, content_type, user_meta
            )
            self.place(upload.path, bucket, key, record)
        finally:
            upload.abort()
        return self.stat(bucket, key)

    def place(self, tmp: str, bucket: str, key: str, record: dict[str, Any]) -> None:
        """Renames the complete file ``tmp`` over object ``key``, its record written first."""
        final = self.check_writable(bucket, key)
        os.utime(tmp)  # the record names the time the object appears
        st = os.stat(tmp)
        record = {**record, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        try:
            self._write_meta(bucket, key, record)
            os.replace(tmp, final)
        except OSError as exc:  # e.g. a record path too long, a folder made there meanwhile
            self._refuse_unstorable(bucket, key, exc)
            raise

    def check_writable(self, bucket: str, key: str) -> str:
        """The path object ``key`` would take, its folder made; 409 ``InvalidObjectName`` when
        the name cannot be stored (a part of it names an object, it names a folder of other
        objects, or it is too long for the file system), with nothing written."""
        final = self.object_path(bucket, key)
        top = self.require_bucket(bucket)
        self._refuse_unstorable(bucket, key)
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
        except OSError as exc:
            self._refuse_unstorable(bucket, key, exc)  # taken meanwhile
            raise
        real_top = os.path.realpath(top)
        real = os.path.realpath(os.path.dirname(final))
        if real != real_top and not real.startswith(real_top + os.sep):
            raise OssError(400, "InvalidObjectName", f"object {key!r} resolves outside its bucket")
        return final

    def check_storable(self, bucket: str, key: str | None) -> None:
        """404 ``NoSuchBucket`` unless the bucket exists; 409 ``InvalidObjectName`` when ``key``
        (if given) cannot be stored. Writes nothing."""
        if key is not None:
            self.object_path(bucket, key)
        self.require_bucket(bucket)
        if key is not None:
            self._refuse_unstorable(bucket, key)

    def _refuse_unstorable(self, bucket: str, key: str, exc: OSError | None = None) -> None:
        reason = unstorable_name(self.bucket_dir(bucket), key, exc)
        if reason is not None:
            raise OssError(409, "InvalidObjectName", reason)

    def copy(
        self,
        source: ObjectInfo,
        bucket: str,
        key: str,
        content_type: str,
        user_meta: Mapping[str, str],
    ) -> ObjectInfo:
        """CopyObject: the source's bytes, ETag and CRC-64 under a new name (in the kernel)."""
        self.check_writable(bucket, key)
        tmp = os.path.join(self.tmp_dir, f"{uuid.uuid4().hex}{TEMP_SUFFIX}")
        try:
            with open(source.path, "rb") as src, open(tmp, "xb") as dst:
                copy_bytes(src, dst, source.size)
                dst.flush()
                os.fsync(dst.fileno())
            kind = MULTIPART if source.type == MULTIPART else NORMAL
            record = new_record(
                os.stat(tmp), source.etag, int(source.crc64), content_type, user_meta, kind
            )
            self.place(tmp, bucket, key, record)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return self.stat(bucket, key)

    def append(
        self,
        upload: Upload,
        bucket: str,
        key: str,
        position: int,
        content_type: str,
        user_meta: Mapping[str, str],
    ) -> ObjectInfo:
        """AppendObject: adds the received bytes at ``position`` (the object's length; 0
        creates an appendable object)."""
        with self._append_lock(bucket, key):
            try:
                return self._append(upload, bucket, key, position, content_type, user_meta)
            finally:
                upload.abort()

    def _append(
        self,
        upload: Upload,
        bucket: str,
        key: str,
        position: int,
        content_type: str,
        user_meta: Mapping[str, str],
    ) -> ObjectInfo:
        try:
            current: ObjectInfo | None = self.stat(bucket, key)
        except OssError as exc:
            if exc.code != "NoSuchKey":
                raise
            current = None
        length = 0 if current is None else current.size
        if current is not None and current.type != APPENDABLE:
            raise OssError(409, "ObjectNotAppendable", Key=key)
        if position != length:
            raise OssError(
                409,
                "PositionNotEqualToLength",
                f"position {position} is not the object's length {length}",
                headers={"x-oss-next-append-position": str(length)},
            )
        st = upload.finish()
        part_etag = upload.md5.hexdigest()
        if current is None:
            record = new_record(
                st, f'"{part_etag.upper()}"', upload.crc.value, content_type, user_meta, APPENDABLE
            )
            self.place(upload.path, bucket, key, record)
            return self.stat(bucket, key)
        # The data grows in place, then the record follows (see the module docstring).
        chained = hashlib.md5(f"{current.etag}{part_etag}".encode()).hexdigest().upper()
        crc = crc64_combine(int(current.crc64), upload.crc.value, st.st_size)
        with open(upload.path, "rb") as src, open(current.path, "ab") as dst:
            copy_bytes(src, dst, st.st_size)
            dst.flush()
            os.fsync(dst.fileno())
        grown = os.stat(current.path)
        record = new_record(
            grown, f'"{chained}"', crc, current.content_type, current.user_meta, APPENDABLE
        )
        self._write_meta(bucket, key, record)
        return self.stat(bucket, key)

    @contextlib.contextmanager
    def _append_lock(self, bucket: str, key: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._append_locks.setdefault((bucket, key), threading.Lock())
        with lock:
            yield
        with self._locks_guard:
            if not lock.locked():
                self._append_locks.pop((bucket, key), None)

    def delete(self, bucket: str, key: str) -> None:
        """Removes the object if present (204 either way), and folders it leaves empty."""
        path = self.object_path(bucket, key)
        top = self.require_bucket(bucket)
        try:
            os.unlink(path)
        except OSError as exc:  # absent, a folder, or a name no object here can have
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG):
                raise
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

        Names (keys and common prefixes) sort together and ``after`` is exclusive, as on OSS;
        a common prefix is given once, on the page where it first sorts after ``after``.
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
            # ``after`` may be a common prefix that ended the previous page: its keys are done.
            if key <= after or name in (after, last):
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
        return ListedObject(key, info.mtime, info.etag, info.size, info.type)


def new_record(
    st: os.stat_result,
    etag: str,
    crc: int,
    content_type: str,
    user_meta: Mapping[str, str],
    kind: str = NORMAL,
) -> dict[str, Any]:
    """An object's metadata record for a file with status ``st``."""
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "etag": etag,
        "crc64": str(crc),
        "content_type": content_type or "application/octet-stream",
        "user_meta": dict(user_meta),
        "type": kind,
    }


def guess_type(key: str) -> str:
    """The Content-Type of an object named ``key`` when none was given: from its extension."""
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


def sniff_type(head: bytes) -> str | None:
    """``image/jpeg`` / ``image/png`` from an image's first bytes (a ``sys/saveas`` output
    named ``x.png`` holding JPEG bytes is served as what it is)."""
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def _cut_unanswered_append(path: str, st: os.stat_result, record: Mapping[str, Any]) -> Any:
    """An appendable object longer than its record is an append killed before its answer:
    the bytes past the record's length are removed."""
    size = record.get("size")
    if not isinstance(size, int) or st.st_size <= size:
        return st
    os.truncate(path, size)
    os.utime(path, ns=(record["mtime_ns"], record["mtime_ns"]))
    return os.stat(path)


def _remove_temporaries(directory: str) -> int:
    removed = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            if _temporary(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed


def _remove_files_on(directory: str, top: str) -> None:
    """Removes the files standing where ``directory`` (below ``top``) needs folders."""
    path = top
    for segment in os.path.relpath(directory, top).split(os.sep):
        path = os.path.join(path, segment)
        if os.path.lexists(path) and not os.path.isdir(path):
            os.unlink(path)


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
