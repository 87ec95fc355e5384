"""The write routes beyond PutObject: multipart uploads, CopyObject, UploadPartCopy and
AppendObject, with the request and response shapes of the OSS API (as ``oss2`` and
``alibabacloud-oss-v2`` send and parse them)."""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ElementTree
from typing import TYPE_CHECKING

import anyio
from starlette.responses import Response

from ossframe_native.server import xml
from ossframe_native.server.fields import ascii_int, count_field
from ossframe_native.server.http import (
    Call,
    check_conditions,
    declared_length,
    parse_range,
    receive_upload,
    small_body,
)
from ossframe_native.server.multipart import MAX_PARTS, listed_part
from ossframe_native.server.objects import ObjectInfo, check_bucket_name, guess_type
from ossframe_native.server.xml import OssError

if TYPE_CHECKING:
    from ossframe_native.server.app import Service

_XML = "application/xml"


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="/")


def _key_text(call: Call, key: str) -> str:
    return _quote(key) if call.params.get("encoding-type") == "url" else key


def _encoding(call: Call) -> list[tuple[str, object]]:
    return [("EncodingType", "url")] if call.params.get("encoding-type") == "url" else []


def _upload_id(call: Call) -> str:
    return call.params.get("uploadId", "")


# -- multipart uploads ----------------------------------------------------------------------


async def initiate(svc: Service, call: Call) -> Response:
    """``POST /b/k?uploads``."""
    assert call.bucket is not None and call.key is not None
    content_type = call.headers.get("content-type") or guess_type(call.key)
    bucket, key, meta = call.bucket, call.key, call.user_meta
    upload_id = await anyio.to_thread.run_sync(
        lambda: svc.multipart.initiate(bucket, key, content_type, meta)
    )
    body = xml.document(
        "InitiateMultipartUploadResult",
        [
            *_encoding(call),
            ("Bucket", bucket),
            ("Key", _key_text(call, key)),
            ("UploadId", upload_id),
        ],
    )
    return Response(body, media_type=_XML)


async def upload_part(svc: Service, call: Call) -> Response:
    """``PUT /b/k?partNumber=n&uploadId=..`` (with ``x-oss-copy-source``: UploadPartCopy)."""
    assert call.bucket is not None and call.key is not None
    number = count_field(call.params.get("partNumber"), "partNumber", 1, MAX_PARTS)
    upload_id, bucket, key = _upload_id(call), call.bucket, call.key
    await anyio.to_thread.run_sync(lambda: svc.multipart.get(upload_id, bucket, key))
    if "x-oss-copy-source" in call.headers:
        return await _upload_part_copy(svc, call, upload_id, number)
    declared_length(call, svc.store.max_object_size)
    length = ascii_int(call.headers.get("content-length"))
    upload = await anyio.to_thread.run_sync(svc.multipart.open_part, upload_id, number, length)
    part = None
    try:
        await receive_upload(call, upload, svc.settings.idle_timeout_s)
        part = await anyio.to_thread.run_sync(
            lambda: svc.multipart.put_part(upload_id, number, upload)
        )
    finally:
        svc.multipart.close_part(upload_id, number, upload, stored=part is not None)
    return Response(headers={"etag": part.etag, "x-oss-hash-crc64ecma": str(part.crc64)})


async def _upload_part_copy(svc: Service, call: Call, upload_id: str, number: int) -> Response:
    source = await copy_source(svc, call)
    span = parse_range(call.headers.get("x-oss-copy-source-range"), source.size)
    start, end = span if span is not None else (0, source.size - 1)
    part = await anyio.to_thread.run_sync(
        lambda: svc.multipart.copy_part(upload_id, number, source, start, end - start + 1)
    )
    body = xml.document(
        "CopyPartResult", [("LastModified", xml.iso_date(part.mtime)), ("ETag", part.etag)]
    )
    headers = {"etag": part.etag, "x-oss-hash-crc64ecma": str(part.crc64)}
    return Response(body, headers=headers, media_type=_XML)


async def complete(svc: Service, call: Call) -> Response:
    """``POST /b/k?uploadId=..`` with the part list (or ``x-oss-complete-all: yes``)."""
    assert call.bucket is not None and call.key is not None
    upload_id, bucket, key = _upload_id(call), call.bucket, call.key
    record = await anyio.to_thread.run_sync(lambda: svc.multipart.get(upload_id, bucket, key))
    body = await small_body(call, svc.settings.idle_timeout_s)
    listed = None if call.headers.get("x-oss-complete-all", "").lower() == "yes" else _parts(body)
    info = await anyio.to_thread.run_sync(lambda: svc.multipart.complete(record, listed))
    result = xml.document(
        "CompleteMultipartUploadResult",
        [
            *_encoding(call),
            ("Location", f"http://{svc.host_id}/{bucket}/{_quote(key)}"),
            ("Bucket", bucket),
            ("Key", _key_text(call, key)),
            ("ETag", info.etag),
        ],
    )
    headers = {"etag": info.etag, "x-oss-hash-crc64ecma": info.crc64}
    return Response(result, headers=headers, media_type=_XML)


def _parts(body: bytes) -> list[tuple[int, str]]:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise OssError(400, "MalformedXML") from None
    listed = []
    for node in root.findall("Part"):
        number = count_field(node.findtext("PartNumber"), "PartNumber", 1, MAX_PARTS)
        listed.append((number, node.findtext("ETag") or ""))
    if not listed or len(listed) > MAX_PARTS:
        raise OssError(400, "MalformedXML", f"give 1 to {MAX_PARTS} <Part> elements")
    return listed


async def abort(svc: Service, call: Call) -> Response:
    """``DELETE /b/k?uploadId=..``."""
    assert call.bucket is not None and call.key is not None
    upload_id, bucket, key = _upload_id(call), call.bucket, call.key
    await anyio.to_thread.run_sync(lambda: svc.multipart.abort(upload_id, bucket, key))
    return Response(status_code=204)


async def list_parts(svc: Service, call: Call) -> Response:
    """``GET /b/k?uploadId=..`` (``max-parts``, ``part-number-marker``)."""
    assert call.bucket is not None and call.key is not None
    upload_id, bucket, key = _upload_id(call), call.bucket, call.key
    limit = count_field(call.params.get("max-parts"), "max-parts", 1, 1000, default=1000)
    marker = count_field(
        call.params.get("part-number-marker"), "part-number-marker", 0, MAX_PARTS, default=0
    )

    def read() -> list:  # type: ignore[type-arg]
        svc.multipart.get(upload_id, bucket, key)
        return [p for p in svc.multipart.parts(upload_id) if p.number > marker]

    parts = await anyio.to_thread.run_sync(read)
    page, truncated = parts[:limit], len(parts) > limit
    head: list[tuple[str, object]] = [
        *_encoding(call),
        ("Bucket", bucket),
        ("Key", _key_text(call, key)),
        ("UploadId", upload_id),
        ("StorageClass", "Standard"),
        ("PartNumberMarker", marker),
        ("MaxParts", limit),
        ("IsTruncated", "true" if truncated else "false"),
    ]
    next_marker = page[-1].number if page else marker  # always present: oss2 reads it
    body = xml.list_parts_body(head, [listed_part(p) for p in page], next_marker)
    return Response(body, media_type=_XML)


async def list_uploads(svc: Service, call: Call) -> Response:
    """``GET /b?uploads`` (prefix, delimiter, key-marker, upload-id-marker, max-uploads)."""
    assert call.bucket is not None
    bucket, params = call.bucket, call.params
    limit = count_field(params.get("max-uploads"), "max-uploads", 1, 1000, default=1000)
    prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
    key_marker, id_marker = params.get("key-marker", ""), params.get("upload-id-marker", "")

    def read() -> list:  # type: ignore[type-arg]
        svc.store.require_bucket(bucket)
        return svc.multipart.uploads(bucket)

    uploads: list[tuple[str, str, float]] = []
    prefixes: list[str] = []
    truncated, next_key, next_id = False, "", ""
    for record in await anyio.to_thread.run_sync(read):
        key = record.key
        if not key.startswith(prefix) or (key, record.upload_id) <= (key_marker, id_marker):
            continue
        if key == key_marker and not id_marker:
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = key[: cut + len(delimiter)]
            if common in prefixes or common <= key_marker:
                continue
        if len(uploads) + len(prefixes) >= limit:
            truncated = True
            break
        if cut >= 0:
            prefixes.append(key[: cut + len(delimiter)])
            next_key, next_id = key[: cut + len(delimiter)], ""
        else:
            uploads.append((key, record.upload_id, record.initiated))
            next_key, next_id = key, record.upload_id
    enc = _quote if params.get("encoding-type") == "url" else (lambda s: s)
    head: list[tuple[str, object]] = [
        *_encoding(call),
        ("Bucket", bucket),
        ("KeyMarker", enc(key_marker)),
        ("UploadIdMarker", id_marker),
        ("NextKeyMarker", enc(next_key) if truncated else ""),
        ("NextUploadIdMarker", next_id if truncated else ""),
        ("Delimiter", enc(delimiter)),
        ("Prefix", enc(prefix)),
        ("MaxUploads", limit),
        ("IsTruncated", "true" if truncated else "false"),
    ]
    return Response(xml.list_uploads_body(head, uploads, prefixes, enc), media_type=_XML)


# -- copies and appends -----------------------------------------------------------------------


async def copy_source(svc: Service, call: Call) -> ObjectInfo:
    """The object ``x-oss-copy-source: /bucket/key`` names, its copy conditions checked."""
    text = call.headers["x-oss-copy-source"].split("?", 1)[0]
    try:
        decoded = urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise OssError(400, "InvalidArgument", "x-oss-copy-source is not UTF-8") from None
    bucket, sep, key = decoded.lstrip("/").partition("/")
    if not sep or not key:
        raise OssError(400, "InvalidArgument", "x-oss-copy-source must be /bucket/key")
    check_bucket_name(bucket)
    info: ObjectInfo = await anyio.to_thread.run_sync(svc.store.stat, bucket, key)
    check_conditions(call.headers, info, prefix="x-oss-copy-source-")
    return info


async def copy_object(svc: Service, call: Call) -> Response:
    """``PUT /b/k`` with ``x-oss-copy-source``; ``x-oss-metadata-directive: REPLACE`` takes the
    request's Content-Type and ``x-oss-meta-*`` instead of the source's."""
    assert call.bucket is not None and call.key is not None
    directive = call.headers.get("x-oss-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise OssError(400, "InvalidArgument", "x-oss-metadata-directive is COPY or REPLACE")
    bucket, key = call.bucket, call.key
    svc.store.object_path(bucket, key)  # the names first
    source = await copy_source(svc, call)
    if directive == "REPLACE":
        content_type = call.headers.get("content-type") or guess_type(key)
        meta = call.user_meta
    else:
        content_type, meta = source.content_type, dict(source.user_meta)
    info = await anyio.to_thread.run_sync(
        lambda: svc.store.copy(source, bucket, key, content_type, meta)
    )
    body = xml.document(
        "CopyObjectResult", [("ETag", info.etag), ("LastModified", xml.iso_date(info.mtime))]
    )
    headers = {"etag": info.etag, "x-oss-hash-crc64ecma": info.crc64}
    return Response(body, headers=headers, media_type=_XML)


async def append_object(svc: Service, call: Call) -> Response:
    """``POST /b/k?append&position=n``."""
    assert call.bucket is not None and call.key is not None
    position = count_field(call.params.get("position"), "position", 0, svc.store.max_object_size)
    bucket, key = call.bucket, call.key
    svc.store.check_storable(bucket, key)
    declared_length(call, svc.store.max_object_size)
    content_type = call.headers.get("content-type") or guess_type(key)
    meta = call.user_meta
    upload = svc.store.begin_upload()
    try:
        await receive_upload(call, upload, svc.settings.idle_timeout_s)
        info = await anyio.to_thread.run_sync(
            lambda: svc.store.append(upload, bucket, key, position, content_type, meta)
        )
    finally:
        upload.abort()
    headers = {
        "etag": info.etag,
        "x-oss-hash-crc64ecma": info.crc64,
        "x-oss-next-append-position": str(info.size),
    }
    return Response(headers=headers)
