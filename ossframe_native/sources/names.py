"""How a source is named: URLs told from paths, a URL with its storage options
(:class:`Remote`), and the names shown in messages, labels and records (never credentials:
:func:`display` drops user info and signing parameters), a source's file name and what its
result is recorded under."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import InvalidArgument

SCHEMES = ("s3", "gs", "gcs", "oss", "http", "https")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Query parameters that sign or authorize a URL (AWS, Alibaba Cloud OSS, Google Cloud Storage).
_SIGNING = re.compile(
    r"^(x-amz-.*|x-goog-.*|x-oss-(signature.*|credential|date|expires|security-token"
    r"|additional-headers|access-key-id)|signature|expires|awsaccesskeyid|ossaccesskeyid"
    r"|googleaccessid|security-token)$",
    re.IGNORECASE,
)


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


def url_and_options(source: str | Remote) -> tuple[str, Mapping[str, Any]]:
    if isinstance(source, Remote):
        return source.url, source.options
    return source, {}


def local_path(source: Any) -> str | None:
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
    path = local_path(source)
    if path is None and is_url(source):
        url, _ = url_and_options(source)
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
    path = local_path(source)
    if path is not None:
        return os.path.abspath(path)
    if is_url(source):
        return display(source)
    return None


def bucket_and_key(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        raise InvalidArgument("source", f"{display(url)} names no object (scheme://bucket/key)")
    return parts.netloc, key
