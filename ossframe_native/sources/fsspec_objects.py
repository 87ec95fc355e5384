"""``s3://`` and ``gs://`` objects through fsspec (s3fs, gcsfs), and listing their buckets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import InvalidArgument, MediaError
from .names import display, is_url
from .remote import reason

_FSSPEC_PACKAGES = {"s3": "s3fs", "gs": "gcsfs"}


def _filesystem(protocol: str, options: Mapping[str, Any]) -> Any:
    try:
        import fsspec

        return fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        raise InvalidArgument(
            "source",
            f"{protocol}:// sources need {_FSSPEC_PACKAGES[protocol]}: "
            f"pip install 'ossframe_native[remote]' ({exc})",
        ) from None
    except TypeError as exc:
        raise InvalidArgument("storage_options", f"not accepted for {protocol}://: {exc}") from None


class FsspecObject:
    """An object in S3 or GCS through its fsspec _filesystem (one HEAD for the size, then one
    ranged GET per block)."""

    def __init__(self, url: str, protocol: str, path: str, options: Mapping[str, Any]) -> None:
        self.label = display(url)
        self.path = path
        self.fs = _filesystem(protocol, options)
        self.version: str | None = None
        self.requests = 0

    def describe(self) -> tuple[int, str | None]:
        self.requests += 1
        with _fsspec_errors(self.label):
            info = self.fs.info(self.path)
        if info.get("type") == "directory":
            raise MediaError(f"no such object (a prefix, not an object): {self.label}")
        self.version = info.get("VersionId") or None
        etag = info.get("ETag") or info.get("etag")
        return int(info.get("size") or 0), str(etag) if etag else None

    def first(self, length: int) -> tuple[bytes, int]:
        size, _etag = self.describe()
        return (self.fetch(0, min(length, size)) if size else b""), size

    def fetch(self, start: int, stop: int) -> bytes:
        extra = {"version_id": self.version} if self.version else {}
        self.requests += 1
        with _fsspec_errors(self.label):
            data: bytes = self.fs.cat_file(self.path, start=start, end=stop, **extra)
        return data


@contextmanager
def _fsspec_errors(label: str) -> Iterator[None]:
    """Turns what s3fs/gcsfs (botocore, aiohttp, google-auth) raise into one-line MediaErrors."""
    try:
        yield
    except FileNotFoundError:
        raise MediaError(f"no such object: {label}") from None
    except PermissionError as exc:
        raise MediaError(f"access denied reading {label}{_code(exc)}") from None
    except (MediaError, InvalidArgument):
        raise
    except Exception as exc:  # noqa: BLE001 - library errors, each made one safe line
        name = type(exc).__name__
        if "Credential" in name:
            raise MediaError(f"no credentials to read {label} ({name})") from None
        code = _code(exc)
        if code:
            raise MediaError(f"cannot read {label}{code}") from None
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url") or "the endpoint"
        endpoint = display(endpoint) if is_url(endpoint) else endpoint
        raise MediaError(f"cannot reach {endpoint} for {label}: {reason(exc)}") from None


def _code(exc: BaseException) -> str:
    """`` (Code)`` from a botocore-style error in the chain (no message text: it may quote the
    request), else ''."""
    current: BaseException | None = exc
    while current is not None:
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return f" ({code})"
        current = current.__cause__ or current.__context__
    return ""


def keys(
    pattern: str, protocol: str, bucket: str, prefix: str, options: Mapping[str, Any]
) -> list[str]:
    """The keys in ``bucket`` under the folder of ``prefix``, listed now (``pattern``: the
    glob, as errors name it)."""
    fs = _filesystem(protocol, options)
    folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    root = f"{bucket}/{folder}".rstrip("/")
    with _fsspec_errors(display(pattern)):
        fs.invalidate_cache(root)  # a listing is taken now, not from an earlier read's cache
        found = fs.find(root)
    return [path[len(bucket) + 1 :] for path in found]
