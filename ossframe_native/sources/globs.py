"""Globs over buckets (``s3://bucket/videos/**/*.mp4``), matched as over folders."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidArgument
from . import fsspec_objects, oss_objects
from .names import bucket_and_key, display, is_url

_GLOB_CHARS = frozenset("*?[")


def has_glob(text: str) -> bool:
    """Whether a URL's object part holds glob characters (an http(s) query never counts)."""
    if not is_url(text):
        return bool(_GLOB_CHARS & set(text))
    scheme = text.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        return False
    return bool(_GLOB_CHARS & set(urllib.parse.urlsplit(text).path))


def glob(pattern: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """The object URLs in a bucket that ``pattern`` matches, sorted (``*`` and ``?`` within one
    path segment, ``**`` across any number of segments, ``[...]`` a character class: as over
    folders). Listing errors are ``MediaError``."""
    scheme = pattern.split("://", 1)[0].lower()
    if scheme not in ("s3", "gs", "gcs", "oss"):
        raise InvalidArgument("sources", f"{display(pattern)}: only bucket URLs can be globbed")
    bucket, key_pattern = bucket_and_key(pattern)
    matcher = re.compile(_glob_regex(key_pattern))
    prefix = re.split(r"[*?\[]", key_pattern, maxsplit=1)[0]
    options = storage_options or {}
    if scheme == "oss":
        keys = oss_objects.keys(pattern, bucket, prefix, options)
    else:
        protocol = "gs" if scheme == "gcs" else scheme
        keys = fsspec_objects.keys(pattern, protocol, bucket, prefix, options)
    return sorted(f"{scheme}://{bucket}/{key}" for key in keys if matcher.fullmatch(key))


def _glob_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            out.append("[^" + re.escape(body[1:]) + "]" if body[0] == "!" else f"[{body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)
