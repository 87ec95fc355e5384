"""The processing routes: ``x-oss-process`` on GET/HEAD (``video/snapshot``, ``video/info``),
``POST ?x-oss-process`` with ``sys/saveas``, and ``POST ?x-oss-async-process`` (a durable task).

Engine work runs in threads of the server process behind the service's admission gate
(``Service.run_engine``): a request is admitted, or refused with ``503 SlowDown``, before
anything expensive (reading the object, parsing media) is done.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import Response

from ossframe_native.errors import InvalidArgument
from ossframe_native.server.http import Call, small_body
from ossframe_native.server.objects import Crc64, check_bucket_name
from ossframe_native.server.xml import OssError
from ossframe_native.store import LocalStore

if TYPE_CHECKING:
    from ossframe_native.server.app import Service

INFO = "video/info"
_IMAGE_TYPES = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}


def parse_spec(spec: str, *, saveas: bool) -> Any:
    """A synchronous process string (``video/snapshot``), checked for the request kind."""
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
        raise OssError(400, "InvalidArgument", "POST ?x-oss-process needs '|sys/saveas,b_..,o_..'")
    if not saveas and request.saveas is not None:
        raise OssError(
            400, "InvalidArgument", "sys/saveas needs POST ?x-oss-process (bucket.process_object)"
        )
    return request


def media_info(probe: dict[str, Any], size: int) -> dict[str, Any]:
    """The ``video/info`` document, from ``ossframe_native.probe``'s dict (see docs/SERVICE.md).

    Times are in seconds, as in IMM's media metadata; the video stream used is first.
    """
    others = [s for s in probe.get("streams", []) if not s.get("used")]
    duration = probe.get("duration_ms")
    start = probe.get("start_ms")
    video = {
        "Index": probe.get("stream"),
        "CodecName": probe.get("codec"),
        "Width": probe.get("width"),
        "Height": probe.get("height"),
        "Rotate": probe.get("rotation"),
        "FrameRate": probe.get("fps"),
        "FrameCount": probe.get("frames"),
        "Duration": None if duration is None else round(duration / 1000, 6),
        "StartTime": None if start is None else round(start / 1000, 6),
        "KeyframeTimes": [round(t / 1000, 6) for t in probe.get("keyframes_ms", [])],
        "CoverArt": probe.get("cover_art"),
    }
    return {
        "Size": size,
        "Duration": video["Duration"],
        "StartTime": video["StartTime"],
        "VideoWidth": video["Width"],
        "VideoHeight": video["Height"],
        "VideoStreams": [video]
        + [
            {
                "Index": s.get("index"),
                "CodecName": s.get("codec"),
                "Width": s.get("width"),
                "Height": s.get("height"),
                "CoverArt": s.get("cover_art"),
            }
            for s in others
            if s.get("type") == "video"
        ],  # fmt: skip
    }


async def process_get(svc: Service, call: Call) -> Response:
    """``GET``/``HEAD ?x-oss-process=video/snapshot,..|video/info``: HEAD answers the headers
    GET would (the work is done to know them)."""
    assert call.bucket is not None and call.key is not None
    spec = call.params["x-oss-process"]
    bucket, key = call.bucket, call.key
    async with svc.admitted():
        if spec.strip() == INFO:
            data, media_type = await _info(svc, bucket, key)
        else:
            data, media_type = await _snapshot(svc, spec, bucket, key)
    crc = Crc64()
    crc.update(data)
    headers = {"x-oss-hash-crc64ecma": str(crc.value), "content-length": str(len(data))}
    body = b"" if call.method == "HEAD" else data
    return Response(body, headers=headers, media_type=media_type)


async def _snapshot(svc: Service, spec: str, bucket: str, key: str) -> tuple[bytes, str]:
    from ossframe_native.task import run_request

    request = parse_spec(spec, saveas=False)
    info = await anyio.to_thread.run_sync(svc.store.stat, bucket, key)
    result = await svc.run_engine(lambda: run_request(info.path, spec, request))
    image = result.images[0]
    return image.data, f"image/{_IMAGE_TYPES[image.format]}"


async def _info(svc: Service, bucket: str, key: str) -> tuple[bytes, str]:
    from ossframe_native import probe

    info = await anyio.to_thread.run_sync(svc.store.stat, bucket, key)
    described = await svc.run_engine(lambda: media_info(probe(info.path), info.size))
    return json.dumps(described).encode(), "application/json"


async def _process_body(svc: Service, call: Call, name: str) -> str:
    body = (await small_body(call, svc.settings.idle_timeout_s)).decode("utf-8", "replace")
    prefix = f"{name}="
    if not body.startswith(prefix):
        raise OssError(400, "InvalidArgument", f"the body must be '{prefix}<process string>'")
    return body[len(prefix) :]


async def process_save(svc: Service, call: Call) -> Response:
    """``POST ?x-oss-process`` with ``|sys/saveas``: JSON ``{bucket, fileSize, object,
    status}`` (``oss2``'s ``process_object``)."""
    from ossframe_native.task import run_request

    assert call.bucket is not None and call.key is not None
    spec = await _process_body(svc, call, "x-oss-process")
    bucket, key = call.bucket, call.key
    async with svc.admitted():
        request = parse_spec(spec, saveas=True)
        target, name = check_bucket_name(request.saveas.bucket), request.saveas.object
        fixed = None if "{" in name else name  # a fixed name is checked before any work
        await anyio.to_thread.run_sync(svc.store.check_storable, target, fixed)
        info = await anyio.to_thread.run_sync(svc.store.stat, bucket, key)
        store = _SavingStore(svc.store.root)

        def save() -> Any:
            result = run_request(info.path, spec, request, store)
            if not result.ok and store.failure is not None:
                raise store.failure  # the write's own error (the result keeps only its text)
            return result

        result = await svc.run_engine(save)
    if not result.ok:
        status = 500 if result.error_code not in ("InvalidArgument", "MediaError") else 400
        code = "InternalError" if status == 500 else "InvalidArgument"
        raise OssError(status, code, f"{result.error_code}: {result.error_message}")
    saved = result.objects[-1]
    body = {"bucket": result.bucket, "fileSize": saved.bytes, "object": saved.key, "status": "OK"}
    return Response(json.dumps(body).encode(), media_type="application/json")


class _SavingStore(LocalStore):
    """The service's root as a ``LocalStore`` that keeps the exception of a failed write, so
    that it is answered with its own OSS error (409 for a name, 507 for a full disk)."""

    failure: BaseException | None = None

    def _put(self, path: str, data: bytes) -> None:
        try:
            super()._put(path, data)
        except Exception as exc:
            self.failure = exc
            raise


async def async_process(svc: Service, call: Call) -> Response:
    """``POST ?x-oss-async-process``: the task is stored durably before the reply."""
    from ossframe_native import notify, parse_process

    assert call.bucket is not None and call.key is not None and svc.queue is not None
    spec = await _process_body(svc, call, "x-oss-async-process")
    try:
        request = parse_process(spec)
        if request.notify is not None:
            notify.validate_topic(request.notify.topic)
    except InvalidArgument as exc:
        raise OssError(400, "InvalidArgument", str(exc)) from None
    if request.saveas is None:
        raise OssError(400, "InvalidArgument", "x-oss-async-process needs '|sys/saveas,b_..,o_..'")
    bucket, key, queue, target = call.bucket, call.key, svc.queue, request.saveas.bucket

    def submit() -> Any:
        svc.store.require_bucket(check_bucket_name(target))
        svc.store.stat(bucket, key)
        return queue.submit(bucket, key, spec, call.request_id)

    task = await anyio.to_thread.run_sync(submit)
    body = {"EventId": task.event_id, "RequestId": task.request_id, "TaskId": task.id}
    return Response(json.dumps(body).encode(), media_type="application/json")


def hide_paths(value: Any, root: str) -> Any:
    """``value`` (text, or lists and dicts of it) with the store root's path replaced by
    ``oss://``: ``<root>/b/k`` reads ``oss://b/k``, and no server path is shown."""
    if isinstance(value, str):
        return value.replace(root + os.sep, "oss://").replace(root, "oss://")
    if isinstance(value, list):
        return [hide_paths(v, root) for v in value]
    if isinstance(value, dict):
        return {k: hide_paths(v, root) for k, v in value.items()}
    return value
