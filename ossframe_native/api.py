"""The public capture API: ``snapshot``, ``snapshots``, ``probe`` and ``capture``.

A front end over :mod:`ossframe_native.pipeline`: it renders each output in BGR and encodes it
as jpg/png on the pipeline's worker thread, while the decoder goes on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import encode, sources
from .decode import Source
from .params import CaptureRequest, SnapshotRequest, SnapshotsRequest
from .pipeline import Capture, Output, open_capture, probe

__all__ = ["Image", "capture", "probe", "snapshot", "snapshots"]

# Frames decoded ahead of the encoder at most (bounds memory while keeping both busy).
_ENCODE_AHEAD = 2


@dataclass(frozen=True)
class Image:
    """One encoded output: ``data`` holds the jpg/png bytes."""

    data: bytes = field(repr=False)
    format: str
    width: int
    height: int
    time_ms: int  # the frame's time from the first frame, rounded up to whole ms
    keyframe: bool
    index: int | None  # the frame's stream number, presentation order, from 0; None: not known
    score: float | None = None  # dhash mode: percent of hash bits changed from the previous


def snapshot(
    source: Source,
    t: int = 0,
    w: int = 0,
    h: int = 0,
    m: str | None = None,
    f: str = "jpg",
    ar: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Image:
    """Captures the frame shown at ``t`` ms (``m="fast"``: the keyframe at or before it).

    ``source``: a path, a URL (``s3://``, ``oss://``, ``gs://``, ``http(s)://``), bytes or a
    seekable binary file object; ``storage_options`` go to the URL's storage library
    (docs/BEHAVIOUR.md, "Sources").
    """
    params = {name: value for name, value in locals().items() if name not in _NOT_PARAMS}
    request = SnapshotRequest.from_kwargs(params)
    return next(capture(source, request, storage_options=storage_options))


def snapshots(
    source: Source,
    f: str = "jpg",
    m: str = "default",
    thr: int = 0,
    inter: int = 0,
    num: int = 0,
    ss: int = 0,
    w: int | None = None,
    h: int | None = None,
    pw: int | None = None,
    ph: int | None = None,
    scaletype: str = "stretch",
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Image]:
    """Captures many frames (modes ``default``/``avg``/``dhash``/``key``), in time order.

    Every parameter is checked against the source (``ss`` against its duration) before the
    iterator is returned; decoding happens as it is consumed. Sources and ``storage_options``
    as for :func:`snapshot`.
    """
    params = {name: value for name, value in locals().items() if name not in _NOT_PARAMS}
    request = SnapshotsRequest.from_kwargs(params)
    return capture(source, request, storage_options=storage_options)


_NOT_PARAMS = ("source", "storage_options")


def capture(
    source: Source,
    request: CaptureRequest,
    threads: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Image]:
    """Runs a validated request on a source and yields its encoded images in time order.

    The source is opened and the request resolved against it now, so errors surface here.
    """
    source = sources.bind(source, storage_options)
    return images(open_capture(source, request, threads=threads))


def images(run: Capture) -> Iterator[Image]:
    """The encoded images of an opened capture, in time order."""
    fmt = run.request.f

    def image(output: Output) -> Image:
        bgr = run.render(output, bgr=True)
        return Image(
            data=encode.encode(bgr, fmt),
            format=fmt,
            width=bgr.shape[1],
            height=bgr.shape[0],
            time_ms=output.time_ms,
            keyframe=output.keyframe,
            index=output.index,
            score=output.score,
        )

    return run.mapped(image, ahead=_ENCODE_AHEAD)
