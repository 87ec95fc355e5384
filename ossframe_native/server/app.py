"""The HTTP routes: OSS bucket, object and processing operations on Starlette.

Every request is authenticated (``auth.Verifier``) before anything else is read or written;
errors are OSS ``<Error>`` documents (``x-oss-err`` on HEAD). Bucket and key come from the path
(``/bucket/key``, the key percent-decoded), or from a ``<bucket>.localhost`` Host header.

Processing: ``GET ?x-oss-process=video/snapshot,..`` runs the engine in a thread and answers
with the image; ``POST ?x-oss-process`` with ``sys/saveas`` saves it; ``POST
?x-oss-async-process`` queues a durable task (``tasks.py``). ``GET /<bucket>/?taskId=<id>``
reads a task's state. See docs/SERVICE.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ossframe_native.errors import FrameError, InvalidArgument, MediaError, error_code
from ossframe_native.server import xml
from ossframe_native.server.auth import SignedRequest, Verifier
from ossframe_native.server.objects import (
    Crc64,
    ObjectInfo,
    ObjectStore,
    Upload,
    check_bucket_name,
)
from ossframe_native.server.tasks import TaskQueue, WorkerPool
from ossframe_native.server.xml import OssError

_READ_CHUNK = 1 << 20
_UPLOAD_BATCH = 4 << 20  # pending upload bytes (at most about three batches in memory)
_MAX_SMALL_BODY = 1 << 20  # process bodies, delete lists, bucket configurations
_UNSUPPORTED = ("acl", "append", "uploads", "uploadId", "tagging", "symlink", "restore", "cors")
_ALL_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"]


@dataclass
class Settings:
    """How a service runs (the ``ossframe serve`` options)."""

    root: str
    credentials: Mapping[str, str]
    region: str = "cn-hangzhou"
    workers: int = 1
    topics: Mapping[str, Any] = field(default_factory=dict)
    max_object_size: int = 5 << 30
    max_processing: int = 8  # processing requests admitted at once (running + waiting)
    processing_threads: int = 2  # of which running at once
    max_queued_tasks: int = 1000
    task_time_limit_s: float = 600.0
    idle_timeout_s: float = 30.0  # a request body that sends nothing this long is dropped
    clock: Callable[[], float] | None = None


@dataclass
class _Call:
    """One request as the handlers see it."""

    request: Request
    request_id: str
    method: str
    bucket: str | None
    key: str | None
    params: dict[str, str]
    headers: dict[str, str]


class Service:
    """The state shared by the routes: store, verifier, task queue, processing gate."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ObjectStore(settings.root, settings.max_object_size)
        self.verifier = Verifier(
            settings.credentials, settings.region, clock=settings.clock or time.time
        )
        self.queue: TaskQueue | None = None
        self.pool: WorkerPool | None = None
        self._admitted = 0
        self._running: anyio.CapacityLimiter | None = None
        self.host_id = "127.0.0.1"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Opens the store and the task queue, re-queues interrupted tasks, starts workers."""
        s = self.settings
        self.store.open()
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

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._running = anyio.CapacityLimiter(self.settings.processing_threads)
        await anyio.to_thread.run_sync(self.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(self.stop)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{path:path}", self.handle, methods=_ALL_METHODS)],
            lifespan=self.lifespan,
        )

    # -- request handling ----------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        request_id = xml.new_request_id()
        method = request.method
        try:
            call = self._parse(request, request_id)
            self.verifier.verify(
                SignedRequest(
                    method,
                    call.bucket,
                    call.key,
                    urllib.parse.parse_qsl(request.url.query, keep_blank_values=True),
                    request.scope.get("query_string", b"").decode("latin-1"),
                    call.headers,
                )
            )
            response = await self._dispatch(call)
        except OssError as exc:
            response = self._error(exc, request_id, method)
        except Exception as exc:  # noqa: BLE001 - a client gets XML, never a traceback
            response = self._error(
                OssError(500, "InternalError", f"{type(exc).__name__}: {exc}"), request_id, method
            )
        response.headers["x-oss-request-id"] = request_id
        response.headers["date"] = xml.http_date()
        response.headers["server"] = "ossframe"
        return response

    def _parse(self, request: Request, request_id: str) -> _Call:
        headers: dict[str, str] = {}
        for name, value in request.headers.raw:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        bucket: str | None
        host = headers.get("host", "").rsplit(":", 1)[0]
        if host.endswith(".localhost"):  # virtual-hosted style (the V2 SDK's default there)
            bucket, rest = host[: -len(".localhost")], path[1:]
        else:
            bucket, _, rest = path[1:].partition("/")
        try:
            key = urllib.parse.unquote(rest, errors="strict") if rest else None
            bucket = urllib.parse.unquote(bucket, errors="strict") or None
        except UnicodeDecodeError:
            raise OssError(400, "InvalidObjectName", "the object name is not UTF-8") from None
        params = dict(urllib.parse.parse_qsl(request.url.query, keep_blank_values=True))
        return _Call(request, request_id, request.method, bucket, key, params, headers)

    def _error(self, exc: OssError, request_id: str, method: str) -> Response:
        body = xml.error_body(exc, request_id, self.host_id)
        if method == "HEAD":
            return Response(
                status_code=exc.status,
                headers={"x-oss-err": xml.head_error_header(body)},
                media_type="application/xml",
            )
        return Response(body, status_code=exc.status, media_type="application/xml")

    async def _dispatch(self, call: _Call) -> Response:
        if call.bucket is None:
            if call.method == "GET":
                return self._list_buckets()
            raise OssError(405, "MethodNotAllowed")
        check_bucket_name(call.bucket)
        if call.key is None:
            return await self._bucket_op(call)
        for name in _UNSUPPORTED:
            if name in call.params:
                raise OssError(501, "NotImplemented", f"?{name} is not implemented here")
        method = call.method
        if method in ("GET", "HEAD") and "objectMeta" in call.params:
            return self._object_meta(call)
        if method == "GET" and "x-oss-process" in call.params:
            return await self._process_get(call)
        if method in ("GET", "HEAD"):
            return self._get_object(call)
        if method == "PUT":
            if "x-oss-copy-source" in call.headers:
                raise OssError(501, "NotImplemented", "CopyObject is not implemented here")
            return await self._put_object(call)
        if method == "DELETE":
            self.store.delete(call.bucket, call.key)
            return Response(status_code=204)
        if method == "POST" and "x-oss-async-process" in call.params:
            return await self._async_process(call)
        if method == "POST" and "x-oss-process" in call.params:
            return await self._process_save(call)
        raise OssError(405, "MethodNotAllowed")

    # -- buckets ----------------------------------------------------------------------------

    def _list_buckets(self) -> Response:
        body = xml.list_buckets_body(self.store.list_buckets(), "ossframe", self.settings.region)
        return Response(body, media_type="application/xml")

    async def _bucket_op(self, call: _Call) -> Response:
        bucket = call.bucket
        assert bucket is not None
        method, params = call.method, call.params
        if method == "PUT" and not params:
            await self._small_body(call)  # an optional CreateBucketConfiguration
            self.store.create_bucket(bucket)
            return Response(headers={"location": f"/{bucket}"})
        if method == "DELETE" and not params:
            self.store.delete_bucket(bucket)
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
        return self._list_objects(bucket, params)

    def _list_objects(self, bucket: str, params: Mapping[str, str]) -> Response:
        v2 = params.get("list-type") == "2"
        encode = params.get("encoding-type") == "url"
        text = params.get("max-keys") or "100"
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            raise OssError(400, "InvalidArgument", f"max-keys {text!r}: give 1 to 1000")
        after = params.get("start-after" if v2 else "marker", "")
        token = params.get("continuation-token", "")
        if v2 and token:
            try:
                after = max(after, base64.urlsafe_b64decode(token.encode()).decode())
            except ValueError:
                raise OssError(400, "InvalidArgument", "continuation-token is not valid") from None
        objects, prefixes, truncated, last = self.store.list(
            bucket, params.get("prefix", ""), after, params.get("delimiter", ""), int(text)
        )
        next_marker = last
        if v2 and last is not None:
            next_marker = base64.urlsafe_b64encode(last.encode()).decode()
        body = xml.list_objects_body(
            bucket=bucket,
            params={**params, "max-keys": text},
            objects=objects,
            prefixes=prefixes,
            truncated=truncated,
            next_marker=next_marker,
            v2=v2,
            encode=encode,
            quote=lambda s: urllib.parse.quote(s, safe="/"),
        )
        return Response(body, media_type="application/xml")

    async def _delete_many(self, call: _Call) -> Response:
        assert call.bucket is not None
        body = await self._small_body(call)
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            raise OssError(400, "MalformedXML") from None
        quiet = (root.findtext("Quiet") or "false").lower() == "true"
        keys = [k.text or "" for k in root.findall("Object/Key")]
        if not keys or len(keys) > 1000:
            raise OssError(400, "MalformedXML", "give 1 to 1000 <Object><Key> elements")
        self.store.require_bucket(call.bucket)
        for key in keys:
            self.store.delete(call.bucket, key)
        encode = call.params.get("encoding-type") == "url"
        result = xml.delete_result_body(
            keys, quiet, encode, lambda s: urllib.parse.quote(s, safe="/")
        )
        return Response(result, media_type="application/xml")

    async def _task_state(self, bucket: str, task_id: str) -> Response:
        assert self.queue is not None
        task = await anyio.to_thread.run_sync(self.queue.get, task_id)
        if task is None or task.bucket != bucket:
            raise OssError(404, "NoSuchTask", TaskId=task_id)
        return Response(json.dumps(task.to_dict()).encode(), media_type="application/json")

    # -- objects ----------------------------------------------------------------------------

    @staticmethod
    def _object_headers(info: ObjectInfo) -> dict[str, str]:
        headers = {
            "etag": info.etag,
            "last-modified": xml.http_date(info.mtime),
            "x-oss-object-type": "Normal",
            "x-oss-storage-class": "Standard",
            "x-oss-hash-crc64ecma": info.crc64,
            "accept-ranges": "bytes",
        }
        headers.update({f"x-oss-meta-{k}": v for k, v in info.user_meta.items()})
        return headers

    def _object_meta(self, call: _Call) -> Response:
        assert call.bucket is not None and call.key is not None
        info = self.store.stat(call.bucket, call.key)
        headers = self._object_headers(info)
        headers = {k: headers[k] for k in ("etag", "last-modified", "x-oss-hash-crc64ecma")}
        headers["content-length"] = str(info.size) if call.method == "HEAD" else "0"
        return Response(status_code=200, headers=headers)

    def _get_object(self, call: _Call) -> Response:
        assert call.bucket is not None and call.key is not None
        info = self.store.stat(call.bucket, call.key)
        headers = self._object_headers(info)
        start, end = 0, info.size - 1
        status = 200
        span = _parse_range(call.headers.get("range"), info.size)
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
            _read_file(info.path, start, length), status_code=status, headers=headers
        )

    async def _put_object(self, call: _Call) -> Response:
        assert call.bucket is not None and call.key is not None
        self.store.object_path(call.bucket, call.key)  # names first: nothing written if bad
        self.store.require_bucket(call.bucket)
        declared = call.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.store.max_object_size
        ):
            raise OssError(400, "EntityTooLarge", MaxSizeAllowed=str(self.store.max_object_size))
        content_md5 = call.headers.get("content-md5")
        user_meta = {
            k[len("x-oss-meta-") :]: v
            for k, v in call.headers.items()
            if k.startswith("x-oss-meta-")
        }
        upload = self.store.begin_upload()
        try:
            await self._receive_upload(call, upload)
            if declared is not None and declared.isdigit() and upload.size != int(declared):
                raise OssError(400, "IncompleteBody")
            bucket, key = call.bucket, call.key
            content_type = call.headers.get("content-type") or _guess_type(key)
            info = await anyio.to_thread.run_sync(
                lambda: self.store.commit(upload, bucket, key, content_type, user_meta, content_md5)
            )
        finally:
            upload.abort()
        headers = {"etag": info.etag, "x-oss-hash-crc64ecma": info.crc64}
        return Response(headers=headers)

    async def _receive_upload(self, call: _Call, upload: Upload) -> None:
        """Receives an object body while the previous batch is hashed and written in a
        thread (MD5 and the disk write run in parallel with the HTTP parsing)."""
        loop = asyncio.get_running_loop()
        previous: asyncio.Future[None] | None = None

        async def sink(chunk: bytes) -> None:
            nonlocal previous
            upload.append(chunk)
            if upload.pending >= _UPLOAD_BATCH:
                if previous is not None:
                    await asyncio.shield(previous)  # one batch in flight: bounded memory
                previous = loop.run_in_executor(None, upload.consume, upload.take())

        try:
            await self._receive(call, sink)
        finally:
            if previous is not None:
                await asyncio.wait([previous])
        if previous is not None:
            previous.result()
        await anyio.to_thread.run_sync(upload.flush)

    async def _receive(self, call: _Call, sink: Callable[[bytes], Awaitable[None]]) -> None:
        """Feeds the request body to ``sink`` chunk by chunk; a client that sends nothing for
        ``idle_timeout_s`` is dropped (one watchdog per request, not a timer per chunk)."""
        idle = self.settings.idle_timeout_s
        last = time.monotonic()
        timed_out = False

        async def watchdog(scope: anyio.CancelScope) -> None:
            nonlocal timed_out
            while True:
                await anyio.sleep(max(0.05, min(1.0, idle / 4)))
                if time.monotonic() - last > idle:
                    timed_out = True
                    scope.cancel()
                    return

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(watchdog, group.cancel_scope)
                async for chunk in call.request.stream():
                    last = time.monotonic()
                    if chunk:
                        await sink(chunk)
                group.cancel_scope.cancel()
        except ClientDisconnect:
            raise OssError(400, "IncompleteBody", "the client went away mid-body") from None
        if timed_out:
            raise OssError(400, "RequestTimeout", "the request body stopped arriving")

    async def _small_body(self, call: _Call) -> bytes:
        data = bytearray()

        async def append(chunk: bytes) -> None:
            data.extend(chunk)
            if len(data) > _MAX_SMALL_BODY:
                raise OssError(
                    400, "EntityTooLarge", f"this body may have at most {_MAX_SMALL_BODY} bytes"
                )

        await self._receive(call, append)
        content_md5 = call.headers.get("content-md5")
        if (
            content_md5 is not None
            and content_md5 != base64.b64encode(hashlib.md5(data).digest()).decode()
        ):
            raise OssError(400, "InvalidDigest")
        return bytes(data)

    # -- processing ---------------------------------------------------------------------------

    async def _run_engine(self, fn: Callable[[], Any]) -> Any:
        """Runs engine work in a thread; 503 ``SlowDown`` when too many are admitted."""
        if self._admitted >= self.settings.max_processing:
            raise OssError(
                503, "SlowDown", f"{self._admitted} processing requests are running; retry later"
            )
        self._admitted += 1
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self._running)
        except InvalidArgument as exc:
            raise OssError(400, "InvalidArgument", str(exc)) from None
        except MediaError as exc:
            raise OssError(
                400, "InvalidArgument", f"The media cannot be processed (MediaError): {exc}"
            ) from None
        except FrameError as exc:
            raise OssError(500, "InternalError", f"{error_code(exc)}: {exc}") from None
        finally:
            self._admitted -= 1

    def _parse_spec(self, spec: str, *, saveas: bool) -> Any:
        from ossframe_native import parse_process

        try:
            request = parse_process(spec)
        except InvalidArgument as exc:
            raise OssError(400, "InvalidArgument", str(exc)) from None
        if type(request.action).__name__ != "SnapshotRequest":
            raise OssError(
                400,
                "InvalidArgument",
                f"{request.action.action} is asynchronous only: send it with POST "
                "?x-oss-async-process and '|sys/saveas,..' (bucket.async_process_object)",
            )
        if request.notify is not None:
            raise OssError(400, "InvalidArgument", "notify is for x-oss-async-process only")
        if saveas and request.saveas is None:
            raise OssError(
                400, "InvalidArgument", "POST ?x-oss-process needs '|sys/saveas,b_..,o_..'"
            )
        if not saveas and request.saveas is not None:
            raise OssError(
                400,
                "InvalidArgument",
                "sys/saveas needs POST ?x-oss-process (bucket.process_object)",
            )
        return request

    async def _process_get(self, call: _Call) -> Response:
        from ossframe_native.task import run_request

        assert call.bucket is not None and call.key is not None
        spec = call.params["x-oss-process"]
        request = self._parse_spec(spec, saveas=False)
        info = self.store.stat(call.bucket, call.key)
        result = await self._run_engine(lambda: run_request(info.path, spec, request))
        image = result.images[0]
        crc = Crc64()
        crc.update(image.data)
        headers = {
            "x-oss-hash-crc64ecma": str(crc.value),
            "content-length": str(len(image.data)),
        }
        if call.method == "HEAD":
            return Response(headers=headers, media_type=f"image/{_IMAGE_TYPES[image.format]}")
        return Response(
            image.data, headers=headers, media_type=f"image/{_IMAGE_TYPES[image.format]}"
        )

    async def _process_body(self, call: _Call, field: str) -> str:
        body = (await self._small_body(call)).decode("utf-8", "replace")
        prefix = f"{field}="
        if not body.startswith(prefix):
            raise OssError(400, "InvalidArgument", f"the body must be '{prefix}<process string>'")
        return body[len(prefix) :]

    async def _process_save(self, call: _Call) -> Response:
        import ossframe_native as ofn
        from ossframe_native.task import run_request

        assert call.bucket is not None and call.key is not None
        spec = await self._process_body(call, "x-oss-process")
        request = self._parse_spec(spec, saveas=True)
        self.store.require_bucket(check_bucket_name(request.saveas.bucket))
        info = self.store.stat(call.bucket, call.key)
        store = ofn.LocalStore(self.store.root)
        result = await self._run_engine(lambda: run_request(info.path, spec, request, store))
        if not result.ok:
            status = 500 if result.error_code not in ("InvalidArgument", "MediaError") else 400
            code = "InternalError" if status == 500 else "InvalidArgument"
            raise OssError(status, code, f"{result.error_code}: {result.error_message}")
        saved = result.objects[-1]
        body = {
            "bucket": result.bucket,
            "fileSize": saved.bytes,
            "object": saved.key,
            "status": "OK",
        }
        return Response(json.dumps(body).encode(), media_type="application/json")

    async def _async_process(self, call: _Call) -> Response:
        from ossframe_native import notify, parse_process

        assert call.bucket is not None and call.key is not None and self.queue is not None
        spec = await self._process_body(call, "x-oss-async-process")
        try:
            request = parse_process(spec)
            if request.notify is not None:
                notify.validate_topic(request.notify.topic)
        except InvalidArgument as exc:
            raise OssError(400, "InvalidArgument", str(exc)) from None
        if request.saveas is None:
            raise OssError(
                400, "InvalidArgument", "x-oss-async-process needs '|sys/saveas,b_..,o_..'"
            )
        self.store.require_bucket(check_bucket_name(request.saveas.bucket))
        self.store.stat(call.bucket, call.key)
        task = await anyio.to_thread.run_sync(
            self.queue.submit, call.bucket, call.key, spec, call.request_id
        )
        body = {"EventId": task.event_id, "RequestId": task.request_id, "TaskId": task.id}
        return Response(json.dumps(body).encode(), media_type="application/json")


_IMAGE_TYPES = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}


def _guess_type(key: str) -> str:
    import mimetypes

    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=a-b`` range; anything else means the whole object (as OSS does)."""
    if not value or not value.startswith("bytes=") or "," in value:
        return None
    first, sep, last = value[6:].strip().partition("-")
    if not sep or not (first.isdigit() or last.isdigit()):
        return None
    if first.isdigit():
        start = int(first)
        end = int(last) if last.isdigit() else size - 1
        if last.isdigit() and end < start:
            return None
        if start >= size:
            raise OssError(416, "InvalidRange", ActualObjectSize=str(size))
        return start, min(end, size - 1)
    count = int(last)
    if count == 0:
        raise OssError(416, "InvalidRange", ActualObjectSize=str(size))
    return max(0, size - count), size - 1


async def _read_file(path: str, start: int, length: int) -> AsyncIterator[bytes]:
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
