"""``http(s)://`` objects (presigned URLs included) through urllib3: ranged GETs, retried
where the connection fails or the server answers 5xx."""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidArgument, MediaError
from .names import display
from .remote import reason

_pool: tuple[int, Any] | None = None  # (pid, urllib3.PoolManager): one per process
# Attempts of one request where the connection fails or the server answers 5xx; urllib3's own
# retries are off because they log the URL (a presigned URL's signature) as a warning.
_ATTEMPTS = 3
_RETRY_STATUS = frozenset({500, 502, 503, 504})


def _http_pool() -> Any:
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        import urllib3

        _pool = (os.getpid(), urllib3.PoolManager(num_pools=32, maxsize=8, retries=False))
    return _pool[1]


class HttpObject:
    """An http(s) URL read with ``Range`` GETs (a presigned URL signs GET only: no HEAD)."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        unknown = set(options) - {"headers", "timeout"}
        if unknown:
            raise InvalidArgument(
                "storage_options",
                f"unknown option(s) for http(s) URLs: {', '.join(sorted(unknown))}; allowed: "
                "headers, timeout",
            )
        self.url = url
        self.label = display(url)
        self.headers = {"Accept-Encoding": "identity", **dict(options.get("headers") or {})}
        self.timeout = float(options.get("timeout", 60))
        self.etag: str | None = None
        self.requests = 0

    def first(self, length: int) -> tuple[bytes, int]:
        data, size = self._get(0, length, first=True)
        return data, size

    def fetch(self, start: int, stop: int) -> bytes:
        return self._get(start, stop)[0]

    def describe(self) -> tuple[int, str | None]:
        _data, size = self._get(0, 1, first=True)
        return size, self.etag

    def _get(self, start: int, stop: int, first: bool = False) -> tuple[bytes, int]:
        import urllib3

        headers = dict(self.headers, Range=f"bytes={start}-{stop - 1}")
        if self.etag is not None and not first:
            headers["If-Match"] = self.etag  # the same object version as the first read
        response = self._request(headers)
        try:
            return self._body(response, start, stop, first)
        except urllib3.exceptions.HTTPError as exc:
            raise MediaError(_unreachable(self.url, self.label, exc)) from None
        finally:
            response.release_conn()

    def _request(self, headers: dict[str, str]) -> Any:
        """One GET, tried again where the connection fails or the server answers 5xx."""
        import urllib3

        failure: BaseException | None = None
        for attempt in range(_ATTEMPTS):
            if attempt:
                time.sleep(0.2 * 2**attempt)
            self.requests += 1
            try:
                response = _http_pool().request(
                    "GET", self.url, headers=headers, preload_content=False, timeout=self.timeout
                )
            except urllib3.exceptions.HTTPError as exc:
                failure = exc
                continue
            if response.status in _RETRY_STATUS and attempt < _ATTEMPTS - 1:
                response.drain_conn()
                response.release_conn()
                continue
            return response
        assert failure is not None
        raise MediaError(_unreachable(self.url, self.label, failure))

    def _body(self, response: Any, start: int, stop: int, first: bool) -> tuple[bytes, int]:
        status = response.status
        if status == 206:
            got = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if got is None or int(got.group(1)) != start or got.group(3) == "*":
                response.close()
                raise MediaError(f"{self.label}: the server's Content-Range does not match")
            if first:
                etag = response.headers.get("ETag")
                self.etag = etag if etag and not etag.startswith("W/") else None
            return response.read(), int(got.group(3))
        if status == 200:  # Range ignored: acceptable only if the whole object was asked for
            length = int(response.headers.get("Content-Length", -1))
            if start == 0 and 0 <= length <= stop:
                return response.read(), length
            response.close()  # never download the rest
            raise MediaError(
                f"the server does not answer ranged reads (HTTP Range) for {self.label}; "
                "exact capture needs to seek"
            )
        response.close()
        if status == 416 and first:
            return b"", 0
        raise MediaError(_http_status_message(status, self.label))


def _http_status_message(status: int, label: str) -> str:
    if status == 404:
        return f"no such object: {label}"
    if status in (401, 403):
        return f"access denied reading {label} (HTTP {status})"
    if status == 412:
        return f"{label} changed while it was read (HTTP 412)"
    return f"HTTP {status} reading {label}"


def _unreachable(url: str, label: str, exc: BaseException) -> str:
    """A one-line reason why ``url``'s server could not be reached (no URL query in it)."""
    parts = urllib.parse.urlsplit(url)
    where = f"{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return f"cannot reach {where} for {label}: {reason(exc)}"
