"""The HTTP connection protocol: uvicorn's httptools protocol with the service's limits.

* A request head must be complete ``header_timeout`` seconds after its first byte (for a new
  connection: after it opened); otherwise the connection gets ``400 RequestTimeout`` and is
  closed. Idle keep-alive connections close after the keep-alive timeout, as in uvicorn.
* At most ``max_connections`` are open: a new one beyond that closes the connection that has
  waited longest for its request head (slow clients go first); when none is waiting, the new
  connection gets ``503 SlowDown``. Hundreds of slow clients therefore never lock others out.
* A request head may have at most :data:`MAX_HEAD_BYTES`; a request the parser cannot read
  gets ``400 InvalidRequest``, as XML like every answer.
* Each request's scope carries a :class:`BodyStream` under ``extensions[BODY_EXTENSION]``: an
  upload route attaches a consumer to it and gets every body chunk straight from the parser,
  instead of one ASGI ``http.request`` message (a buffer copy, a task switch and a pause and
  resume of the socket) per chunk.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ossframe_native.server import xml
from ossframe_native.server.xml import OssError


def raw_error(status: int, code: str, message: str | None = None) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection."""
    request_id = xml.new_request_id()
    body = xml.error_body(OssError(status, code, message), request_id, "ossframe")
    reason = {400: "Bad Request", 503: "Service Unavailable"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/xml\r\n"
        f"content-length: {len(body)}\r\nx-oss-request-id: {request_id}\r\n"
        f"date: {xml.http_date()}\r\nserver: ossframe\r\nconnection: close\r\n"
        f"x-oss-err: {xml.head_error_header(body)}\r\n\r\n"  # the method may be HEAD
    )
    return head.encode() + body


MAX_HEAD_BYTES = 64 * 1024  # request line and headers
BODY_EXTENSION = "ossframe.body"


class BodyStream:
    """One request's body, handed from the parser to a consumer attached by the route.

    After :meth:`attach`, every body chunk is a call ``consume(chunk)`` in the event loop, and
    :attr:`done` is resolved when the body is complete, or fails with what ``consume`` raised or
    with ``IncompleteBody`` when the client goes away. Chunks that arrived before are consumed
    first. After :meth:`detach` (or a failure) the rest of the body is left to ASGI ``receive``.
    :attr:`received` and :attr:`last` (loop time of the last chunk) tell the route's timeouts
    how the body progresses; :meth:`pause_reading` / :meth:`resume_reading` stop and restart
    reading from the socket.
    """

    def __init__(self, protocol: GuardedProtocol) -> None:
        self._protocol = protocol
        self._cycle = protocol.cycle
        self._consume: Callable[[bytes | bytearray], None] | None = None
        self.done: asyncio.Future[None] | None = None  # made by attach
        self.received = 0
        self.started = self.last = 0.0

    @property
    def attached(self) -> bool:
        return self._consume is not None

    def attach(self, consume: Callable[[bytes | bytearray], None]) -> asyncio.Future[None]:
        cycle, protocol = self._cycle, self._protocol
        assert cycle is not None and self._consume is None
        self.done = protocol.loop.create_future()
        self._consume = consume
        self.started = self.last = protocol.loop.time()
        if cycle.waiting_for_100_continue and not protocol.transport.is_closing():
            protocol.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        early, cycle.body = cycle.body, bytearray()
        if early:
            self.feed(early)
        if cycle.disconnected:
            self.lost()
        elif not cycle.more_body:
            self.complete()
        self.resume_reading()
        return self.done

    def detach(self) -> None:
        self._consume = None

    def feed(self, chunk: bytes | bytearray) -> None:
        consume = self._consume
        assert consume is not None
        self.received += len(chunk)
        self.last = self._protocol.loop.time()
        try:
            consume(chunk)
        except Exception as exc:  # noqa: BLE001 - handed to the route through done
            self._finish(exc)

    def complete(self) -> None:
        self._finish(None)

    def lost(self) -> None:
        self._finish(OssError(400, "IncompleteBody", "the client went away mid-body"))

    def fail(self, error: Exception) -> None:
        """Ends the body with ``error`` (the consumer's own work failed)."""
        self._finish(error)

    def _finish(self, error: Exception | None) -> None:
        self.detach()
        if self.done is not None and not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)

    def pause_reading(self) -> None:
        self._protocol.flow.pause_reading()

    def resume_reading(self) -> None:
        if not self._protocol.transport.is_closing():
            self._protocol.flow.resume_reading()


_RECV_BUFFER = 256 * 1024  # asyncio's own recv size
_RECEIVED = threading.local()


# misc: where uvicorn is not installed, type checkers see HttpToolsProtocol as Any.
class GuardedProtocol(HttpToolsProtocol, asyncio.BufferedProtocol):  # type: ignore[misc, unused-ignore]
    """See the module docstring; the limits are class attributes set by :func:`protocol`."""

    header_timeout = 10.0
    max_connections = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._body: BodyStream | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_since = 0.0
        self._head_bytes = 0

    # Sockets are read into one buffer per event-loop thread, reused: memory already mapped
    # and warm in the cache, instead of a fresh bytes object per read. The parser copies what
    # it hands on before buffer_updated returns, so connections can share it.

    def get_buffer(self, sizehint: int) -> memoryview:
        buffer: memoryview | None = getattr(_RECEIVED, "buffer", None)
        if buffer is None:
            buffer = _RECEIVED.buffer = memoryview(bytearray(_RECV_BUFFER))
        return buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_RECEIVED.buffer[:nbytes])

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:  # answered 400 InvalidRequest by the parser loop
            raise httptools.HttpParserError(f"the request head exceeds {MAX_HEAD_BYTES} bytes")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override, unused-ignore]
        super().connection_made(transport)
        self._expect_head()
        if len(self.connections) > self.max_connections:
            self._shed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        if self._body is not None and self._body.attached:
            self._body.lost()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._head_timer is None:
            self._expect_head()

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope is self.scope:
            self._body = BodyStream(self)
            self.scope.setdefault("extensions", {})[BODY_EXTENSION] = self._body

    def on_body(self, body: bytes) -> None:
        stream = self._body
        if stream is not None and stream.attached:
            stream.feed(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        stream = self._body
        if stream is not None and stream.attached:
            stream.complete()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._head_done()
        if not self.transport.is_closing():
            self.transport.write(raw_error(400, "InvalidRequest", f"{msg} (HTTP parser)"))
            self.transport.close()

    def _expect_head(self) -> None:
        self._head_since = self.loop.time()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _head_done(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            message = f"the request head was not complete within {self.header_timeout:g} s"
            self.transport.write(raw_error(400, "RequestTimeout", message))
            self.transport.close()

    def _shed(self) -> None:
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedProtocol) and c._head_timer is not None and c is not self
        ]
        idle = [  # kept alive between requests
            c
            for c in self.connections
            if isinstance(c, GuardedProtocol)
            and c is not self
            and c.cycle is not None
            and c.cycle.response_complete
        ]
        for group in (waiting, idle):
            if group:
                oldest = min(group, key=lambda c: c._head_since)
                oldest._head_done()
                oldest.transport.close()
                return
        self._head_done()
        self.transport.write(raw_error(503, "SlowDown", "too many connections; retry later"))
        self.transport.close()


def protocol(header_timeout: float, max_connections: int) -> type[GuardedProtocol]:
    """A protocol class with these limits (uvicorn instantiates it per connection)."""
    return type(
        "ServiceProtocol",
        (GuardedProtocol,),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )
