"""The service as an ASGI application: OSS bucket, object and processing operations.

Every request is authenticated (``auth.Verifier``) before anything else is read or written;
every error is an OSS ``<Error>`` document (``x-oss-err`` on HEAD), including those of names
and methods no route knows. Bucket and key come from the path (``/bucket/key``, the key
percent-decoded), or from a ``<bucket>.localhost`` Host header. Routes: objects and buckets
here, multipart uploads / copies / appends in ``transfer.py``, processing in
``processing.py``. See docs/SERVICE.md.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.responses import Response, StreamingResponse

from ossframe_native.errors import (
    FrameError,
    InvalidArgument,
    InvalidObjectName,
    MediaError,
    error_code,
)
from ossframe_native.server import processing, transfer, xml
from ossframe_native.server.auth import SignedRequest, Verifier
from ossframe_native.server.fields import ascii_int, count_field
from ossframe_native.server.http import (
    Call,
    check_conditions,
    declared_length,
    object_headers,
    parse_call,
    parse_range,
    read_file,
    receive_body,
    receive_upload,
    small_body,
)
from ossframe_native.server.multipart import Multipart
from ossframe_native.server.objects import ObjectStore, check_key, disk_full, guess_type
from ossframe_native.server.tasks import TaskQueue, WorkerPool
from ossframe_native.server.xml import OssError

log = logging.getLogger("ossframe.server")

_DISCARDED_BODY = 1 << 20  # read and dropped after an early error, to keep the connection
_UNSUPPORTED = ("acl", "tagging", "symlink", "restore", "cors", "versionId")


@dataclass
class Settings:
    """How a service runs (the ``ossframe serve`` options)."""

    root: str
    credentials: Mapping[str, str]
    region: str = "cn-hangzhou"
    workers: int = 1
    topics: Mapping[str, Any] = field(default_factory=dict)
    max_object_size: int = 5 << 30
    max_processing: int = 32  # processing requests admitted at once (running + waiting)
    processing_threads: int = 2  # of which running at once
    max_queued_tasks: int = 1000
    task_time_limit_s: float = 600.0
    idle_timeout_s: float = 30.0  # a request body that stops arriving is dropped
    header_timeout_s: float = 10.0  # a request head must be complete this long after it began
    max_connections: int = 1000
    clock: Callable[[], float] | None = None


class Service:
    """The state shared by the routes: store, verifier, task queue, processing gate."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ObjectStore(settings.root, settings.max_object_size)
        self.multipart = Multipart(self.store)
        self.verifier = Verifier(
            settings.credentials, settings.region, clock=settings.clock or time.time
        )
        self.queue: TaskQueue | None = None
        self.pool: WorkerPool | None = None
        self._admitted = 0
        self._running: anyio.CapacityLimiter | None = None
        self._refused = 0
        self._refused_logged = 0.0
        self.host_id = "127.0.0.1"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Opens the store and the task queue, re-queues interrupted tasks, starts workers."""
        s = self.settings
        swept = self.store.open()
        if swept:
            log.warning("removed %d temporary files of writes that were killed", swept)
        self.multipart.open()
        self.queue = TaskQueue(os.path.join(self.store.server_dir, "tasks.db"), s.max_queued_tasks)
        self.queue.recover()
        self.pool = WorkerPool(
            self.queue, self.store.root, s.workers, s.topics, s.region, s.task_time_limit_s
        )
        self.pool.start()

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.stop()
        if self.queue is not None:
            self.queue.close()
        self.store.close()

    async def __call__(self, scope: Mapping[str, Any], receive: Any, send: Any) -> None:
        """The ASGI entry point."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            response = await self.handle(scope, receive)
            await response(scope, receive, send)  # type: ignore[arg-type, unused-ignore]

    async def _lifespan(self, receive: Any, send: Any) -> None:
        await receive()  # lifespan.startup
        self._running = anyio.CapacityLimiter(self.settings.processing_threads)
        try:
            await anyio.to_thread.run_sync(self.start)
        except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
            log.exception("the service could not start")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await anyio.to_thread.run_sync(self.stop)
        await send({"type": "lifespan.shutdown.complete"})

    # -- request handling ----------------------------------------------------------------------

    async def handle(self, scope: Mapping[str, Any], receive: Any) -> Response:
        """Answers one request; never raises."""
        request_id = xml.new_request_id()
        method = scope["method"]
        call: Call | None = None
        try:
            call = parse_call(scope, receive, request_id)
            self.verifier.verify(
                SignedRequest(
                    method,
                    call.bucket,
                    call.key,
                    call.query,
                    scope.get("query_string", b"").decode("latin-1"),
                    call.headers,
                )
            )
            response = await self._dispatch(call)
        except OssError as exc:
            response = self._error(exc, request_id, method, scope, exc.__cause__ or exc)
        except Exception as exc:  # noqa: BLE001 - a client gets XML, never a traceback
            response = self._error(self._unexpected(exc), request_id, method, scope, exc)
        response.headers["x-oss-request-id"] = request_id
        response.headers["date"] = xml.http_date()
        response.headers["server"] = "ossframe"
        if call is not None and not call.body_read and _has_body(call.headers):
            await self._discard_body(call, response)
        return response

    async def _discard_body(self, call: Call, response: Response) -> None:
        """An error answered before the body was read: a small body is read and dropped (the
        connection stays usable); a large one closes the connection instead."""
        length = ascii_int(call.headers.get("content-length"))
        if length is not None and length <= _DISCARDED_BODY:

            async def drop(chunk: bytes) -> None:
                pass

            with contextlib.suppress(OssError):
                await receive_body(call, drop, self.settings.idle_timeout_s)
                return
        response.headers["connection"] = "close"  # the rest must not be parsed as a request

    def _unexpected(self, exc: Exception) -> OssError:
        if disk_full(exc):
            return OssError(507, "InsufficientStorage")
        return OssError(500, "InternalError")

    def _error(
        self,
        exc: OssError,
        request_id: str,
        method: str,
        scope: Mapping[str, Any],
        cause: BaseException,
    ) -> Response:
        self._log_error(exc, request_id, method, scope, cause)
        exc.message = processing.hide_paths(exc.message, self.store.root)
        body = xml.error_body(exc, request_id, self.host_id)
        if method == "HEAD" or exc.status == 304:
            headers = {**exc.headers, "x-oss-err": xml.head_error_header(body)}
            return Response(status_code=exc.status, headers=headers, media_type="application/xml")
        return Response(
            body, status_code=exc.status, headers=exc.headers, media_type="application/xml"
        )

    def _log_error(
        self,
        exc: OssError,
        request_id: str,
        method: str,
        scope: Mapping[str, Any],
        cause: BaseException,
    ) -> None:
        if exc.status < 500:
            return
        if exc.code == "SlowDown":  # overload: one line per 10 s, not one per refusal
            self._refused += 1
            now = time.monotonic()
            if now - self._refused_logged >= 10:
                log.warning("%d requests refused with 503 SlowDown (overload)", self._refused)
                self._refused, self._refused_logged = 0, now
            return
        path = scope.get("path", "")
        log.error(
            "request %s: %s %s -> %d %s",
            request_id,
            method,
            path,
            exc.status,
            exc.code,
            exc_info=(type(cause), cause, cause.__traceback__),
        )

    async def _dispatch(self, call: Call) -> Response:
        if call.bucket is None:
            if call.method == "GET":
                return self._list_buckets()
            raise OssError(405, "MethodNotAllowed")
        if call.key is None:
            return await self._bucket_op(call)
        check_key(call.key)
        for name in _UNSUPPORTED:
            if name in call.params:
                raise OssError(501, "NotImplemented", f"?{name} is not implemented here")
        method, params = call.method, call.params
        if method in ("GET", "HEAD") and "x-oss-process" in params:
            return await processing.process_get(self, call)
        if method == "GET" and "uploadId" in params:
            return await transfer.list_parts(self, call)
        if method in ("GET", "HEAD") and "objectMeta" in params:
            return await self._object_meta(call)
        if method in ("GET", "HEAD"):
            return await self._get_object(call)
        if method == "PUT" and "uploadId" in params:
            return await transfer.upload_part(self, call)
        if method == "PUT" and "x-oss-copy-source" in call.headers:
            return await transfer.copy_object(self, call)
        if method == "PUT":
            return await self._put_object(call)
        if method == "DELETE" and "uploadId" in params:
            return await transfer.abort(self, call)
        if method == "DELETE":
            bucket, key = call.bucket, call.key
            await anyio.to_thread.run_sync(self.store.delete, bucket, key)
            return Response(status_code=204)
        if method == "POST" and "uploads" in params:
            return await transfer.initiate(self, call)
        if method == "POST" and "uploadId" in params:
            return await transfer.complete(self, call)
        if method == "POST" and "append" in params:
            return await transfer.append_object(self, call)
        if method == "POST" and "x-oss-async-process" in params:
            return await processing.async_process(self, call)
        if method == "POST" and "x-oss-process" in params:
            return await processing.process_save(self, call)
        raise OssError(405, "MethodNotAllowed")

    # -- admission ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Admits one processing request, or refuses it with 503 ``SlowDown`` at once when
        ``max_processing`` are admitted (running or waiting for a thread)."""
        if self._admitted >= self.settings.max_processing:
            raise OssError(
                503, "SlowDown", f"{self._admitted} processing requests are admitted; retry later"
            )
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    async def run_engine(self, fn: Callable[[], Any]) -> Any:
        """Runs engine work in a processing thread; engine errors become OSS errors."""
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self._running)
        except InvalidObjectName as exc:  # a name the store cannot hold
            raise OssError(409, "InvalidObjectName", str(exc).partition(": ")[2]) from None
        except InvalidArgument as exc:
            raise OssError(400, "InvalidArgument", str(exc)) from None
        except MediaError as exc:
            raise OssError(
                400, "InvalidArgument", f"The media cannot be processed (MediaError): {exc}"
            ) from None
        except FrameError as exc:
            if disk_full(exc.__cause__ or exc):
                raise OssError(507, "InsufficientStorage") from exc
            raise OssError(500, "InternalError", f"{error_code(exc)}: {exc}") from exc

    # -- buckets ----------------------------------------------------------------------------

    def _list_buckets(self) -> Response:
        body = xml.list_buckets_body(self.store.list_buckets(), "ossframe", self.settings.region)
        return Response(body, media_type="application/xml")

    async def _bucket_op(self, call: Call) -> Response:
        bucket = call.bucket
        assert bucket is not None
        method, params = call.method, call.params
        self.store.bucket_dir(bucket)  # the name first
        if method == "PUT" and not params:
            await small_body(call, self.settings.idle_timeout_s)  # a CreateBucketConfiguration
            self.store.create_bucket(bucket)
            return Response(headers={"location": f"/{bucket}"})
        if method == "DELETE" and not params:
            await anyio.to_thread.run_sync(self.store.delete_bucket, bucket)
            return Response(status_code=204)
        if method == "POST" and "delete" in params:
            return await self._delete_many(call)
        if method not in ("GET", "HEAD"):
            raise OssError(405, "MethodNotAllowed")
        self.store.require_bucket(bucket)
        if "bucketInfo" in params or method == "HEAD":
            created = os.stat(self.store.bucket_dir(bucket)).st_ctime
            body = xml.bucket_info_body(bucket, created, "ossframe", self.settings.region)
            return Response(body, media_type="application/xml")
        if "location" in params:
            text = f"<LocationConstraint>oss-{self.settings.region}</LocationConstraint>"
            return Response((xml.XML_HEAD + text).encode(), media_type="application/xml")
        if "taskId" in params:
            return await self._task_state(bucket, params["taskId"])
        if "uploads" in params:
            return await transfer.list_uploads(self, call)
        return await self._list_objects(bucket, params)

    async def _list_objects(self, bucket: str, params: Mapping[str, str]) -> Response:
        v2 = params.get("list-type") == "2"
        encode = params.get("encoding-type") == "url"
        max_keys = count_field(params.get("max-keys"), "max-keys", 1, 1000, default=100)
        after = params.get("start-after" if v2 else "marker", "")
        token = params.get("continuation-token", "")
        if v2 and token:
            try:
                after = max(after, base64.urlsafe_b64decode(token.encode()).decode())
            except ValueError:
                raise OssError(400, "InvalidArgument", "continuation-token is not valid") from None
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        objects, prefixes, truncated, last = await anyio.to_thread.run_sync(
            lambda: self.store.list(bucket, prefix, after, delimiter, max_keys)
        )
        next_marker = last
        if v2 and last is not None:
            next_marker = base64.urlsafe_b64encode(last.encode()).decode()
        body = xml.list_objects_body(
            bucket=bucket,
            params={**params, "max-keys": str(max_keys)},
            objects=objects,
            prefixes=prefixes,
            truncated=truncated,
            next_marker=next_marker,
            v2=v2,
            encode=encode,
            quote=lambda s: urllib.parse.quote(s, safe="/"),
        )
        return Response(body, media_type="application/xml")

    async def _delete_many(self, call: Call) -> Response:
        """DeleteMultipleObjects: every key is checked before any is deleted."""
        assert call.bucket is not None
        body = await small_body(call, self.settings.idle_timeout_s)
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            raise OssError(400, "MalformedXML") from None
        quiet = (root.findtext("Quiet") or "false").lower() == "true"
        keys = [k.text or "" for k in root.findall("Object/Key")]
        if not keys or len(keys) > 1000:
            raise OssError(400, "MalformedXML", "give 1 to 1000 <Object><Key> elements")
        for key in keys:
            check_key(key)
        bucket = call.bucket
        self.store.require_bucket(bucket)

        def delete_all() -> None:
            for key in keys:
                self.store.delete(bucket, key)

        await anyio.to_thread.run_sync(delete_all)
        encode = call.params.get("encoding-type") == "url"
        result = xml.delete_result_body(
            keys, quiet, encode, lambda s: urllib.parse.quote(s, safe="/")
        )
        return Response(result, media_type="application/xml")

    async def _task_state(self, bucket: str, task_id: str) -> Response:
        assert self.queue is not None
        task = await anyio.to_thread.run_sync(self.queue.get, task_id)
        if task is None or task.bucket != bucket:
            raise OssError(404, "NoSuchTask", TaskId=task_id[:100])
        state = processing.hide_paths(task.to_dict(), self.store.root)
        return Response(json.dumps(state).encode(), media_type="application/json")

    # -- objects ----------------------------------------------------------------------------

    async def _object_meta(self, call: Call) -> Response:
        assert call.bucket is not None and call.key is not None
        info = await anyio.to_thread.run_sync(self.store.stat, call.bucket, call.key)
        headers = object_headers(info)
        headers = {k: headers[k] for k in ("etag", "last-modified", "x-oss-hash-crc64ecma")}
        headers["content-length"] = str(info.size) if call.method == "HEAD" else "0"
        return Response(status_code=200, headers=headers)

    async def _get_object(self, call: Call) -> Response:
        assert call.bucket is not None and call.key is not None
        info = await anyio.to_thread.run_sync(self.store.stat, call.bucket, call.key)
        check_conditions(call.headers, info)
        headers = object_headers(info)
        start, end = 0, info.size - 1
        status = 200
        span = parse_range(call.headers.get("range"), info.size)
        if span is not None:
            start, end = span
            status = 206
            headers["content-range"] = f"bytes {start}-{end}/{info.size}"
        length = max(0, end - start + 1)
        headers["content-length"] = str(length)
        headers["content-type"] = info.content_type  # as stored: no charset added
        if call.method == "HEAD":
            return Response(status_code=status, headers=headers)
        return StreamingResponse(
            read_file(info.path, start, length), status_code=status, headers=headers
        )

    async def _put_object(self, call: Call) -> Response:
        assert call.bucket is not None and call.key is not None
        bucket, key = call.bucket, call.key
        self.store.check_storable(bucket, key)  # names first: nothing written if bad
        declared_length(call, self.store.max_object_size)
        content_md5 = call.headers.get("content-md5")
        user_meta = call.user_meta
        content_type = call.headers.get("content-type") or guess_type(key)
        upload = self.store.begin_upload()
        try:
            await receive_upload(call, upload, self.settings.idle_timeout_s)
            info = await anyio.to_thread.run_sync(
                lambda: self.store.commit(upload, bucket, key, content_type, user_meta, content_md5)
            )
        finally:
            upload.abort()
        return Response(headers={"etag": info.etag, "x-oss-hash-crc64ecma": info.crc64})


def _has_body(headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return ascii_int(length) != 0
    return "chunked" in headers.get("transfer-encoding", "").lower()
