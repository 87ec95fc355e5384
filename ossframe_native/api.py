"""The public capture API: ``snapshot``, ``snapshots``, ``probe`` and ``capture``.

A front end over :mod:`ossframe_native.pipeline`: it renders each output in BGR and encodes it
as jpg/png on the pipeline's worker thread, while the decoder goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from . import encode
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
) -> Image:
    """Captures the frame shown at ``t`` ms (``m="fast"``: the keyframe at or before it)."""
    params = {name: value for name, value in locals().items() if name != "source"}
    request = SnapshotRequest.from_kwargs(params)
    return next(capture(source, request))


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
) -> Iterator[Image]:
    """Captures many frames (modes ``default``/``avg``/``dhash``/``key``), in time order.

    Every parameter is checked against the source (``ss`` against its duration) before the
    iterator is returned; decoding happens as it is consumed.
    """
    params = {name: value for name, value in locals().items() if name != "source"}
    request = SnapshotsRequest.from_kwargs(params)
    return capture(source, request)


def capture(source: Source, request: CaptureRequest, threads: int | None = None) -> Iterator[Image]:
    """Runs a validated request on a source and yields its encoded images in time order.

    The source is opened and the request resolved against it now, so errors surface here.
    """
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
