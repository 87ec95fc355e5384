"""Where saved objects go: the ``Store`` interface, ``LocalStore`` and ``FsspecStore``.

A store holds buckets; a bucket holds objects named by keys that may contain ``/``. Every
public method checks its bucket and key with :func:`validate_bucket` and :func:`validate_key`
(defined in :mod:`ossframe_native.names`, re-exported here), so that nothing can be written
outside the store (docs/TASKS.md).

Besides user objects, a store keeps the project's own records under *system names* that start
with a dot and so can never clash with a bucket (``.tasks/<key>.json`` for task results,
``.notify/<topic>.jsonl`` for notifications). Only this package writes them.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import os
import re
import stat
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from ossframe_native.errors import FrameError, InvalidArgument, InvalidObjectName
from ossframe_native.names import TEMP_SUFFIX, validate_bucket, validate_key

__all__ = [
    "FsspecStore",
    "LocalStore",
    "Store",
    "StoreError",
    "TEMP_SUFFIX",
    "open_store",
    "validate_bucket",
    "validate_key",
]


_SYSTEM_RE = re.compile(r"\.(?:tasks|notify)/[A-Za-z0-9][A-Za-z0-9._-]*")


class StoreError(FrameError):
    """Reading or writing the store failed (disk full, permissions, network, ...)."""

    code = "StoreError"


def _check_system_name(name: str) -> str:
    if not _SYSTEM_RE.fullmatch(name):
        raise ValueError(f"not a system record name: {name!r}")
    return name


class Store(ABC):
    """A place to save objects: buckets of keys, atomic whole-object writes.

    Subclasses implement the ``_``-prefixed primitives; the public methods validate names.
    A store must be picklable so that batch workers can use it.
    """

    #: A printable location of the store root (directory path or URL).
    location: str

    def put(self, bucket: str, key: str, data: bytes) -> int:
        """Write ``data`` as object ``key`` of ``bucket``, atomically; return bytes written.

        Readers see either the previous object or the whole new one, never a partial one.
        """
        validate_bucket(bucket)
        validate_key(key)
        self._put(f"{bucket}/{key}", bytes(data))
        return len(data)

    def get(self, bucket: str, key: str) -> bytes:
        """Read object ``key`` of ``bucket``; ``KeyError`` when it does not exist."""
        validate_bucket(bucket)
        validate_key(key)
        data = self._get(f"{bucket}/{key}")
        if data is None:
            raise KeyError(f"{bucket}/{key}")
        return data

    def exists(self, bucket: str, key: str) -> bool:
        validate_bucket(bucket)
        validate_key(key)
        return self._get(f"{bucket}/{key}") is not None

    def list(self, bucket: str, prefix: str = "") -> builtins.list[str]:
        """Sorted keys of ``bucket`` that start with ``prefix`` (temporary files excluded)."""
        validate_bucket(bucket)
        return sorted(k for k in self._list(bucket) if k.startswith(prefix))

    def url(self, bucket: str, key: str) -> str:
        """Where object ``key`` of ``bucket`` lives: a file path or a URL."""
        validate_bucket(bucket)
        validate_key(key)
        return self._url(f"{bucket}/{key}")

    # -- system records (task results, notifications) ---------------------------------------

    def put_record(self, name: str, data: bytes) -> None:
        """Atomically write the system record ``name`` (e.g. ``.tasks/<key>.json``)."""
        self._put(_check_system_name(name), bytes(data))

    def get_record(self, name: str) -> bytes | None:
        """Read the system record ``name``; ``None`` when there is none."""
        return self._get(_check_system_name(name))

    @abstractmethod
    def append_line(self, name: str, line: bytes) -> str:
        """Append one JSON line to the stream ``name`` (``.notify/<topic>.jsonl``).

        Concurrent appenders, in any number of processes, never interleave. Returns where the
        line went (a path or URL).
        """

    @abstractmethod
    def read_lines(self, name: str) -> builtins.list[bytes]:
        """The lines of the stream ``name`` in the order they were appended (may be empty)."""

    # -- primitives ---------------------------------------------------------------------------

    @abstractmethod
    def _put(self, path: str, data: bytes) -> None: ...

    @abstractmethod
    def _get(self, path: str) -> bytes | None: ...

    @abstractmethod
    def _list(self, bucket: str) -> Iterator[str]: ...

    @abstractmethod
    def _url(self, path: str) -> str: ...

    @property
    def in_process(self) -> bool:
        """True when the store's data lives only in this process (``memory://``)."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


class LocalStore(Store):
    """The embedded default: a directory; each bucket is a sub-directory of ``root``.

    Buckets and sub-directories are created on demand. Writes go to a hidden temporary file in
    the object's own directory (``.<name>.<random>.ossframe-tmp``), are fsynced, then renamed
    over the final name with ``os.replace``; a crash leaves at most a hidden temporary file,
    never a partial object under its final name.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.location = self.root

    def __reduce__(self) -> tuple[Any, ...]:
        return (LocalStore, (self.root,))

    def _path(self, path: str) -> str:
        return os.path.join(self.root, *path.split("/"))

    def _url(self, path: str) -> str:
        return self._path(path)

    def _put(self, path: str, data: bytes) -> None:
        final = self._path(path)
        directory, name = os.path.split(final)
        bucket, key = path.split("/", 1)
        try:
            _refuse_unstorable(self._path(bucket), key)  # before any folder is made
            os.makedirs(directory, exist_ok=True)
            self._check_inside(path, directory)
            with root_lock(self.root, shared=True):
                atomic_write(directory, name, data)
        except OSError as exc:
            _refuse_unstorable(self._path(bucket), key, exc)  # a name taken meanwhile
            raise StoreError(f"cannot write {final}: {exc.strerror or exc}") from exc

    def _check_inside(self, path: str, directory: str) -> None:
        # The key is already free of '..'; this guards against a symbolic link inside the
        # bucket (or .tasks/.notify) that points elsewhere.
        top = os.path.realpath(os.path.join(self.root, path.split("/", 1)[0]))
        real = os.path.realpath(directory)
        if real != top and not real.startswith(top + os.sep):
            raise StoreError(f"{directory} resolves to {real}, outside {top}; refusing to write")

    def _get(self, path: str) -> bytes | None:
        try:
            with open(self._path(path), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self._path(path)}: {exc.strerror or exc}") from exc

    def _list(self, bucket: str) -> Iterator[str]:
        top = self._path(bucket)
        for dirpath, _dirs, files in os.walk(top):
            rel = os.path.relpath(dirpath, top)
            for name in files:
                if name.endswith(TEMP_SUFFIX):
                    continue
                yield name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"

    # The store's own records (.tasks/, .notify/) are reached only through real directories
    # and files inside the root: each step is opened relative to the last with O_NOFOLLOW, so a
    # symbolic link planted at .notify, .tasks or a record file is refused, never followed.

    def put_record(self, name: str, data: bytes) -> None:
        path = self._path(_check_system_name(name))
        try:
            with self._record_dir(name, create=True) as dir_fd, root_lock(self.root, shared=True):
                atomic_write(path.rsplit(os.sep, 1)[0], name.split("/")[1], data, dir_fd=dir_fd)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {_reason(exc)}") from exc

    def get_record(self, name: str) -> bytes | None:
        path = self._path(_check_system_name(name))
        try:
            with self._record_dir(name, create=False) as dir_fd:
                # Non-blocking: opening a FIFO planted here must not wait for a writer.
                flags = os.O_RDONLY | _NOFOLLOW | _NONBLOCK
                fd = os.open(name.split("/")[1], flags, dir_fd=dir_fd)
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise StoreError(
                        f"cannot read {path}: a directory, FIFO or other special file stands "
                        "where the store keeps this record; records are only read from files"
                    )
                with open(fd, "rb") as f:
                    return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {_reason(exc)}") from exc

    def append_line(self, name: str, line: bytes) -> str:
        path = self._path(_check_system_name(name))
        try:
            with self._record_dir(name, create=True) as dir_fd:
                append_line_to_file(name.split("/")[1], line, dir_fd=dir_fd)
        except OSError as exc:
            raise StoreError(f"cannot append to {path}: {_reason(exc)}") from exc
        return path

    def read_lines(self, name: str) -> builtins.list[bytes]:
        data = self.get_record(name)
        return [] if data is None else [ln for ln in data.split(b"\n") if ln]

    @contextlib.contextmanager
    def _record_dir(self, name: str, create: bool) -> Iterator[int]:
        """A descriptor of the record's directory (``.tasks`` / ``.notify``), opened without
        following a symbolic link anywhere below the root."""
        folder = name.split("/")[0]
        if create:
            os.makedirs(self.root, exist_ok=True)
        root_fd = os.open(self.root, os.O_RDONLY | _DIRECTORY)
        try:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder, dir_fd=root_fd)
            dir_fd = os.open(folder, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=root_fd)
        finally:
            os.close(root_fd)
        try:
            yield dir_fd
        finally:
            os.close(dir_fd)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

# What a store's own write adds to an object's folder: ".<32 hex digits>.ossframe-tmp".
_TEMP_NAME_BYTES = 1 + 32 + len(TEMP_SUFFIX)


def unstorable_name(top: str, key: str, exc: OSError | None = None) -> str | None:
    """Why object ``key`` cannot be the file ``top/key`` (``top``: its bucket's folder), or
    ``None`` when its name does not stop it.

    A name is unstorable when a part of it is a file (an object cannot also be a folder of
    objects), when it is a folder (of other objects), or when its path is longer than the file
    system allows (``pathconf``'s limits, or a write that failed with ``ENAMETOOLONG``).
    The reasons name keys only, never server paths.
    """
    segments = key.split("/")
    final = os.path.join(top, *segments)
    too_long = _path_too_long(final) or _path_too_long(
        os.path.join(os.path.dirname(final), "x" * _TEMP_NAME_BYTES)
    )
    if too_long or (exc is not None and exc.errno == errno.ENAMETOOLONG):
        return (
            f"object name {key!r} is too long for the file system under this store (it limits "
            "a path and each name in it); use a shorter name or a store root with a shorter path"
        )
    path = top
    for i, segment in enumerate(segments[:-1]):
        path = os.path.join(path, segment)
        if os.path.lexists(path) and not os.path.isdir(path):
            return (
                f"object name {key!r} cannot be stored: {'/'.join(segments[: i + 1])!r} is an "
                "object, and an object cannot also be a folder of other objects"
            )
    if os.path.isdir(final):
        return (
            f"object name {key!r} cannot be stored: it is the folder of other objects "
            f"({key + '/'!r}...), and a folder cannot also be an object"
        )
    return None


def _path_too_long(path: str) -> bool:
    """Whether ``path`` (absolute) exceeds its file system's path or file-name limits."""
    existing = path
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    try:
        path_max = os.pathconf(existing, "PC_PATH_MAX")
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - no pathconf here
        return False
    encoded = os.fsencode(path)
    return len(encoded) >= path_max or any(len(p) > name_max for p in encoded.split(b"/"))


def _refuse_unstorable(top: str, key: str, exc: OSError | None = None) -> None:
    reason = unstorable_name(top, key, exc)
    if reason is not None:
        raise InvalidObjectName("o", reason)


_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return (
            "a symbolic link (or a file) stands where the store keeps its records; they are "
            "only written to real directories inside the store root"
        )
    return exc.strerror or str(exc)


@contextlib.contextmanager
def root_lock(root: str, shared: bool, blocking: bool = True) -> Iterator[bool]:
    """Holds ``flock`` on the store root directory itself (yields whether it was acquired).

    Every write to a local store holds it shared while its temporary file exists; whoever
    holds it exclusively (``ossframe serve`` at start) knows that no live process is writing,
    so the temporary files it finds are leftovers of killed writers, safe to remove.
    """
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        yield _flock(fd, shared, blocking)
    finally:
        os.close(fd)  # releases the lock


def atomic_write(
    directory: str, name: str, data: bytes, dir_fd: int | None = None, durable: bool = True
) -> None:
    """Writes ``directory/name`` via a temporary file and a rename: never seen half written.

    With ``dir_fd`` (a descriptor of ``directory``) the files are named relative to it.
    ``durable``: the file and the rename are fsynced (stores); without it a power loss may lose
    the write, as with other command-line tools' output files.
    """
    # A fixed-length temporary name: any valid object name fits the file system's limit.
    tmp_name = f".{uuid.uuid4().hex}{TEMP_SUFFIX}"
    tmp = tmp_name if dir_fd is not None else os.path.join(directory, tmp_name)
    final = name if dir_fd is not None else os.path.join(directory, name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | _NOFOLLOW
    fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        # A rename replaces a symbolic link at the final name; it never writes through one.
        os.replace(tmp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if not durable:
        return
    if dir_fd is not None:
        _fsync_fd(dir_fd)
    else:
        _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        _fsync_fd(fd)
    finally:
        os.close(fd)


def _fsync_fd(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - e.g. some network file systems
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise


def append_line_to_file(path: str, line: bytes, dir_fd: int | None = None) -> None:
    """Append ``line`` (a newline is added) to ``path`` so that appenders never interleave.

    The file is opened with ``O_APPEND`` and the whole line is written while an exclusive
    ``flock`` is held (which also covers lines longer than the kernel's atomic-write size and
    short writes), then fsynced. A symbolic link at ``path`` is refused (``O_NOFOLLOW``);
    ``dir_fd``: ``path`` is relative to that directory.
    """
    if b"\n" in line:
        raise ValueError("a JSON line may not contain a newline")
    data = line + b"\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC | _NOFOLLOW
    fd = os.open(path, flags, 0o666, dir_fd=dir_fd)
    try:
        _lock(fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


try:
    import fcntl

    def _flock(fd: int, shared: bool, blocking: bool) -> bool:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            return False
        return True

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows: O_APPEND single writes only

    def _flock(fd: int, shared: bool, blocking: bool) -> bool:
        return True

    def _lock(fd: int) -> None:
        pass

    def _unlock(fd: int) -> None:
        pass


class FsspecStore(Store):
    """A store on any fsspec URL: ``s3://``, ``oss://``, ``gs://``, ``memory://``, ``file://``.

    Bucket ``b`` and key ``k`` map to ``<url>/b/k``. With a URL that names only the scheme
    (``s3://``) the OSS bucket is the object-storage bucket itself. Object stores replace an
    object in one request, so a reader never sees part of it; on a local file system the
    object is written to a hidden temporary name and renamed. Object stores cannot append, so
    each notification line is stored as its own object ``.notify/<topic>.jsonl.d/<time>-<id>``
    and :meth:`read_lines` returns them in time order. ``storage_options`` go to fsspec
    (e.g. ``client_kwargs={"endpoint_url": ...}`` for an S3-compatible server).
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        try:
            import fsspec
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise InvalidArgument(
                "store", "FsspecStore needs fsspec: pip install 'ossframe_native[fsspec]'"
            ) from exc
        self.base_url = url
        self.storage_options = dict(storage_options)
        try:
            fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except (ValueError, ImportError) as exc:
            raise InvalidArgument("store", f"cannot open store URL {url!r}: {exc}") from exc
        self.fs = fs
        self.root = root.rstrip("/")
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        self._protocol = protocols[0]
        self._local = "file" in protocols or "local" in protocols
        self._memory = "memory" in protocols
        self.location = url

    def __reduce__(self) -> tuple[Any, ...]:
        return (_make_fsspec_store, (self.base_url, self.storage_options))

    @property
    def in_process(self) -> bool:
        return self._memory

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}" if self.root else path

    def _url(self, path: str) -> str:
        full = self._full(path)
        return full if self._local else f"{self._protocol}://{full.lstrip('/')}"

    def _put(self, path: str, data: bytes) -> None:
        full = self._full(path)
        bucket, key = path.split("/", 1)
        named = self._local and not bucket.startswith(".")  # an object, not a record
        if named:
            _refuse_unstorable(self._full(bucket), key)  # before any folder is made
        try:
            if self._local:
                parent = full.rsplit("/", 1)[0]
                self.fs.makedirs(parent, exist_ok=True)
                atomic_write(parent, full.rsplit("/", 1)[1], data)
            else:
                self.fs.pipe_file(full, data)
        except (OSError, ValueError, RuntimeError) as exc:
            if named and isinstance(exc, OSError):
                _refuse_unstorable(self._full(bucket), key, exc)
            raise StoreError(f"cannot write {self._url(path)}: {exc}") from exc

    def _get(self, path: str) -> bytes | None:
        full = self._full(path)
        try:
            return bytes(self.fs.cat_file(full))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self._url(path)}: {exc}") from exc

    def _list(self, bucket: str) -> Iterator[str]:
        top = self._full(bucket).rstrip("/")
        self.fs.invalidate_cache(top)
        try:
            found = self.fs.find(top)
        except FileNotFoundError:
            return
        for full in found:
            full = full.lstrip("/") if not top.startswith("/") else full
            if not full.startswith(top + "/"):
                continue
            key = full[len(top) + 1 :]
            if key and not key.rsplit("/", 1)[-1].endswith(TEMP_SUFFIX):
                yield key

    def append_line(self, name: str, line: bytes) -> str:
        _check_system_name(name)
        if b"\n" in line:
            raise ValueError("a JSON line may not contain a newline")
        if self._local:
            full = self._full(name)
            try:
                self.fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
                append_line_to_file(full, line)
            except OSError as exc:
                raise StoreError(f"cannot append to {full}: {exc}") from exc
            return full
        # One clock read, so names sort in append order (within a process; across processes
        # lines of the same nanosecond order by the random suffix).
        now_ns = time.time_ns()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_ns // 1_000_000_000))
        part = f"{name}.d/{stamp}{now_ns % 1_000_000_000:09d}-{uuid.uuid4().hex[:12]}"
        self._put(part, line + b"\n")
        return self._url(part)

    def read_lines(self, name: str) -> builtins.list[bytes]:
        _check_system_name(name)
        if self._local:
            data = self._get(name)
            return [] if data is None else [ln for ln in data.split(b"\n") if ln]
        top = self._full(f"{name}.d")
        self.fs.invalidate_cache(top)
        try:
            parts = sorted(self.fs.find(top))
        except FileNotFoundError:
            return []
        lines: builtins.list[bytes] = []
        for part in parts:
            lines.extend(ln for ln in bytes(self.fs.cat_file(part)).split(b"\n") if ln)
        return lines


def _make_fsspec_store(url: str, storage_options: dict[str, Any]) -> FsspecStore:
    return FsspecStore(url, **storage_options)


def open_store(root: str | os.PathLike[str] | Store) -> Store:
    """A store from a directory path, an fsspec URL (``scheme://...``) or a store itself."""
    if isinstance(root, Store):
        return root
    text = os.fspath(root)
    if not isinstance(text, str) or not text:
        raise InvalidArgument("store", "give a directory path or a URL such as s3://bucket/prefix")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text):
        if text.startswith("file://"):
            return LocalStore(text[len("file://") :])
        return FsspecStore(text)
    return LocalStore(text)


def dump_json_line(obj: Any) -> bytes:
    """One compact JSON line (no newline inside; non-ASCII kept as UTF-8)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
