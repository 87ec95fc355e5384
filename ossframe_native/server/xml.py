"""OSS response bodies: the ``<Error>`` document, bucket and object listings.

Everything here is pure text building; no framework import, so it is cheap to test.
"""

from __future__ import annotations

import base64
import email.utils
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'

# Default messages of the error codes this service returns (wording of the OSS service).
MESSAGES = {
    "AccessDenied": "Access denied.",
    "BucketAlreadyExists": "The requested bucket name is not available.",
    "BucketNotEmpty": "The bucket you tried to delete is not empty.",
    "EntityTooLarge": "Your proposed upload exceeds the maximum allowed object size.",
    "IncompleteBody": "The request body is shorter than its Content-Length.",
    "InvalidAccessKeyId": "The OSS Access Key Id you provided does not exist in our records.",
    "InvalidArgument": "Invalid argument.",
    "InvalidBucketName": "The specified bucket is not valid.",
    "InvalidDigest": "The Content-MD5 you specified is not valid.",
    "InvalidObjectName": "The specified object name is not valid.",
    "InvalidRange": "The requested range cannot be satisfied.",
    "MalformedXML": "The XML you provided was not well-formed.",
    "MethodNotAllowed": "The specified method is not allowed against this resource.",
    "MissingContentLength": "You must provide the Content-Length HTTP header.",
    "NoSuchBucket": "The specified bucket does not exist.",
    "NoSuchKey": "The specified key does not exist.",
    "NoSuchTask": "The specified task does not exist.",
    "NotImplemented": "This operation is not implemented by this service.",
    "RequestTimeTooSkewed": "The difference between the request time and the current time is "
    "too large.",
    "SignatureDoesNotMatch": "The request signature we calculated does not match the signature "
    "you provided. Check your key and signing method.",
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "InsufficientStorage": "The server's disk is full: nothing was stored. Free space or "
    "retry later.",
    "EntityTooSmall": "A part other than the last is smaller than the minimum part size.",
    "InvalidPart": "One or more of the specified parts could not be found or its ETag does "
    "not match.",
    "InvalidPartOrder": "The list of parts was not in ascending order.",
    "NoSuchUpload": "The specified upload does not exist. The upload ID may be invalid, or "
    "the upload may have been aborted or completed.",
    "ObjectNotAppendable": "The object is not appendable.",
    "PositionNotEqualToLength": "Position is not equal to file length.",
    "PreconditionFailed": "At least one of the pre-conditions you specified did not hold.",
    "NotModified": "The object was not modified.",
    "RequestTimeout": "Your socket connection to the server was not read from or written to "
    "within the timeout period.",
    "InvalidRequest": "The request is not valid.",
}


class OssError(Exception):
    """An error answered as an OSS ``<Error>`` document with HTTP ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: str,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message or MESSAGES.get(code, code)
        self.headers = dict(headers or {})  # response headers besides the usual ones
        self.extra = extra  # more elements of the body, e.g. StringToSign
        super().__init__(f"{code}: {self.message}")


def new_request_id() -> str:
    """A request id in the shape OSS uses (24 upper-case hex digits)."""
    return uuid.uuid4().hex[:24].upper()


def http_date(epoch: float | None = None) -> str:
    """``Sat, 05 Dec 2015 11:10:29 GMT``."""
    return email.utils.formatdate(time.time() if epoch is None else epoch, usegmt=True)


def iso_date(epoch: float) -> str:
    """``2024-01-02T03:04:05.000Z`` (oss2 demands the ``.000Z`` form)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def _element(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def error_body(err: OssError, request_id: str, host_id: str) -> bytes:
    """The XML body of an error response."""
    parts = [
        _element("Code", err.code),
        _element("Message", err.message),
        _element("RequestId", request_id),
        _element("HostId", host_id),
        *(_element(k, v) for k, v in err.extra.items()),
    ]
    return (XML_HEAD + "<Error>" + "".join(parts) + "</Error>").encode()


def head_error_header(body: bytes) -> str:
    """HEAD responses have no body: the SDKs read the error from ``x-oss-err`` (base64 XML)."""
    return base64.b64encode(body).decode()


@dataclass(frozen=True)
class ListedObject:
    """One entry of a listing."""

    key: str
    mtime: float
    etag: str  # with quotes
    size: int
    type: str = "Normal"


def list_buckets_body(buckets: Iterable[tuple[str, float]], owner: str, region: str) -> bytes:
    """``ListAllMyBucketsResult`` for GetService: (name, creation time) pairs."""
    items = "".join(
        "<Bucket>"
        + _element("CreationDate", iso_date(created))
        + _element("ExtranetEndpoint", "")
        + _element("IntranetEndpoint", "")
        + _element("Location", f"oss-{region}")
        + _element("Name", name)
        + _element("Region", region)
        + _element("StorageClass", "Standard")
        + "</Bucket>"
        for name, created in buckets
    )
    owner_xml = f"<Owner>{_element('ID', owner)}{_element('DisplayName', owner)}</Owner>"
    body = f"<ListAllMyBucketsResult>{owner_xml}<Buckets>{items}</Buckets></ListAllMyBucketsResult>"
    return (XML_HEAD + body).encode()


def bucket_info_body(name: str, created: float, owner: str, region: str) -> bytes:
    """``BucketInfo`` for GetBucketInfo (the fields oss2 reads)."""
    inner = (
        _element("CreationDate", iso_date(created))
        + _element("ExtranetEndpoint", "")
        + _element("IntranetEndpoint", "")
        + _element("Location", f"oss-{region}")
        + _element("Name", name)
        + _element("StorageClass", "Standard")
        + f"<AccessControlList>{_element('Grant', 'private')}</AccessControlList>"
        + f"<Owner>{_element('ID', owner)}{_element('DisplayName', owner)}</Owner>"
        + _element("DataRedundancyType", "LRS")
    )
    return (XML_HEAD + f"<BucketInfo><Bucket>{inner}</Bucket></BucketInfo>").encode()


def list_objects_body(
    *,
    bucket: str,
    params: Mapping[str, str],
    objects: Sequence[ListedObject],
    prefixes: Sequence[str],
    truncated: bool,
    next_marker: str | None,
    v2: bool,
    encode: bool,
    quote: object,
) -> bytes:
    """``ListBucketResult`` for ListObjects (V1) and ListObjectsV2.

    ``params`` holds the request's prefix, delimiter, max-keys, marker/start-after and
    continuation-token as given; with ``encode`` (``encoding-type=url``) keys, prefixes and
    markers are percent-encoded by ``quote``.
    """
    enc = quote if encode else (lambda s: s)
    assert callable(enc)
    head = [
        _element("Name", bucket),
        _element("Prefix", enc(params.get("prefix", ""))),
    ]
    if v2:
        if params.get("continuation-token"):
            head.append(_element("ContinuationToken", params["continuation-token"]))
        if params.get("start-after"):
            head.append(_element("StartAfter", enc(params["start-after"])))
    else:
        head.append(_element("Marker", enc(params.get("marker", ""))))
    head.append(_element("MaxKeys", params.get("max-keys", "100")))
    head.append(_element("Delimiter", enc(params.get("delimiter", ""))))
    if encode:
        head.append(_element("EncodingType", "url"))
    head.append(_element("IsTruncated", "true" if truncated else "false"))
    if truncated and next_marker is not None:
        if v2:
            head.append(_element("NextContinuationToken", next_marker))
        else:
            head.append(_element("NextMarker", enc(next_marker)))
    if v2:
        head.append(_element("KeyCount", len(objects) + len(prefixes)))
    contents = "".join(
        "<Contents>"
        + _element("Key", enc(o.key))
        + _element("LastModified", iso_date(o.mtime))
        + _element("ETag", o.etag)
        + _element("Type", o.type)
        + _element("Size", o.size)
        + _element("StorageClass", "Standard")
        + "</Contents>"
        for o in objects
    )
    common = "".join(
        f"<CommonPrefixes>{_element('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes
    )
    body = "<ListBucketResult>" + "".join(head) + contents + common + "</ListBucketResult>"
    return (XML_HEAD + body).encode()


def delete_result_body(deleted: Iterable[str], quiet: bool, encode: bool, quote: object) -> bytes:
    """``DeleteResult`` for DeleteMultipleObjects."""
    enc = quote if encode else (lambda s: s)
    assert callable(enc)
    items = (
        "" if quiet else "".join(f"<Deleted>{_element('Key', enc(k))}</Deleted>" for k in deleted)
    )
    extra = _element("EncodingType", "url") if encode else ""
    return (XML_HEAD + f"<DeleteResult>{extra}{items}</DeleteResult>").encode()


def document(root: str, fields: Iterable[tuple[str, object]]) -> bytes:
    """``<root>`` with one element per (name, value) pair, in order."""
    inner = "".join(_element(name, value) for name, value in fields)
    return (XML_HEAD + f"<{root}>{inner}</{root}>").encode()


@dataclass(frozen=True)
class ListedPart:
    """One part of a multipart upload, as ListParts shows it."""

    number: int
    mtime: float
    etag: str  # with quotes
    size: int
    crc64: str


def list_parts_body(
    head: Sequence[tuple[str, object]], parts: Sequence[ListedPart], next_marker: int
) -> bytes:
    """``ListPartsResult``: ``head`` (Bucket, Key, UploadId, markers...), then the parts."""
    fields = [_element(k, v) for k, v in head]
    fields.append(_element("NextPartNumberMarker", next_marker))
    fields += [
        "<Part>"
        + _element("PartNumber", p.number)
        + _element("LastModified", iso_date(p.mtime))
        + _element("ETag", p.etag)
        + _element("HashCrc64ecma", p.crc64)
        + _element("Size", p.size)
        + "</Part>"
        for p in parts
    ]
    return (XML_HEAD + "<ListPartsResult>" + "".join(fields) + "</ListPartsResult>").encode()


def list_uploads_body(
    head: Sequence[tuple[str, object]],
    uploads: Sequence[tuple[str, str, float]],
    prefixes: Sequence[str],
    quote: object,
) -> bytes:
    """``ListMultipartUploadsResult``: ``head`` fields, then (key, upload id, initiated)."""
    enc = quote
    assert callable(enc)
    fields = [_element(k, v) for k, v in head]
    fields += [
        "<Upload>"
        + _element("Key", enc(key))
        + _element("UploadId", upload_id)
        + _element("StorageClass", "Standard")
        + _element("Initiated", iso_date(initiated))
        + "</Upload>"
        for key, upload_id, initiated in uploads
    ]
    fields += [f"<CommonPrefixes>{_element('Prefix', enc(p))}</CommonPrefixes>" for p in prefixes]
    body = "<ListMultipartUploadsResult>" + "".join(fields) + "</ListMultipartUploadsResult>"
    return (XML_HEAD + body).encode()
