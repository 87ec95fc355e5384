"""Local sources (a path, bytes, a file object) opened as seekable streams that count the
bytes read, and :class:`Opened`, what every opened source is.

A path is opened by Python as exactly that file (never handed to FFmpeg's protocol layer,
where ``concat:a.mp4`` or ``pipe:0`` would mean something else).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from ..errors import MediaError
from .names import display


class Counters(Protocol):
    """What a reader counts into (``DecodeStats`` has these fields)."""

    bytes_read: int
    requests: int


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


def open_local(source: Any, path: str | None, counters: Counters) -> Opened | None:
    """Opens bytes, the local ``path`` a source names, or a seekable binary file object; None
    for anything else."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise MediaError("the source is empty (0 bytes)")
        return Opened(display(source), len(data), lambda: _Counted(io.BytesIO(data), counters))
    if path is not None:
        size = _check_path(path)
        return Opened(path, size, lambda: _Counted(_open_file(path), counters, path))
    if _is_seekable_binary(source):
        return Opened(display(source), _file_size(source), lambda: _Counted(source, counters))
    return None


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


class Stream(io.RawIOBase):
    """A readable, seekable raw stream; subclasses give ``read``, ``seek`` and ``tell``."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Counted(Stream):
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
