"""Sources: what a capture reads — a local path, bytes, a file object or a URL — opened as a
seekable binary stream for the demuxer, with what reading it cost.

* Local paths are opened by Python as exactly that file (never handed to FFmpeg's protocol
  layer, where ``concat:a.mp4`` or ``pipe:0`` would mean something else).
* URLs: ``s3://bucket/key`` (s3fs), ``gs://bucket/key`` (gcsfs), ``oss://bucket/key``
  (Alibaba Cloud's ``oss2`` SDK) and ``http(s)://`` (urllib3; presigned URLs included) are read
  by ranged GETs into a small block cache: the first block after a jump is
  :data:`FIRST_BLOCK`, each block read on from the end of the last one doubles, up to
  :data:`MAX_BLOCK`. A snapshot thus fetches the container header, its index and one GOP, never
  the whole object. The libraries are imported when a URL is opened (``pip install
  'ossframe_native[remote]'``), never by ``import ossframe_native``.
* Credentials and endpoints come from where each ecosystem's own tools read them (AWS
  environment/profile and ``AWS_ENDPOINT_URL``; ``OSS_ACCESS_KEY_ID`` /
  ``OSS_ACCESS_KEY_SECRET`` / ``OSS_SESSION_TOKEN`` with ``OSS_ENDPOINT`` or ``OSS_REGION``;
  Google's application default credentials), or from ``storage_options`` given with the
  source (:func:`bind`). They are never part of a message, a label or a record key: URLs are
  shown without user info and without signing parameters (:func:`display`).
* Every reader counts the bytes it delivered (local) or fetched (remote) and the requests it
  made into a counter object (``DecodeStats``: ``bytes_read``, ``requests``).

A missing object, a denied read or an unreachable endpoint is a one-line :class:`MediaError`
naming the source.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from .errors import InvalidArgument, MediaError

__all__ = [
    "FIRST_BLOCK",
    "MAX_BLOCK",
    "Opened",
    "Remote",
    "Source",
    "barename_of",
    "bind",
    "check_options",
    "display",
    "glob",
    "identity",
    "is_url",
    "name_of",
    "open_source",
    "stat",
]

# The first ranged read after a jump, and the largest block reading on grows to (doubling).
# Chosen by measuring snapshots in joined 1080p MKV / MPEG-TS / MP4 files (docs/BEHAVIOUR.md,
# "Sources"): smaller first blocks cost more requests in MPEG-TS's timestamp search, larger
# ones more bytes for nothing.
FIRST_BLOCK = 1 << 20
MAX_BLOCK = 8 << 20
# Fetched blocks kept per opened source (a reopened container reads its header again).
_CACHE_BYTES = 64 << 20

SCHEMES = ("s3", "gs", "gcs", "oss", "http", "https")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Query parameters that sign or authorize a URL (AWS, Alibaba Cloud OSS, Google Cloud Storage).
_SIGNING = re.compile(
    r"^(x-amz-.*|x-goog-.*|x-oss-(signature.*|credential|date|expires|security-token"
    r"|additional-headers|access-key-id)|signature|expires|awsaccesskeyid|ossaccesskeyid"
    r"|googleaccessid|security-token)$",
    re.IGNORECASE,
)
_GLOB_CHARS = frozenset("*?[")


class Counters(Protocol):
    """What a reader counts into (``DecodeStats`` has these fields)."""

    bytes_read: int
    requests: int


@dataclass(frozen=True)
class Remote:
    """A URL with the storage options to open it with (see :func:`bind`). ``options`` never
    appear in ``repr`` or messages."""

    url: str
    options: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __str__(self) -> str:
        return display(self.url)


Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | Remote


def is_url(source: object) -> bool:
    """Whether ``source`` is a URL string (``scheme://...``) or a :class:`Remote`. A
    ``pathlib.Path`` is always a local path."""
    if isinstance(source, Remote):
        return True
    return isinstance(source, str) and _URL.match(source) is not None


def bind(source: Any, storage_options: Mapping[str, Any] | None) -> Any:
    """``source`` with ``storage_options`` attached where it is a URL (a :class:`Remote`);
    other sources are returned as they are. The options go to the URL scheme's library:
    ``s3fs.S3FileSystem`` (s3://), ``gcsfs.GCSFileSystem`` (gs://); for oss:// the keys
    ``endpoint``, ``key``, ``secret``, ``token``; for http(s):// ``headers`` and ``timeout``."""
    if storage_options is None:
        return source
    check_options(storage_options)
    if isinstance(source, Remote):
        return Remote(source.url, {**source.options, **storage_options})
    if is_url(source):
        return Remote(source, dict(storage_options))
    return source


def check_options(storage_options: Any) -> None:
    """``InvalidArgument`` unless ``storage_options`` is None or a mapping with text keys."""
    if storage_options is None:
        return
    if not isinstance(storage_options, Mapping) or not all(
        isinstance(k, str) for k in storage_options
    ):
        raise InvalidArgument("storage_options", "must be a mapping of option names to values")


def _url_and_options(source: str | Remote) -> tuple[str, Mapping[str, Any]]:
    if isinstance(source, Remote):
        return source.url, source.options
    return source, {}


def _local_path(source: Any) -> str | None:
    """The local path a source names (``file://`` URLs included), else None."""
    if isinstance(source, os.PathLike):
        return os.fspath(source)  # type: ignore[no-any-return]
    if isinstance(source, str):
        if source.lower().startswith("file://"):
            return urllib.parse.unquote(urllib.parse.urlsplit(source).path)
        return None if is_url(source) else source
    return None


def display(source: Any) -> str:
    """How a source is named in messages, labels and records: a path as given; a URL without
    user info and without signing query parameters (a presigned URL shows as its object)."""
    if isinstance(source, Remote):
        source = source.url
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes: {len(source)}>"
    if not isinstance(source, (str, os.PathLike)):
        name = getattr(source, "name", None)
        return name if isinstance(name, str) else "<file object>"
    text = os.fsdecode(source)
    if not is_url(text):
        return text
    parts = urllib.parse.urlsplit(text)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    query = [
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if not _SIGNING.match(k)
    ]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, urllib.parse.urlencode(query), "")
    )


def name_of(source: Any) -> str | None:
    """The source's file name (for ``{barename}``): a path's last component, a URL path's last
    segment (query left out), a file object's ``name``; None for bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return None
    path = _local_path(source)
    if path is None and is_url(source):
        url, _ = _url_and_options(source)
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    if path is None:
        name = getattr(source, "name", None)
        path = name if isinstance(name, str) else None
    if not path:
        return None
    return os.path.basename(path.rstrip("/" + os.sep)) or None


def barename_of(source: object) -> str | None:
    """The source's file name without its last extension, or ``None`` when it has no name.

    Paths (``str`` / ``os.PathLike``), URLs (the last segment of the URL path, without the
    query) and file objects with a text ``.name`` have one; ``bytes`` sources do not.
    """
    base = name_of(source)
    if not base:
        return None
    stem, _ext = os.path.splitext(base)
    return stem or None


def identity(source: Any) -> str | None:
    """What a source's result is recorded under: a path's absolute path, a URL as
    :func:`display` shows it; None for bytes and file objects."""
    path = _local_path(source)
    if path is not None:
        return os.path.abspath(path)
    if is_url(source):
        return display(source)
    return None


def stat(source: Any) -> dict[str, Any] | None:
    """What says the source is unchanged, as recorded with a result: a path's size and
    modification time; a URL's size and ETag (one metadata request); None where unknown or the
    source cannot be reached."""
    path = _local_path(source)
    if path is not None:
        path = os.path.abspath(path)
        try:
            st = os.stat(path)
        except OSError:
            return None
        return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if not is_url(source):
        return None
    try:
        store = _store_for(*_url_and_options(source))
        size, etag = store.describe()
    except (MediaError, InvalidArgument):
        return None
    return {"url": display(source), "size": size, "etag": etag}


# ---------------------------------------------------------------------------------------------
# Opening


class Opened:
    """An opened source: :meth:`reader` gives a fresh, rewound binary stream for one container;
    all readers share the source's counters (and, for a URL, its block cache)."""

    def __init__(
        self, label: str, size: int | None, new_reader: Callable[[], io.RawIOBase]
    ) -> None:
        self.label = label
        self.size = size
        self._new_reader = new_reader
        self._readers: list[io.RawIOBase] = []

    def reader(self) -> io.RawIOBase:
        """A stream positioned at the start of the source (closed with the source)."""
        stream = self._new_reader()
        self._readers.append(stream)
        return stream

    def close(self) -> None:
        """Closes the readers (a file object the caller gave stays open)."""
        for stream in self._readers:
            stream.close()
        self._readers.clear()


def open_source(source: Any, counters: Counters) -> Opened:
    """Opens ``source`` for reading; the readers count into ``counters``.

    Raises ``MediaError`` for a missing, empty, unreadable or unreachable source and
    ``InvalidArgument`` for something that is not a source.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise MediaError("the source is empty (0 bytes)")
        return Opened(display(source), len(data), lambda: _Counted(io.BytesIO(data), counters))
    path = _local_path(source)
    if path is not None:
        size = _check_path(path)
        return Opened(path, size, lambda: _Counted(_open_file(path), counters, path))
    if is_url(source):
        url, options = _url_and_options(source)
        return _open_remote(url, options, counters)
    if _is_seekable_binary(source):
        return Opened(display(source), _file_size(source), lambda: _Counted(source, counters))
    raise InvalidArgument(
        "source",
        "must be a path, a URL (s3://, oss://, gs://, http(s)://), bytes or an open, seekable "
        "binary file object; got " + type(source).__name__,
    )


def _check_path(path: str) -> int:
    """Regular, non-empty files only (exact capture needs to seek); returns the size."""
    if not os.path.exists(path):
        raise MediaError(f"no such file: {path}")
    if os.path.isdir(path):
        raise MediaError(f"is a directory, not a media file: {path}")
    if not os.path.isfile(path):
        raise MediaError(f"not a regular file (exact capture needs to seek): {path}")
    size = os.path.getsize(path)
    if size == 0:
        raise MediaError(f"the file is empty (0 bytes): {path}")
    return size


def _open_file(path: str) -> BinaryIO:
    try:
        return open(path, "rb", buffering=0)  # noqa: SIM115 - closed with its reader
    except OSError as exc:
        raise MediaError(f"cannot open {path}: {exc.strerror or exc}") from exc


def _is_seekable_binary(source: Any) -> bool:
    if isinstance(source, io.TextIOBase) or not callable(getattr(source, "read", None)):
        return False
    try:
        return bool(source.seekable())
    except (AttributeError, TypeError, ValueError, OSError):  # no seekable(), or a closed file
        return False


def _file_size(source: Any) -> int | None:
    try:
        return int(os.fstat(source.fileno()).st_size)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


class _Stream(io.RawIOBase):
    """A readable, seekable raw stream; subclasses give ``read``, ``seek`` and ``tell``."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Counted(_Stream):
    """A seekable stream over ``inner`` (rewound now) that counts the bytes read from it.
    Closing it closes ``inner`` only where this module opened it (``own``: its path)."""

    def __init__(self, inner: Any, counters: Counters, own: str | None = None) -> None:
        super().__init__()
        self._inner = inner
        self._counters = counters
        self._own = own is not None
        self.name = own if own is not None else getattr(inner, "name", "")
        inner.seek(0)

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._inner.read(size)
        self._counters.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._inner.seek(offset, whence))

    def tell(self) -> int:
        return int(self._inner.tell())

    def close(self) -> None:
        if self._own and not self.closed:
            self._inner.close()
        super().close()


# ---------------------------------------------------------------------------------------------
# Remote objects: ranged reads into a block cache


class _Store(Protocol):
    """One remote object, as a backend reaches it."""

    label: str
    requests: int  # requests made so far

    def first(self, length: int) -> tuple[bytes, int]:
        """The first ``length`` bytes (fewer for a smaller object) and the object's size."""

    def fetch(self, start: int, stop: int) -> bytes:
        """Bytes ``start`` up to ``stop`` (exclusive), in one request."""

    def describe(self) -> tuple[int, str | None]:
        """The object's size and ETag, in one request."""


def _open_remote(url: str, options: Mapping[str, Any], counters: Counters) -> Opened:
    store = _store_for(url, options)
    blocks = _Blocks(store, counters)
    return Opened(store.label, blocks.size, lambda: _RemoteReader(blocks, name_of(url) or ""))


def _store_for(url: str, options: Mapping[str, Any]) -> _Store:
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise InvalidArgument(
            "source",
            f"the URL scheme {scheme!r} is not supported; use s3://, oss://, gs://, http(s):// "
            "or a local path",
        )
    if scheme in ("http", "https"):
        return _HttpObject(url, options)
    bucket, key = _bucket_and_key(url)
    if scheme == "oss":
        return _OssObject(url, bucket, key, options)
    return _FsspecObject(url, "gs" if scheme == "gcs" else scheme, f"{bucket}/{key}", options)


def _bucket_and_key(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        raise InvalidArgument("source", f"{display(url)} names no object (scheme://bucket/key)")
    return parts.netloc, key


class _Blocks:
    """The fetched blocks of one remote object, shared by its readers (least recently used
    dropped past :data:`_CACHE_BYTES`). A miss fetches :data:`FIRST_BLOCK` bytes, or twice
    the block it continues (up to :data:`MAX_BLOCK`) where a block ends exactly there."""

    def __init__(self, store: _Store, counters: Counters) -> None:
        self.store = store
        self.counters = counters
        self.lock = threading.Lock()
        data, self.size = self._counted(store.first, FIRST_BLOCK)
        if self.size == 0:
            raise MediaError(f"the object is empty (0 bytes): {store.label}")
        self.blocks: list[tuple[int, bytes]] = [(0, data)]  # least recently used first

    def _counted(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` (a store's read), its requests and bytes added to the counters."""
        before = self.store.requests
        try:
            result = call(*args)
        finally:
            self.counters.requests += self.store.requests - before
        data = result[0] if isinstance(result, tuple) else result
        self.counters.bytes_read += len(data)
        return result

    def read(self, pos: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``pos`` (fewer at the end of the object)."""
        stop = min(pos + size, self.size)
        with self.lock:
            parts = []
            while pos < stop:
                start, data = self._block_at(pos)
                piece = data[pos - start : stop - start]
                parts.append(piece)
                pos += len(piece)
        return b"".join(parts)

    def _block_at(self, pos: int) -> tuple[int, bytes]:
        for i, (start, data) in enumerate(self.blocks):
            if start <= pos < start + len(data):
                self.blocks.append(self.blocks.pop(i))
                return start, data
        before = max((len(d) for s, d in self.blocks if s + len(d) == pos), default=0)
        length = min(max(2 * before, FIRST_BLOCK), MAX_BLOCK) if before else FIRST_BLOCK
        stop = min(pos + length, self.size)
        for start, _ in self.blocks:  # stop where a cached block begins
            if pos < start < stop:
                stop = start
        data = self._counted(self.store.fetch, pos, stop)
        if len(data) != stop - pos:
            raise MediaError(
                f"{self.store.label} returned {len(data)} bytes for a read of {stop - pos} at "
                f"{pos}; the object may have changed while it was read"
            )
        self.blocks.append((pos, data))
        held = sum(len(d) for _, d in self.blocks)
        while held > _CACHE_BYTES and len(self.blocks) > 1:
            held -= len(self.blocks.pop(0)[1])
        return pos, data


class _RemoteReader(_Stream):
    """A seekable stream over a remote object's blocks (one per container)."""

    def __init__(self, blocks: _Blocks, name: str) -> None:
        super().__init__()
        self._blocks = blocks
        self._pos = 0
        self.name = name  # the demuxer's format guess may use the extension

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._blocks.size - self._pos
        data = self._blocks.read(self._pos, size)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._blocks.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


# -- http(s): urllib3 ---------------------------------------------------------------------------

_pool: tuple[int, Any] | None = None  # (pid, urllib3.PoolManager): one per process
# Attempts of one request where the connection fails or the server answers 5xx; urllib3's own
# retries are off because they log the URL (a presigned URL's signature) as a warning.
_ATTEMPTS = 3
_RETRY_STATUS = frozenset({500, 502, 503, 504})


def _http_pool() -> Any:
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        import urllib3

        _pool = (os.getpid(), urllib3.PoolManager(num_pools=32, maxsize=8, retries=False))
    return _pool[1]


class _HttpObject:
    """An http(s) URL read with ``Range`` GETs (a presigned URL signs GET only: no HEAD)."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        unknown = set(options) - {"headers", "timeout"}
        if unknown:
            raise InvalidArgument(
                "storage_options",
                f"unknown option(s) for http(s) URLs: {', '.join(sorted(unknown))}; allowed: "
                "headers, timeout",
            )
        self.url = url
        self.label = display(url)
        self.headers = {"Accept-Encoding": "identity", **dict(options.get("headers") or {})}
        self.timeout = float(options.get("timeout", 60))
        self.etag: str | None = None
        self.requests = 0

    def first(self, length: int) -> tuple[bytes, int]:
        data, size = self._get(0, length, first=True)
        return data, size

    def fetch(self, start: int, stop: int) -> bytes:
        return self._get(start, stop)[0]

    def describe(self) -> tuple[int, str | None]:
        _data, size = self._get(0, 1, first=True)
        return size, self.etag

    def _get(self, start: int, stop: int, first: bool = False) -> tuple[bytes, int]:
        import urllib3

        headers = dict(self.headers, Range=f"bytes={start}-{stop - 1}")
        if self.etag is not None and not first:
            headers["If-Match"] = self.etag  # the same object version as the first read
        response = self._request(headers)
        try:
            return self._body(response, start, stop, first)
        except urllib3.exceptions.HTTPError as exc:
            raise MediaError(_unreachable(self.url, self.label, exc)) from None
        finally:
            response.release_conn()

    def _request(self, headers: dict[str, str]) -> Any:
        """One GET, tried again where the connection fails or the server answers 5xx."""
        import urllib3

        failure: BaseException | None = None
        for attempt in range(_ATTEMPTS):
            if attempt:
                time.sleep(0.2 * 2**attempt)
            self.requests += 1
            try:
                response = _http_pool().request(
                    "GET", self.url, headers=headers, preload_content=False, timeout=self.timeout
                )
            except urllib3.exceptions.HTTPError as exc:
                failure = exc
                continue
            if response.status in _RETRY_STATUS and attempt < _ATTEMPTS - 1:
                response.drain_conn()
                response.release_conn()
                continue
            return response
        assert failure is not None
        raise MediaError(_unreachable(self.url, self.label, failure))

    def _body(self, response: Any, start: int, stop: int, first: bool) -> tuple[bytes, int]:
        status = response.status
        if status == 206:
            got = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if got is None or int(got.group(1)) != start or got.group(3) == "*":
                response.close()
                raise MediaError(f"{self.label}: the server's Content-Range does not match")
            if first:
                etag = response.headers.get("ETag")
                self.etag = etag if etag and not etag.startswith("W/") else None
            return response.read(), int(got.group(3))
        if status == 200:  # Range ignored: acceptable only if the whole object was asked for
            length = int(response.headers.get("Content-Length", -1))
            if start == 0 and 0 <= length <= stop:
                return response.read(), length
            response.close()  # never download the rest
            raise MediaError(
                f"the server does not answer ranged reads (HTTP Range) for {self.label}; "
                "exact capture needs to seek"
            )
        response.close()
        if status == 416 and first:
            return b"", 0
        raise MediaError(_http_status_message(status, self.label))


def _http_status_message(status: int, label: str) -> str:
    if status == 404:
        return f"no such object: {label}"
    if status in (401, 403):
        return f"access denied reading {label} (HTTP {status})"
    if status == 412:
        return f"{label} changed while it was read (HTTP 412)"
    return f"HTTP {status} reading {label}"


def _unreachable(url: str, label: str, exc: BaseException) -> str:
    """A one-line reason why ``url``'s server could not be reached (no URL query in it)."""
    parts = urllib.parse.urlsplit(url)
    where = f"{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return f"cannot reach {where} for {label}: {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason in an exception chain (e.g. 'Connection refused')."""
    seen: set[int] = set()
    current: BaseException | None = exc
    reason = type(exc).__name__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        name = type(current).__name__
        if "Timeout" in name:
            reason = "timed out"
        elif "NameResolution" in name or "gaierror" in name:
            reason = "the host name does not resolve"
        elif "SSL" in name:
            reason = "TLS error"
        current = getattr(current, "reason", None) or current.__cause__ or current.__context__
    return reason


# -- s3:// and gs://: fsspec (s3fs, gcsfs) -------------------------------------------------------

_FSSPEC_PACKAGES = {"s3": "s3fs", "gs": "gcsfs"}


def _filesystem(protocol: str, options: Mapping[str, Any]) -> Any:
    try:
        import fsspec

        return fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        raise InvalidArgument(
            "source",
            f"{protocol}:// sources need {_FSSPEC_PACKAGES[protocol]}: "
            f"pip install 'ossframe_native[remote]' ({exc})",
        ) from None
    except TypeError as exc:
        raise InvalidArgument("storage_options", f"not accepted for {protocol}://: {exc}") from None


class _FsspecObject:
    """An object in S3 or GCS through its fsspec filesystem (one HEAD for the size, then one
    ranged GET per block)."""

    def __init__(self, url: str, protocol: str, path: str, options: Mapping[str, Any]) -> None:
        self.label = display(url)
        self.path = path
        self.fs = _filesystem(protocol, options)
        self.version: str | None = None
        self.requests = 0

    def describe(self) -> tuple[int, str | None]:
        self.requests += 1
        with _fsspec_errors(self.label):
            info = self.fs.info(self.path)
        if info.get("type") == "directory":
            raise MediaError(f"no such object (a prefix, not an object): {self.label}")
        self.version = info.get("VersionId") or None
        etag = info.get("ETag") or info.get("etag")
        return int(info.get("size") or 0), str(etag) if etag else None

    def first(self, length: int) -> tuple[bytes, int]:
        size, _etag = self.describe()
        return (self.fetch(0, min(length, size)) if size else b""), size

    def fetch(self, start: int, stop: int) -> bytes:
        extra = {"version_id": self.version} if self.version else {}
        self.requests += 1
        with _fsspec_errors(self.label):
            data: bytes = self.fs.cat_file(self.path, start=start, end=stop, **extra)
        return data


@contextmanager
def _fsspec_errors(label: str) -> Iterator[None]:
    """Turns what s3fs/gcsfs (botocore, aiohttp, google-auth) raise into one-line MediaErrors."""
    try:
        yield
    except FileNotFoundError:
        raise MediaError(f"no such object: {label}") from None
    except PermissionError as exc:
        raise MediaError(f"access denied reading {label}{_code(exc)}") from None
    except (MediaError, InvalidArgument):
        raise
    except Exception as exc:  # noqa: BLE001 - library errors, each made one safe line
        name = type(exc).__name__
        if "Credential" in name:
            raise MediaError(f"no credentials to read {label} ({name})") from None
        code = _code(exc)
        if code:
            raise MediaError(f"cannot read {label}{code}") from None
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url") or "the endpoint"
        endpoint = display(endpoint) if is_url(endpoint) else endpoint
        raise MediaError(f"cannot reach {endpoint} for {label}: {_reason(exc)}") from None


def _code(exc: BaseException) -> str:
    """`` (Code)`` from a botocore-style error in the chain (no message text: it may quote the
    request), else ''."""
    current: BaseException | None = exc
    while current is not None:
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return f" ({code})"
        current = current.__cause__ or current.__context__
    return ""


# -- oss://: Alibaba Cloud's oss2 SDK ------------------------------------------------------------

_OSS_OPTIONS = ("endpoint", "key", "secret", "token", "region")


class _OssObject:
    """An object in Alibaba Cloud OSS (or any OSS-compatible service) through ``oss2``."""

    def __init__(self, url: str, bucket: str, key: str, options: Mapping[str, Any]) -> None:
        self.label = display(url)
        self.key = key
        self.bucket = _oss_bucket(bucket, options)
        self.requests = 0

    def first(self, length: int) -> tuple[bytes, int]:
        data, size, _etag = self._get(0, length)
        return data, size

    def fetch(self, start: int, stop: int) -> bytes:
        return self._get(start, stop)[0]

    def describe(self) -> tuple[int, str | None]:
        _data, size, etag = self._get(0, 1)
        return size, etag

    def _get(self, start: int, stop: int) -> tuple[bytes, int, str | None]:
        # "standard": a range past the end is an error, never the whole object.
        headers = {"x-oss-range-behavior": "standard"}
        self.requests += 1
        with _oss_errors(self.label, self.bucket.endpoint, empty_ok=start == 0) as empty:
            result = self.bucket.get_object(self.key, (start, stop - 1), headers=headers)
            data = result.read()
        if empty:
            return b"", 0, None
        total = re.search(r"/(\d+)$", result.headers.get("Content-Range", ""))
        size = int(total.group(1)) if total else len(data)
        return data, size, result.headers.get("ETag")


def _oss2() -> Any:
    try:
        import oss2
    except ImportError as exc:
        raise InvalidArgument(
            "source", f"oss:// sources need oss2: pip install 'ossframe_native[remote]' ({exc})"
        ) from None
    return oss2


def _oss_bucket(name: str, options: Mapping[str, Any]) -> Any:
    unknown = set(options) - set(_OSS_OPTIONS)
    if unknown:
        raise InvalidArgument(
            "storage_options",
            f"unknown option(s) for oss:// URLs: {', '.join(sorted(unknown))}; allowed: "
            + ", ".join(_OSS_OPTIONS),
        )
    oss2 = _oss2()
    key = options.get("key") or os.environ.get("OSS_ACCESS_KEY_ID")
    secret = options.get("secret") or os.environ.get("OSS_ACCESS_KEY_SECRET")
    token = options.get("token") or os.environ.get("OSS_SESSION_TOKEN")
    if not key or not secret:
        auth = oss2.AnonymousAuth()
    else:
        auth = oss2.StsAuth(key, secret, token) if token else oss2.Auth(key, secret)
    # enable_crc off: ranged reads carry no whole-object CRC.
    return oss2.Bucket(auth, _oss_endpoint(options), name, connect_timeout=10, enable_crc=False)


def _oss_endpoint(options: Mapping[str, Any]) -> str:
    endpoint = options.get("endpoint") or os.environ.get("OSS_ENDPOINT")
    region = options.get("region") or os.environ.get("OSS_REGION")
    if not endpoint and region:
        region = region if region.startswith("oss-") else f"oss-{region}"
        endpoint = f"https://{region}.aliyuncs.com"
    if not endpoint:
        raise InvalidArgument(
            "storage_options",
            "oss:// sources need an endpoint: set OSS_ENDPOINT (or OSS_REGION), or give "
            "storage_options={'endpoint': 'https://oss-cn-hangzhou.aliyuncs.com'}",
        )
    return str(endpoint)


class _Flag:
    def __init__(self) -> None:
        self.value = False

    def __bool__(self) -> bool:
        return self.value


@contextmanager
def _oss_errors(label: str, endpoint: str, empty_ok: bool = False) -> Iterator[_Flag]:
    """Turns oss2's errors into one-line MediaErrors (the error code, never the message, which
    may quote the request); with ``empty_ok`` a 416 on a read from 0 sets the flag (an empty
    object)."""
    oss2 = _oss2()
    empty = _Flag()
    try:
        yield empty
    except oss2.exceptions.ServerError as exc:
        if exc.status == 416 and empty_ok:
            empty.value = True
        elif exc.status in (401, 403):
            raise MediaError(f"access denied reading {label} ({exc.code})") from None
        elif exc.status == 404:
            raise MediaError(f"no such object: {label} ({exc.code})") from None
        else:
            raise MediaError(f"cannot read {label} (HTTP {exc.status}, {exc.code})") from None
    except oss2.exceptions.RequestError as exc:
        where = display(endpoint) if is_url(endpoint) else endpoint
        raise MediaError(
            f"cannot reach {where} for {label}: {_reason(exc.exception or exc)}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Listing (batch globs over buckets)


def has_glob(text: str) -> bool:
    """Whether a URL's object part holds glob characters (an http(s) query never counts)."""
    if not is_url(text):
        return bool(_GLOB_CHARS & set(text))
    scheme = text.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        return False
    return bool(_GLOB_CHARS & set(urllib.parse.urlsplit(text).path))


def glob(pattern: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """The object URLs in a bucket that ``pattern`` matches, sorted (``*`` and ``?`` within one
    path segment, ``**`` across any number of segments, ``[...]`` a character class: as over
    folders). Listing errors are ``MediaError``."""
    scheme = pattern.split("://", 1)[0].lower()
    if scheme not in ("s3", "gs", "gcs", "oss"):
        raise InvalidArgument("sources", f"{display(pattern)}: only bucket URLs can be globbed")
    bucket, key_pattern = _bucket_and_key(pattern)
    matcher = re.compile(_glob_regex(key_pattern))
    prefix = re.split(r"[*?\[]", key_pattern, maxsplit=1)[0]
    options = storage_options or {}
    if scheme == "oss":
        keys = _oss_keys(pattern, bucket, prefix, options)
    else:
        keys = _fsspec_keys(pattern, "gs" if scheme == "gcs" else scheme, bucket, prefix, options)
    return sorted(f"{scheme}://{bucket}/{key}" for key in keys if matcher.fullmatch(key))


def _glob_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            out.append("[^" + re.escape(body[1:]) + "]" if body[0] == "!" else f"[{body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _fsspec_keys(
    pattern: str, protocol: str, bucket: str, prefix: str, options: Mapping[str, Any]
) -> list[str]:
    fs = _filesystem(protocol, options)
    folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    root = f"{bucket}/{folder}".rstrip("/")
    with _fsspec_errors(display(pattern)):
        fs.invalidate_cache(root)  # a listing is taken now, not from an earlier read's cache
        found = fs.find(root)
    return [path[len(bucket) + 1 :] for path in found]


def _oss_keys(pattern: str, bucket: str, prefix: str, options: Mapping[str, Any]) -> list[str]:
    oss2 = _oss2()
    listing = _oss_bucket(bucket, options)
    with _oss_errors(display(pattern), listing.endpoint):
        return [obj.key for obj in oss2.ObjectIteratorV2(listing, prefix=prefix)]
