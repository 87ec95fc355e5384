"""``oss://`` objects through Alibaba Cloud's ``oss2`` SDK, and listing their buckets."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import InvalidArgument, MediaError
from .names import display, is_url
from .remote import reason

_OSS_OPTIONS = ("endpoint", "key", "secret", "token", "region")


class OssObject:
    """An object in Alibaba Cloud OSS (or any OSS-compatible service) through ``oss2``."""

    def __init__(self, url: str, bucket: str, key: str, options: Mapping[str, Any]) -> None:
        self.label = display(url)
        self.key = key
        self.bucket = _oss_bucket(bucket, options)
        self.requests = 0

    def first(self, length: int) -> tuple[bytes, int]:
        data, size, _etag = self._get(0, length)
        return data, size

    def fetch(self, start: int, stop: int) -> bytes:
        return self._get(start, stop)[0]

    def describe(self) -> tuple[int, str | None]:
        _data, size, etag = self._get(0, 1)
        return size, etag

    def _get(self, start: int, stop: int) -> tuple[bytes, int, str | None]:
        # "standard": a range past the end is an error, never the whole object.
        headers = {"x-oss-range-behavior": "standard"}
        self.requests += 1
        with _oss_errors(self.label, self.bucket.endpoint, empty_ok=start == 0) as empty:
            result = self.bucket.get_object(self.key, (start, stop - 1), headers=headers)
            data = result.read()
        if empty:
            return b"", 0, None
        total = re.search(r"/(\d+)$", result.headers.get("Content-Range", ""))
        size = int(total.group(1)) if total else len(data)
        return data, size, result.headers.get("ETag")


def _oss2() -> Any:
    try:
        import oss2
    except ImportError as exc:
        raise InvalidArgument(
            "source", f"oss:// sources need oss2: pip install 'ossframe_native[remote]' ({exc})"
        ) from None
    return oss2


def _oss_bucket(name: str, options: Mapping[str, Any]) -> Any:
    unknown = set(options) - set(_OSS_OPTIONS)
    if unknown:
        raise InvalidArgument(
            "storage_options",
            f"unknown option(s) for oss:// URLs: {', '.join(sorted(unknown))}; allowed: "
            + ", ".join(_OSS_OPTIONS),
        )
    oss2 = _oss2()
    key = options.get("key") or os.environ.get("OSS_ACCESS_KEY_ID")
    secret = options.get("secret") or os.environ.get("OSS_ACCESS_KEY_SECRET")
    token = options.get("token") or os.environ.get("OSS_SESSION_TOKEN")
    if not key or not secret:
        auth = oss2.AnonymousAuth()
    else:
        auth = oss2.StsAuth(key, secret, token) if token else oss2.Auth(key, secret)
    # enable_crc off: ranged reads carry no whole-object CRC.
    return oss2.Bucket(auth, _oss_endpoint(options), name, connect_timeout=10, enable_crc=False)


def _oss_endpoint(options: Mapping[str, Any]) -> str:
    endpoint = options.get("endpoint") or os.environ.get("OSS_ENDPOINT")
    region = options.get("region") or os.environ.get("OSS_REGION")
    if not endpoint and region:
        region = region if region.startswith("oss-") else f"oss-{region}"
        endpoint = f"https://{region}.aliyuncs.com"
    if not endpoint:
        raise InvalidArgument(
            "storage_options",
            "oss:// sources need an endpoint: set OSS_ENDPOINT (or OSS_REGION), or give "
            "storage_options={'endpoint': 'https://oss-cn-hangzhou.aliyuncs.com'}",
        )
    return str(endpoint)


class _Flag:
    def __init__(self) -> None:
        self.value = False

    def __bool__(self) -> bool:
        return self.value


@contextmanager
def _oss_errors(label: str, endpoint: str, empty_ok: bool = False) -> Iterator[_Flag]:
    """Turns oss2's errors into one-line MediaErrors (the error code, never the message, which
    may quote the request); with ``empty_ok`` a 416 on a read from 0 sets the flag (an empty
    object)."""
    oss2 = _oss2()
    empty = _Flag()
    try:
        yield empty
    except oss2.exceptions.ServerError as exc:
        if exc.status == 416 and empty_ok:
            empty.value = True
        elif exc.status in (401, 403):
            raise MediaError(f"access denied reading {label} ({exc.code})") from None
        elif exc.status == 404:
            raise MediaError(f"no such object: {label} ({exc.code})") from None
        else:
            raise MediaError(f"cannot read {label} (HTTP {exc.status}, {exc.code})") from None
    except oss2.exceptions.RequestError as exc:
        where = display(endpoint) if is_url(endpoint) else endpoint
        raise MediaError(
            f"cannot reach {where} for {label}: {reason(exc.exception or exc)}"
        ) from None


def keys(pattern: str, bucket: str, prefix: str, options: Mapping[str, Any]) -> list[str]:
    """The keys in ``bucket`` that start with ``prefix`` (``pattern``: the glob, as errors
    name it)."""
    oss2 = _oss2()
    listing = _oss_bucket(bucket, options)
    with _oss_errors(display(pattern), listing.endpoint):
        return [obj.key for obj in oss2.ObjectIteratorV2(listing, prefix=prefix)]
