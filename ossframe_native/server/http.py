"""One request as the routes see it, and reading its body within the service's limits.

Bodies are read straight from the ASGI ``receive`` channel. A body must keep arriving: it is
dropped with ``400 RequestTimeout`` when nothing comes for ``idle_timeout`` seconds, or when
after ``idle_timeout`` seconds it brings less than :data:`MIN_BODY_RATE` bytes per second on
average (the rule of Apache's mod_reqtimeout: every 1 KiB received buys one more second), so a
client trickling a byte every few seconds is gone within about ``idle_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from ossframe_native.server import xml
from ossframe_native.server.fields import ascii_int
from ossframe_native.server.objects import ObjectInfo, Upload
from ossframe_native.server.protocol import BODY_EXTENSION, BodyStream
from ossframe_native.server.xml import OssError

MIN_BODY_RATE = 1024  # bytes per second, averaged over the whole body
MAX_SMALL_BODY = 1 << 20  # process bodies, delete lists, part lists, bucket configurations
_READ_CHUNK = 4 << 20
_BATCH = 1 << 20  # received bytes hashed and written per thread hand-off
_BACKLOG = 4 << 20  # received bytes waiting for the disk before reading pauses

Receive = Callable[[], Awaitable[Mapping[str, Any]]]


@dataclass
class Call:
    """One request: what the routes read."""

    scope: Mapping[str, Any]
    receive: Receive
    request_id: str
    method: str
    bucket: str | None
    key: str | None
    params: dict[str, str]
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body_read: bool = False  # the whole body was received (else the connection is closed)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def user_meta(self) -> dict[str, str]:
        prefix = "x-oss-meta-"
        return {k[len(prefix) :]: v for k, v in self.headers.items() if k.startswith(prefix)}


def parse_call(scope: Mapping[str, Any], receive: Receive, request_id: str) -> Call:
    """Bucket, key, query and headers of a request (the key percent-decoded from the raw
    path; a ``<bucket>.localhost`` Host names the bucket)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    raw_path = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.decode("latin-1").split("?", 1)[0]
    host = headers.get("host", "").rsplit(":", 1)[0]
    if host.endswith(".localhost"):  # virtual-hosted style (the V2 SDK's default there)
        bucket, rest = host[: -len(".localhost")], path[1:]
    else:
        bucket, _, rest = path[1:].partition("/")
    try:
        key = urllib.parse.unquote(rest, errors="strict") if rest else None
        bucket = urllib.parse.unquote(bucket, errors="strict")
        query_string = scope.get("query_string", b"").decode("latin-1")
        query = urllib.parse.parse_qsl(query_string, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise OssError(400, "InvalidObjectName", "the name or query is not UTF-8") from None
    return Call(
        scope, receive, request_id, scope["method"], bucket or None, key, dict(query), query,
        headers,
    )  # fmt: skip


async def receive_body(
    call: Call, sink: Callable[[bytes], Awaitable[None]], idle_timeout: float
) -> None:
    """Feeds the request body to ``sink`` chunk by chunk (see the module docstring)."""
    started = last = time.monotonic()
    received = 0
    with anyio.CancelScope() as scope:
        while True:
            credit = received / MIN_BODY_RATE
            scope.deadline = min(last + idle_timeout, started + idle_timeout + credit)
            message = await call.receive()
            if message["type"] == "http.disconnect":
                raise OssError(400, "IncompleteBody", "the client went away mid-body")
            chunk = message.get("body", b"")
            if chunk:
                last = time.monotonic()
                received += len(chunk)
                await sink(chunk)
            if not message.get("more_body", False):
                call.body_read = True
                return
    raise OssError(400, "RequestTimeout", "the request body stopped arriving")


async def small_body(call: Call, idle_timeout: float) -> bytes:
    """A body of at most :data:`MAX_SMALL_BODY` bytes, its ``Content-MD5`` checked."""
    declared = ascii_int(call.headers.get("content-length"))
    if declared is not None and declared > MAX_SMALL_BODY:
        raise OssError(400, "EntityTooLarge", f"this body may have at most {MAX_SMALL_BODY} bytes")
    data = bytearray()

    async def append(chunk: bytes) -> None:
        data.extend(chunk)
        if len(data) > MAX_SMALL_BODY:
            raise OssError(
                400, "EntityTooLarge", f"this body may have at most {MAX_SMALL_BODY} bytes"
            )

    await receive_body(call, append, idle_timeout)
    content_md5 = call.headers.get("content-md5")
    if (
        content_md5 is not None
        and content_md5 != base64.b64encode(hashlib.md5(data).digest()).decode()
    ):
        raise OssError(400, "InvalidDigest")
    return bytes(data)


async def receive_upload(call: Call, upload: Upload, idle_timeout: float) -> None:
    """Receives an object body into ``upload``: chunks as the parser hands them over (the
    protocol's :class:`BodyStream`), or from ASGI messages under another server, hashed and
    written in threads by a :class:`BatchWriter`; the progress rule of the module docstring
    applies either way."""
    writer = BatchWriter(upload, call.scope.get("extensions", {}).get(BODY_EXTENSION))
    try:
        if writer.stream is None:

            async def sink(chunk: bytes) -> None:
                writer(chunk)
                await writer.backlog()

            await receive_body(call, sink, idle_timeout)
        else:
            await _receive_stream(call, writer.stream, writer, idle_timeout)
    except BaseException:
        await writer.settle()  # the upload may be closed once no batch is being written
        raise
    await writer.drain()
    declared = call.headers.get("content-length")
    if declared is not None and ascii_int(declared) != upload.size:
        raise OssError(400, "IncompleteBody")


async def _receive_stream(
    call: Call, stream: BodyStream, consume: Callable[[bytes | bytearray], None], idle: float
) -> None:
    loop = asyncio.get_running_loop()
    done = stream.attach(consume)
    try:
        while not done.done():
            credit = stream.received / MIN_BODY_RATE
            deadline = min(stream.last + idle, stream.started + idle + credit)
            if loop.time() >= deadline:
                raise OssError(400, "RequestTimeout", "the request body stopped arriving")
            await asyncio.wait([done], timeout=deadline - loop.time())
    finally:
        stream.detach()
    done.result()
    call.body_read = True


class BatchWriter:
    """Hands an upload's chunks to threads in batches of :data:`_BATCH` bytes, one batch at a
    time (:meth:`Upload.write`); while :data:`_BACKLOG` bytes wait for a slow disk, reading from
    the client pauses (``stream``), so memory stays bounded and the event loop never waits."""

    def __init__(self, upload: Upload, stream: BodyStream | None) -> None:
        self.upload = upload
        self.stream = stream
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes | bytearray] = []
        self._pending_bytes = 0
        self._busy: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._paused = False

    def __call__(self, chunk: bytes | bytearray) -> None:
        """Takes one received chunk (in the event loop)."""
        if self._error is not None:
            raise self._error
        self.upload.add(chunk)
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._busy is None and self._pending_bytes >= _BATCH:
            self._start()
        elif self._pending_bytes >= _BACKLOG and self.stream is not None and not self._paused:
            self._paused = True
            self.stream.pause_reading()

    def _start(self) -> None:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        self._busy = self._loop.run_in_executor(None, self.upload.write, batch)
        self._busy.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None]) -> None:
        self._busy = None
        self._error = future.exception() if not future.cancelled() else None
        if self._error is not None and self.stream is not None:
            self.stream.fail(self._error)  # type: ignore[arg-type]
        if self._paused and self.stream is not None:
            self._paused = False
            self.stream.last = self._loop.time()  # the wait was the disk's, not the client's
            self.stream.resume_reading()
        if self._error is None and self._pending_bytes >= _BATCH:
            self._start()

    async def backlog(self) -> None:
        """Waits while :data:`_BACKLOG` bytes wait (ASGI messages: no socket to pause)."""
        while self._busy is not None and self._pending_bytes >= _BACKLOG:
            await asyncio.wait([self._busy])

    async def settle(self) -> None:
        """Waits until no batch is being written."""
        while self._busy is not None:
            await asyncio.wait([self._busy])

    async def drain(self) -> None:
        """Writes what is left; raises what a write raised."""
        await self.settle()
        if self._error is None and self._pending:
            batch, self._pending = self._pending, []
            await self._loop.run_in_executor(None, self.upload.write, batch)
        if self._error is not None:
            raise self._error


def declared_length(call: Call, limit: int) -> None:
    """``EntityTooLarge`` before any byte is read when ``Content-Length`` exceeds ``limit``;
    400 for a Content-Length that is not a number."""
    text = call.headers.get("content-length")
    if text is None:
        return
    value = ascii_int(text)
    if value is None:
        raise OssError(400, "InvalidArgument", "Content-Length is not a number")
    if value > limit:
        raise OssError(400, "EntityTooLarge", MaxSizeAllowed=str(limit))


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b`` range; anything else means the whole object (as OSS does)."""
    if not value or not value.startswith("bytes=") or "," in value:
        return None
    first_text, sep, last_text = value[6:].strip().partition("-")
    first, last = ascii_int(first_text.strip()), ascii_int(last_text.strip())
    if not sep or (first is None and last is None):
        return None
    if first is not None:
        end = size - 1 if last is None else last
        if end < first:
            return None
        if first >= size:
            raise OssError(416, "InvalidRange", ActualObjectSize=str(size))
        return first, min(end, size - 1)
    assert last is not None
    if last == 0:
        raise OssError(416, "InvalidRange", ActualObjectSize=str(size))
    return max(0, size - last), size - 1


def check_conditions(headers: Mapping[str, str], info: ObjectInfo, prefix: str = "") -> None:
    """``If-Match``, ``If-None-Match``, ``If-Modified-Since``, ``If-Unmodified-Since`` (with
    ``prefix`` ``x-oss-copy-source-``: the copy source's): 412 ``PreconditionFailed`` or
    304 ``NotModified`` when one does not hold."""
    match = headers.get(f"{prefix}if-match")
    if match is not None and match.strip() not in (info.etag, info.etag.strip('"'), "*"):
        raise OssError(412, "PreconditionFailed", Condition="If-Match")
    none_match = headers.get(f"{prefix}if-none-match")
    if none_match is not None and none_match.strip() in (info.etag, info.etag.strip('"'), "*"):
        raise OssError(304, "NotModified", Condition="If-None-Match")
    mtime = int(info.mtime)
    unmodified = _http_time(headers.get(f"{prefix}if-unmodified-since"))
    if unmodified is not None and mtime > unmodified:
        raise OssError(412, "PreconditionFailed", Condition="If-Unmodified-Since")
    modified = _http_time(headers.get(f"{prefix}if-modified-since"))
    if modified is not None and mtime <= modified:
        raise OssError(304, "NotModified", Condition="If-Modified-Since")


def _http_time(text: str | None) -> float | None:
    import email.utils

    if not text:
        return None
    try:
        parsed = email.utils.parsedate_tz(text)
        return None if parsed is None else float(email.utils.mktime_tz(parsed))
    except (TypeError, ValueError, OverflowError):
        return None


def object_headers(info: ObjectInfo) -> dict[str, str]:
    """The headers GET and HEAD answer an object with (no length, no type)."""
    headers = {
        "etag": info.etag,
        "last-modified": xml.http_date(info.mtime),
        "x-oss-object-type": info.type,
        "x-oss-storage-class": "Standard",
        "x-oss-hash-crc64ecma": info.crc64,
        "accept-ranges": "bytes",
    }
    if info.type == "Appendable":
        headers["x-oss-next-append-position"] = str(info.size)
    headers.update({f"x-oss-meta-{k}": v for k, v in info.user_meta.items()})
    return headers


async def read_file(path: str, start: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of a file from ``start``, read in a thread chunk by chunk."""
    f = await anyio.to_thread.run_sync(open, path, "rb")
    try:
        await anyio.to_thread.run_sync(f.seek, start)
        while length > 0:
            chunk = await anyio.to_thread.run_sync(f.read, min(_READ_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
    finally:
        f.close()
