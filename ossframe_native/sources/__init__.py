"""Sources: what a capture reads — a local path, bytes, a file object or a URL — opened as a
seekable binary stream for the demuxer, with what reading it cost.

* Local paths are opened by Python as exactly that file (never handed to FFmpeg's protocol
  layer, where ``concat:a.mp4`` or ``pipe:0`` would mean something else): ``local.py``.
* URLs: ``s3://bucket/key`` (s3fs), ``gs://bucket/key`` (gcsfs): ``fsspec_objects.py``;
  ``oss://bucket/key`` (Alibaba Cloud's ``oss2`` SDK): ``oss_objects.py``; ``http(s)://``
  (urllib3; presigned URLs included): ``http_objects.py``. Each is read by ranged requests
  into a small block cache (``remote.py``): the first block after a jump is
  :data:`FIRST_BLOCK`, each block read on from the end of the last one doubles, up to
  :data:`MAX_BLOCK`. A snapshot thus fetches the container header, its index and one GOP, never
  the whole object. The libraries are imported when a URL is opened (``pip install
  'ossframe_native[remote]'``), never by ``import ossframe_native``.
* Credentials and endpoints come from where each ecosystem's own tools read them (AWS
  environment/profile and ``AWS_ENDPOINT_URL``; ``OSS_ACCESS_KEY_ID`` /
  ``OSS_ACCESS_KEY_SECRET`` / ``OSS_SESSION_TOKEN`` with ``OSS_ENDPOINT`` or ``OSS_REGION``;
  Google's application default credentials), or from ``storage_options`` given with the
  source (:func:`bind`). They are never part of a message, a label or a record key: URLs are
  shown without user info and without signing parameters (:func:`display`, ``names.py``).
* Every reader counts the bytes it delivered (local) or fetched (remote) and the requests it
  made into a counter object (``DecodeStats``: ``bytes_read``, ``requests``).
* Bucket globs (``s3://bucket/videos/**/*.mp4``): ``globs.py``.

A missing object, a denied read or an unreachable endpoint is a one-line :class:`MediaError`
naming the source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidArgument, MediaError
from .fsspec_objects import FsspecObject
from .globs import glob, has_glob
from .http_objects import HttpObject
from .local import Counters, Opened, open_local
from .names import (
    SCHEMES,
    Remote,
    Source,
    barename_of,
    bind,
    bucket_and_key,
    check_options,
    display,
    identity,
    is_url,
    local_path,
    name_of,
    url_and_options,
)
from .oss_objects import OssObject
from .remote import FIRST_BLOCK, MAX_BLOCK, Blocks, RemoteReader, Store

__all__ = [
    "FIRST_BLOCK",
    "MAX_BLOCK",
    "Counters",
    "Opened",
    "Remote",
    "Source",
    "barename_of",
    "bind",
    "check_options",
    "display",
    "glob",
    "has_glob",
    "identity",
    "is_url",
    "name_of",
    "open_source",
    "stat",
]


def open_source(source: Any, counters: Counters) -> Opened:
    """Opens ``source`` for reading; the readers count into ``counters``.

    Raises ``MediaError`` for a missing, empty, unreadable or unreachable source and
    ``InvalidArgument`` for something that is not a source.
    """
    path = local_path(source)
    if path is None and is_url(source):
        url, options = url_and_options(source)
        store = store_for(url, options)
        blocks = Blocks(store, counters)
        return Opened(store.label, blocks.size, lambda: RemoteReader(blocks, name_of(url) or ""))
    opened = open_local(source, path, counters)
    if opened is None:
        raise InvalidArgument(
            "source",
            "must be a path, a URL (s3://, oss://, gs://, http(s)://), bytes or an open, "
            "seekable binary file object; got " + type(source).__name__,
        )
    return opened


def store_for(url: str, options: Mapping[str, Any]) -> Store:
    """The object a URL names, reached through its scheme's library (nothing is read yet
    except where the library checks its options)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise InvalidArgument(
            "source",
            f"the URL scheme {scheme!r} is not supported; use s3://, oss://, gs://, http(s):// "
            "or a local path",
        )
    if scheme in ("http", "https"):
        return HttpObject(url, options)
    bucket, key = bucket_and_key(url)
    if scheme == "oss":
        return OssObject(url, bucket, key, options)
    return FsspecObject(url, "gs" if scheme == "gcs" else scheme, f"{bucket}/{key}", options)


def stat(source: Any) -> dict[str, Any] | None:
    """What says the source is unchanged, as recorded with a result: a path's size and
    modification time; a URL's size and ETag (one metadata request); None where unknown or the
    source cannot be reached."""
    path = local_path(source)
    if path is not None:
        path = os.path.abspath(path)
        try:
            st = os.stat(path)
        except OSError:
            return None
        return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if not is_url(source):
        return None
    try:
        store = store_for(*url_and_options(source))
        size, etag = store.describe()
    except (MediaError, InvalidArgument):
        return None
    return {"url": display(source), "size": size, "etag": etag}
