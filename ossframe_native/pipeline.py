"""The capture pipeline every front end goes through.

``open_capture`` opens the source and resolves the request against the media before it
returns, so every error about the parameters (``InvalidArgument``) or the file (``MediaError``)
surfaces at the call; nothing after that raises ``InvalidArgument``::

    source ─▶ open (decode.VideoSource: stream choice, FrameIndex)
           ─▶ resolve (ss against the duration, w/h against the size after rotation, output
              geometry)
           ─▶ plan (plan.py: one selector per mode, decode runs)
           ─▶ Capture.outputs(): decode + dhash ranking ─▶ Output (frame + its metadata)
           ─▶ front end: api.py renders + encodes (Image), ml.py hands over arrays (Frame),
              task.py saves (TaskResult)

Rendering for images runs on a worker thread while the decoder goes on (:meth:`Capture.mapped`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np

from . import decode, geometry, kernels, sources, transform
from .decode import Source, VideoSource
from .errors import InvalidArgument, MediaError
from .geometry import Geometry
from .index import DecodeStats, FrameIndex, MediaInfo
from .params import CaptureRequest, SnapshotRequest, SnapshotsRequest
from .plan import (
    CapturePlan,
    DhashRanking,
    decode_runs,
    keyframe_numbers,
    may_sample_by_time,
    mode_of,
    plan_capture,
    sample_times,
)

__all__ = [
    "Capture",
    "DecodeStats",
    "Output",
    "collect_stats",
    "open_capture",
    "probe",
    "resolve",
]

# dhash with num > 0 holds its best candidates' decoded frames while it hashes the rest when
# they fit in this many pixels; otherwise it keeps scores only and decodes the winners again.
_DHASH_HOLD_PIXELS = 64 * 1024 * 1024

T = TypeVar("T")

_collecting = threading.local()  # .stats: the list collect_stats() fills, in this thread
_device = threading.local()  # .hw: the decode device decoding_on() set, in this thread


@dataclass(frozen=True)
class Output:
    """One output of a capture: the decoded frame and what every front end reports about it."""

    frame: Any = None  # av.VideoFrame
    index: int = 0  # the frame's number in the whole stream, presentation order, from 0
    time_ms: int = 0  # the frame's time from the first frame, rounded up to whole ms
    keyframe: bool = False
    score: float | None = None  # dhash mode: percent of hash bits changed from the previous


def open_capture(
    source: Source, request: CaptureRequest, *, threads: int | None = None, hw: str | None = None
) -> Capture:
    """Opens ``source`` and resolves ``request`` against it (see :func:`resolve`).

    ``threads``: decoder threads (0: one per core; None: ``OSSFRAME_DECODE_THREADS`` or one per
    core). ``hw``: ``"cuda"`` / ``"cuda:N"`` to decode on that GPU where possible (else the
    device :func:`decoding_on` set for this thread); frames it decodes are hashed and rendered
    there (``Capture.backend``). One snapshot indexes only the GOP around its time; samples
    10 s or more apart (``avg``, ``key`` with ``num``) are planned by time, from the last GOP,
    and read GOP by GOP where that reads less than the whole stream (see :func:`_plan`).
    """
    around = None
    if isinstance(request, SnapshotRequest):
        around = Fraction(request.t, 1000)
    elif may_sample_by_time(request):
        around = decode.END  # the last GOP tells the duration; _plan decides what else is read
    src = VideoSource(source, threads=threads, around=around, hw=hw or _device_default())
    collected: list[DecodeStats] | None = getattr(_collecting, "stats", None)
    if collected is not None:
        collected.append(src.stats)
    try:
        return resolve(src, request)
    except BaseException:
        src.close()
        raise


@contextmanager
def decoding_on(hw: str | None) -> Iterator[None]:
    """Captures opened in this thread inside the block decode on ``hw`` (``"cuda"``,
    ``"cuda:N"``; None: the CPU) unless they name one: how an executor runs front ends that
    take no device (``task.process``) on a GPU."""
    previous = getattr(_device, "hw", None)
    _device.hw = hw
    try:
        yield
    finally:
        _device.hw = previous


def _device_default() -> str | None:
    hw: str | None = getattr(_device, "hw", None)
    return hw


@contextmanager
def collect_stats() -> Iterator[list[DecodeStats]]:
    """Collects the :class:`DecodeStats` of every capture opened in this thread inside the block
    (``snapshot``, ``snapshots``, ``frames``, ``process`` ... all open one); read them once the
    outputs were consumed. Benchmarks use it to count the frames a call decoded."""
    previous = getattr(_collecting, "stats", None)
    collected: list[DecodeStats] = []
    _collecting.stats = collected
    try:
        yield collected
    finally:
        _collecting.stats = previous


def resolve(src: VideoSource, request: CaptureRequest) -> Capture:
    """Checks what depends on the media and plans the capture; raises before any output.

    * ``ss`` of ``video/snapshots`` must be before the end of the stream (a cover picture has
      no duration: ``ss`` is not checked there, the cover is output once).
    * ``w``/``h`` of ``video/snapshot`` may not exceed the source size after ``ar`` rotation.
      The rotation is read up front (:meth:`VideoSource.rotation` decodes the first keyframe)
      only when ``ar`` is given.
    """
    info = src.info
    # A cover picture is output once whatever the mode (its plan decodes nothing: see outputs).
    cover = CapturePlan(mode_of(request), (0,), ())
    plan = cover if info.cover_art else _plan(src, request)  # may index the whole stream
    if isinstance(request, SnapshotsRequest) and not info.cover_art:
        duration_ms = float(src.index.duration * 1000)
        if request.ss >= duration_ms:
            raise InvalidArgument(
                "ss",
                f"must be less than the source's duration ({duration_ms:.0f} ms), got {request.ss}",
            )
    rotation = src.rotation() if getattr(request, "ar", None) is not None else 0
    shape = output_geometry(request, info.width, info.height, rotation)
    return Capture(src, request, plan, shape, rotation)


def _plan(src: VideoSource, request: CaptureRequest) -> CapturePlan:
    """Plans on the loaded index; a source opened around its end is planned by time where the
    samples lie far apart (each GOP read when the capture gets there), else its whole stream
    is indexed first."""
    if isinstance(request, SnapshotsRequest) and src.windowed:
        # The last GOP stands for the stream (its end, its frame count) where it numbers its
        # frames (a sample table, or a constant rate it follows); else the whole index decides.
        samples = None
        if src.frame_count:
            samples = sample_times(request, src.index, src.frame_count)
        # dhash with num decodes its winners again unless it can hold them: a whole index then.
        if (
            samples is not None
            and _windows_read_less(src, _windows(request, samples))
            and (request.m != "dhash" or _dhash_holds(request, src.info))
        ):
            return CapturePlan(request.m, (), (), samples=samples)
        src.load_whole_index()
    return plan_capture(request, src.index)


def _windows(request: SnapshotsRequest, samples: tuple[Fraction, ...]) -> int:
    """How many GOPs a capture planned by time reads at most."""
    if request.m in ("key", "avg"):
        return request.num
    if request.m == "default" and request.num:
        return min(request.num, len(samples))
    return len(samples)


# What reading one sample's GOP costs, estimated: this much of the file's time (the GOP, and
# the step back a demuxer without a keyframe index takes) and this many bytes for the seek.
_WINDOW_SECONDS = 4
_WINDOW_BYTES = 256 * 1024


def _windows_read_less(src: VideoSource, windows: int) -> bool:
    """Whether reading ``windows`` GOPs by seeks reads under half of the file (else indexing
    the whole stream, which reads it once, is as cheap)."""
    size, duration = src.size, float(src.index.duration)
    if size is None or duration <= 0:
        return True
    return windows * (size / duration * _WINDOW_SECONDS + _WINDOW_BYTES) < size / 2


def _dhash_holds(request: SnapshotsRequest, info: MediaInfo) -> bool:
    """Whether dhash keeps its best candidates' frames while it hashes the rest."""
    return request.num * info.width * info.height <= _DHASH_HOLD_PIXELS


def output_geometry(
    request: CaptureRequest, width: int, height: int, rotation: int = 0
) -> Geometry:
    """The output geometry of a ``width`` x ``height`` frame (``rotation``: its display
    rotation, used by ``ar``); raises ``InvalidArgument`` for a snapshot w/h past the size."""
    if isinstance(request, SnapshotRequest):
        return geometry.for_snapshot(request, width, height, rotation)
    return geometry.for_snapshots(request, width, height)


class Capture:
    """An opened, resolved and planned request: iterate :meth:`outputs` (or :meth:`mapped`).

    Use as a context manager, or consume the iterator to the end (which closes the source).
    """

    def __init__(
        self,
        src: VideoSource,
        request: CaptureRequest,
        plan: CapturePlan,
        shape: Geometry,
        rotation: int,
    ) -> None:
        self.source = src
        self.request = request
        self.plan = plan
        self.geometry = shape  # at the stream's size; frames of another size get their own
        self.rotation = rotation
        self.backend = _backend(src)

    @property
    def info(self) -> MediaInfo:
        """What the demuxer says about the source."""
        return self.source.info

    @property
    def index(self) -> FrameIndex:
        """The frame index the plan was made on."""
        return self.source.index

    @property
    def stats(self) -> DecodeStats:
        """What the decoders did so far (complete once the outputs are consumed)."""
        return self.source.stats

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the source."""
        self.source.close()

    def geometry_for(self, frame: Any) -> Geometry:
        """The output geometry of a decoded frame: the resolved one, unless the stream changed
        size mid-way (then recomputed for the frame; a snapshot w/h past a smaller frame is a
        MediaError: the parameters were valid for the stream)."""
        if (frame.width, frame.height) == (self.info.width, self.info.height):
            return self.geometry
        try:
            return output_geometry(self.request, frame.width, frame.height, self.rotation)
        except InvalidArgument as exc:
            raise MediaError(
                f"the frame is {frame.width}x{frame.height}, not the stream's "
                f"{self.info.width}x{self.info.height} ({exc})"
            ) from exc

    def render(self, output: Output, bgr: bool = False) -> np.ndarray:
        """The output as an (H, W, 3) uint8 RGB (or BGR) array at its output geometry."""
        shape = self.geometry_for(output.frame)
        return self.backend.host(transform.render(output.frame, shape, bgr, self.backend))

    def outputs(self) -> Generator[Output, None, None]:
        """The outputs in time order; closes the source when exhausted or closed.

        Where the plan repeats a frame (``avg``), the same :class:`Output` object is yielded
        again, lazily (``num`` may be far larger than the frames), so that :meth:`mapped`
        renders it once."""
        with self:
            if self.info.cover_art:  # a cover picture: once, in every mode
                score = 100.0 if self.plan.mode == "dhash" else None
                yield Output(self.source.cover_frame(), 0, 0, True, score)
            elif self.plan.mode == "dhash":
                yield from self._dhash_outputs()
            else:
                for output, count in self._decoded():
                    for _ in range(count):
                        yield output

    def _decoded(self) -> Iterator[tuple[Output, int]]:
        """Each planned frame, decoded, once, in time order, with how many outputs it gives."""
        if self.plan.samples:
            yield from self._decoded_by_time()
            return
        for number, frame in self.source.decode(self.plan.runs):
            yield self._output(number, frame, None), self.plan.outputs(number)

    def _decoded_by_time(self) -> Iterator[tuple[Output, int]]:
        """The frames shown at the plan's sample times, found GOP by GOP (:meth:`_windows`).
        Several windows decode at once on parallel decoders. A frame that samples in two
        windows show is output once (``avg``: once per sample, decoded once)."""
        src = self.source
        request = self.request
        assert isinstance(request, SnapshotsRequest)
        decoded: Iterator[tuple[Output, int]]
        keyframes_only = request.m == "key"
        if src.parallel and (len(self.plan.samples) > 1 or keyframes_only):
            jobs = (
                src.job(run, {n: (self._output(n, None, None), counts[n]) for n in run.frames})
                for counts in self._windows()
                for run in decode_runs(src.index, list(counts), keyframes_only)
            )
            most = request.num if request.m in ("default", "key") else 0
            decoded = (
                (dataclasses.replace(output, frame=frame), count)
                for (output, count), frame in src.decode_jobs(jobs, most)
            )
        else:
            decoded = (
                (self._output(n, frame, None), counts[n])
                for counts in self._windows()
                for n, frame in src.decode(decode_runs(src.index, list(counts), keyframes_only))
            )
        limit = request.num if request.m in ("default", "key") else 0
        previous: Output | None = None
        given = 0
        for output, count in decoded:
            if previous is not None and output.frame.pts == previous.frame.pts:
                if request.m == "avg":
                    yield previous, count
                continue
            yield output, count if request.m == "avg" else 1
            previous = output
            given += 1
            if given == limit:
                return

    def _windows(self) -> Iterator[dict[int, int]]:
        """Loads, in turn, the window of each sample not yet covered (where none can be read,
        the whole stream's index) and yields the frames the samples it covers show (numbers in
        the loaded index), each with how many of them show it, in time order (one frame
        may end a window and start the next: the caller outputs it once). ``key``: from
        its one sample (ss) on, the keyframes of each window, then the window after it."""
        src = self.source
        samples = deque(self.plan.samples)
        while samples:
            if not src.covers(samples[0]) and not src.load_window(samples[0]):
                src.load_whole_index()
            if self.plan.mode == "key":
                start = samples.popleft()
                yield dict.fromkeys(src.covered_keyframes(start), 1)
                after = src.after_window()
                if after is not None:
                    samples.append(after)
                continue
            counts: dict[int, int] = {}
            while samples and src.covers(samples[0]):
                shown = src.index.frame_at(samples.popleft())
                counts[shown] = counts.get(shown, 0) + 1
            yield counts

    def mapped(self, fn: Callable[[Output], T], ahead: int = 2) -> Iterator[T]:
        """``fn`` of every output, in order, computed on a worker thread up to ``ahead`` outputs
        behind the decoder (rendering and encoding release the GIL); ``ahead=0``: inline.

        A repeated output (the same object again, see :meth:`outputs`) is not computed again:
        its result is handed out once more."""
        outputs = self.outputs()
        if ahead <= 0:
            try:
                yield from _computed_once(fn, outputs)
            finally:
                outputs.close()
            return
        try:
            with ThreadPoolExecutor(1) as worker:  # exits (waits for the worker) first
                pending: deque[Future[T]] = deque()
                last: tuple[Output, Future[T]] | None = None
                try:
                    for output in outputs:
                        if last is None or last[0] is not output:
                            last = (output, worker.submit(fn, output))
                        pending.append(last[1])
                        if len(pending) > ahead:
                            yield pending.popleft().result()
                    while pending:
                        yield pending.popleft().result()
                finally:
                    for future in pending:
                        future.cancel()
        finally:
            outputs.close()  # then the source

    def _output(self, number: int, frame: Any, score: float | None) -> Output:
        index = self.source.index
        return Output(
            frame, index.number(number), index.time_ms(number), index.is_keyframe(number), score
        )

    def _dhash_outputs(self) -> Iterator[Output]:
        """Hashes each candidate's luma as it is decoded; the ranking is plan.DhashRanking."""
        request = self.request
        assert isinstance(request, SnapshotsRequest)
        ranking = DhashRanking(request.thr, request.num, kernels.hash_distance)
        hold = _dhash_holds(request, self.info)
        # Ranked by their place among the candidates (time order), which ties go by: a frame's
        # number could repeat where a capture planned by time changes how it numbers frames.
        for place, (output, _) in enumerate(self._decoded()):
            score = ranking.score(self.backend.dhash(output.frame))
            if not ranking.passes(score):
                continue
            scored = dataclasses.replace(output, score=score)
            if not request.num:
                yield scored
            else:
                ranking.rank(place, score, scored if hold else output.index)
        winners = ranking.winners()
        if hold:
            yield from (scored for _, _, scored in winners)
            return
        # Not held: planned on the whole stream's index (see _plan), numbered from 0.
        scores = {number: score for _, score, number in winners}
        runs = decode_runs(self.source.index, list(scores))
        for number, frame in self.source.decode(runs):
            yield self._output(number, frame, scores[number])


def _backend(src: VideoSource) -> transform.Backend:
    """Where a capture's frames are hashed and rendered: on the GPU that decodes them (frames
    in its memory), else NumPy and the C++ kernels."""
    if src.gpu is None:
        return transform.NUMPY
    from .torch_ops import RenderBackend  # torch: the GPU path needs it

    return RenderBackend(f"cuda:{src.gpu.decoder.device}")


def _computed_once(fn: Callable[[Output], T], outputs: Iterator[Output]) -> Iterator[T]:
    """``fn`` of each output, inline; a repeated output gets the previous result again."""
    last: tuple[Output, T] | None = None
    for output in outputs:
        if last is None or last[0] is not output:
            last = (output, fn(output))
        yield last[1]


def probe(source: Source, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Describes a source from its packets (and its first keyframe, for the rotation): the
    picture stream captured from, and every stream of the file; ``bytes_read`` and
    ``requests`` say what describing it cost (as in :class:`DecodeStats`)."""
    source = sources.bind(source, storage_options)
    with VideoSource(source) as src:
        index = src.index
        info = src.info
        described = {
            "codec": info.codec,
            "width": info.width,
            "height": info.height,
            "rotation": src.rotation(),
            "fps": round(info.fps, 6),
            "frames": len(index),
            "duration_ms": float(index.duration * 1000),
            "start_ms": float(index.first_pts * index.time_base * 1000),
            "keyframes_ms": [index.time_ms(i) for i in keyframe_numbers(index)],
            "cover_art": info.cover_art,
            "stream": info.stream,
            "streams": [
                {**stream.to_dict(), "used": stream.index == info.stream} for stream in info.streams
            ],
        }
    # After the source is closed: a file object serves one container at a time.
    read = dataclasses.replace(src.stats)
    described["snapshot_reads"] = _snapshot_reads(source, index, info.cover_art, read)
    described["bytes_read"], described["requests"] = read.bytes_read, read.requests
    return described


def _snapshot_reads(source: Source, index: FrameIndex, cover_art: bool, read: DecodeStats) -> str:
    """How a snapshot reaches its frame in this source, found by a trial in the middle of the
    stream: ``seek`` (only the GOP around t is read), ``seek_and_count`` (and the packets
    before it are counted: variable frame rate outside MP4/MOV), ``from_start`` (no usable
    seek: read up to t) or ``whole_stream`` (every packet, e.g. missing timestamps). What the
    trial read is added to ``read``."""
    if cover_art:
        return decode.SEEK  # the one picture
    with VideoSource(source, around=index.duration / 2) as trial:
        read.add(trial.stats)
        return trial.reach or decode.WHOLE_STREAM
