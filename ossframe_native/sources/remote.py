"""Remote objects read by ranged requests into a block cache shared by an object's readers
(one per container), whatever library reaches the object (:class:`Store`)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import MediaError
from .local import Counters, Stream

# The first ranged read after a jump, and the largest block reading on grows to (doubling).
# Chosen by measuring snapshots in joined 1080p MKV / MPEG-TS / MP4 files (docs/BEHAVIOUR.md,
# "Sources"): smaller first blocks cost more requests in MPEG-TS's timestamp search, larger
# ones more bytes for nothing.
FIRST_BLOCK = 1 << 20
MAX_BLOCK = 8 << 20
# Fetched blocks kept per opened source (a reopened container reads its header again).
_CACHE_BYTES = 64 << 20


class Store(Protocol):
    """One remote object, as a backend reaches it."""

    label: str
    requests: int  # requests made so far

    def first(self, length: int) -> tuple[bytes, int]:
        """The first ``length`` bytes (fewer for a smaller object) and the object's size."""

    def fetch(self, start: int, stop: int) -> bytes:
        """Bytes ``start`` up to ``stop`` (exclusive), in one request."""

    def describe(self) -> tuple[int, str | None]:
        """The object's size and ETag, in one request."""


class Blocks:
    """The fetched blocks of one remote object, shared by its readers (least recently used
    dropped past :data:`_CACHE_BYTES`). A miss fetches :data:`FIRST_BLOCK` bytes, or twice
    the block it continues (up to :data:`MAX_BLOCK`) where a block ends exactly there."""

    def __init__(self, store: Store, counters: Counters) -> None:
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


class RemoteReader(Stream):
    """A seekable stream over a remote object's blocks (one per container)."""

    def __init__(self, blocks: Blocks, name: str) -> None:
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


def reason(exc: BaseException) -> str:
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
