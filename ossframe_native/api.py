"""The public capture API: ``snapshot``, ``snapshots``, ``probe`` and ``capture``.

``select`` is the shared core: the decoded frames a request outputs. ``ml.py`` builds arrays
and tensors on it.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from . import decode, encode, geometry, kernels, transform
from .decode import FrameIndex, Source, VideoSource
from .params import CaptureRequest, SnapshotRequest, SnapshotsRequest, check_against_media
from .plan import decode_runs, keyframe_numbers, plan_capture

# Frames decoded ahead of the encoder at most (bounds memory while keeping both busy).
_ENCODE_AHEAD = 2
# dhash with num > 0 holds its best candidates' decoded frames while it hashes the rest when
# they fit in this many pixels; otherwise it keeps scores only and decodes the winners again.
_DHASH_HOLD_PIXELS = 64 * 1024 * 1024


@dataclass(frozen=True)
class Image:
    """One encoded output: ``data`` holds the jpg/png bytes."""

    data: bytes = field(repr=False)
    format: str
    width: int
    height: int
    time_ms: int  # the frame's time from the first frame, rounded up to whole ms
    keyframe: bool
    index: int  # the frame's number in presentation order, from 0
    score: float | None = (
        None  # dhash mode: percent of hash bits changed from the previous candidate
    )


@dataclass(frozen=True)
class Selected:
    number: int
    frame: Any  # av.VideoFrame
    score: float | None


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
    """Captures many frames (SPEC §3 modes ``default``/``avg``/``dhash``/``key``), in time order.

    Parameters are validated before the iterator is returned; decoding happens as it is consumed.
    """
    params = {name: value for name, value in locals().items() if name != "source"}
    request = SnapshotsRequest.from_kwargs(params)
    return capture(source, request)


def capture(source: Source, request: CaptureRequest, threads: int | None = None) -> Iterator[Image]:
    """Runs a validated request on a source and yields its encoded images in time order;
    ``threads``: decoder threads (None: ``OSSFRAME_DECODE_THREADS``, else one per core)."""
    # Opened now, so an unreadable source fails at the call. One snapshot indexes only its GOP.
    around = Fraction(request.t, 1000) if isinstance(request, SnapshotRequest) else None
    src = VideoSource(source, threads=threads, around=around)
    return _capture(src, request)


def _capture(src: VideoSource, request: CaptureRequest) -> Iterator[Image]:
    # Rendering and encoding run on a worker thread (both release the GIL) while the decoder
    # works on the next frames; outputs keep their order.
    with src, ThreadPoolExecutor(1) as encoder:
        pending: deque[Future[Image]] = deque()
        for item in select(src, request):
            pending.append(encoder.submit(_image, src.index, request, item))
            if len(pending) > _ENCODE_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _image(index: FrameIndex, request: CaptureRequest, item: Selected) -> Image:
    frame = item.frame
    if isinstance(request, SnapshotRequest):
        shape = geometry.for_snapshot(request, frame.width, frame.height, decode.rotation(frame))
    else:
        shape = geometry.for_snapshots(request, frame.width, frame.height)
    bgr = transform.render(frame, shape, bgr=True)
    return Image(
        data=encode.encode(bgr, request.f),
        format=request.f,
        width=bgr.shape[1],
        height=bgr.shape[0],
        time_ms=index.time_ms(item.number),
        keyframe=index.is_keyframe(item.number),
        index=index.number(item.number),
        score=item.score,
    )


def select(src: VideoSource, request: CaptureRequest) -> Iterator[Selected]:
    """The decoded frames a request outputs, in time order (repeated where a plan repeats one)."""
    dhash_mode = isinstance(request, SnapshotsRequest) and request.m == "dhash"
    if src.info.cover_art:  # audio with a cover picture: the cover, once, in every mode
        yield Selected(0, src.cover_frame(), 100.0 if dhash_mode else None)
        return
    check_against_media(request, src.info.width, src.info.height, float(src.index.duration * 1000))
    plan = plan_capture(request, src.index)
    if dhash_mode:
        yield from _select_dhash(src, plan.runs, request)  # type: ignore[arg-type]
        return
    repeats = Counter(plan.frames)
    for number, frame in src.decode(plan.runs):
        for _ in range(repeats[number]):
            yield Selected(number, frame, None)


def _select_dhash(src: VideoSource, runs: Any, request: SnapshotsRequest) -> Iterator[Selected]:
    """Hashes each candidate's luma; keeps score > thr; with num, the num best in time order."""
    hold = request.num * src.info.width * src.info.height <= _DHASH_HOLD_PIXELS
    best: list[tuple[float, int, Any]] = []  # min-heap of (score, -number, frame or None)
    previous: int | None = None
    for number, frame in src.decode(runs):
        value = kernels.dhash(decode.luma_plane(frame))
        score = 100.0 if previous is None else kernels.hash_distance(previous, value)
        previous = value
        if score <= request.thr:
            continue
        if not request.num:
            yield Selected(number, frame, score)
            continue
        # Ranking key (score, -number): higher score wins, on ties the earlier frame.
        heapq.heappush(best, (score, -number, frame if hold else None))
        if len(best) > request.num:
            heapq.heappop(best)
    winners = sorted(best, key=lambda entry: -entry[1])
    if hold:
        for score, neg_number, frame in winners:
            yield Selected(-neg_number, frame, score)
        return
    scores = {-neg_number: score for score, neg_number, _ in winners}
    for number, frame in src.decode(decode_runs(src.index, list(scores))):
        yield Selected(number, frame, scores[number])


def probe(source: Source) -> dict[str, Any]:
    """Describes a source from its packets (and its first keyframe, for the rotation)."""
    with VideoSource(source) as src:
        index = src.index
        keys = keyframe_numbers(index)
        if src.info.cover_art:
            rotation = 0
        else:
            first = decode_runs(index, keys[:1] or [0], keyframes_only=bool(keys))
            rotation = next((decode.rotation(frame) for _, frame in src.decode(first)), 0)
        return {
            "codec": src.info.codec,
            "width": src.info.width,
            "height": src.info.height,
            "rotation": rotation,
            "fps": round(src.info.fps, 6),
            "frames": len(index),
            "duration_ms": float(index.duration * 1000),
            "start_ms": float(index.first_pts * index.time_base * 1000),
            "keyframes_ms": [index.time_ms(i) for i in keys],
            "cover_art": src.info.cover_art,
        }
