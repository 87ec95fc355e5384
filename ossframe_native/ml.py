"""Frames for ML pipelines: decoded frames as arrays, never through jpg/png."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import geometry, transform
from .api import select
from .decode import Source, VideoSource
from .params import SnapshotsRequest


@dataclass(frozen=True)
class Frame:
    """One decoded output as an array (no encoding): HxWx3 RGB uint8 unless asked otherwise."""

    array: Any
    time_ms: int
    keyframe: bool
    index: int
    score: float | None = None


def frames(
    source: Source,
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
    output: str = "numpy",
) -> Iterator[Frame]:
    """Like :func:`snapshots`, but yields decoded RGB arrays (HxWx3 uint8) instead of images."""
    if output != "numpy":
        raise ValueError("output must be 'numpy'")
    request = SnapshotsRequest.from_kwargs(
        dict(m=m, thr=thr, inter=inter, num=num, ss=ss, w=w, h=h, pw=pw, ph=ph, scaletype=scaletype)
    )
    return _frames(source, request)


def _frames(source: Source, request: SnapshotsRequest) -> Iterator[Frame]:
    with VideoSource(source) as src:
        for item in select(src, request):
            frame = item.frame
            shape = geometry.for_snapshots(request, frame.width, frame.height)
            array = transform.render(frame, shape)
            yield Frame(
                array,
                src.index.time_ms(item.number),
                src.index.is_keyframe(item.number),
                item.number,
                item.score,
            )
