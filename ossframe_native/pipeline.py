"""The capture pipeline every front end goes through.

``open_capture`` opens the source and resolves the request against the media before it
returns, so every error about the parameters (``InvalidArgument``) or the file (``MediaError``)
surfaces at the call; nothing after that raises ``InvalidArgument``::

    source ─▶ open (decode.VideoSource: stream choice, FrameIndex)
           ─▶ resolve (ss against the duration, w/h against the size after rotation, output
              geometry)
           ─▶ plan (modes.py: the request's mode, one object; plan.py: decode runs)
           ─▶ Capture.outputs(): decode, and what the mode decides ─▶ Output (frame + metadata)
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
from typing import Any, TypeVar

import numpy as np

from . import geometry, sources, timeline, transform
from .decode import Source, VideoSource
from .errors import InvalidArgument, MediaError
from .geometry import Geometry
from .index import END, DecodeStats, FrameIndex, MediaInfo, Output
from .modes import Mode, mode_for
from .params import CaptureRequest, SnapshotRequest, SnapshotsRequest
from .plan import CapturePlan, decode_runs, keyframe_numbers

__all__ = [
    "Capture",
    "DecodeStats",
    "Output",
    "collect_stats",
    "open_capture",
    "probe",
    "resolve",
]

T = TypeVar("T")

_collecting = threading.local()  # .stats: the list collect_stats() fills, in this thread
_device = threading.local()  # .hw: the decode device decoding_on() set, in this thread


def open_capture(
    source: Source, request: CaptureRequest, *, threads: int | None = None, hw: str | None = None
) -> Capture:
    """Opens ``source`` and resolves ``request`` against it (see :func:`resolve`).

    ``threads``: decoder threads (0: one per core; None: ``OSSFRAME_DECODE_THREADS`` or one per
    core). ``hw``: ``"cuda"`` / ``"cuda:N"`` to decode on that GPU where possible (else the
    device :func:`decoding_on` set for this thread); frames it decodes are hashed and rendered
    there (``Capture.backend``). The mode (:func:`modes.mode_for`) says where the source is
    opened: one snapshot indexes only the GOP around its time; sampled captures (``default``
    and ``dhash`` with ``inter``, ``avg``, ``key`` with ``num``) open at the last GOP and are
    read GOP by GOP where their samples lie further apart than what one GOP's read costs, else
    on the whole stream's index (see :func:`_plan`).
    """
    mode = mode_for(request)
    src = VideoSource(source, threads=threads, around=mode.around(), hw=hw or _device_default())
    collected: list[DecodeStats] | None = getattr(_collecting, "stats", None)
    if collected is not None:
        collected.append(src.stats)
    try:
        return resolve(src, request, mode)
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


def resolve(src: VideoSource, request: CaptureRequest, mode: Mode | None = None) -> Capture:
    """Checks what depends on the media and plans the capture; raises before any output.

    * ``ss`` of ``video/snapshots`` must be before the end of the stream (a cover picture has
      no duration: ``ss`` is not checked there, the cover is output once).
    * ``w``/``h`` of ``video/snapshot`` may not exceed the source size after ``ar`` rotation.
      The rotation is read up front (:meth:`VideoSource.rotation` decodes the first keyframe)
      only when ``ar`` is given.
    """
    info = src.info
    mode = mode or mode_for(request)
    # A cover picture is output once whatever the mode (its plan decodes nothing: see outputs).
    cover = CapturePlan(mode.name, (0,), ())
    plan = cover if info.cover_art else _plan(src, mode)  # may index the whole stream
    if isinstance(request, SnapshotsRequest) and not info.cover_art:
        duration_ms = float(src.index.duration * 1000)
        if request.ss >= duration_ms:
            raise InvalidArgument(
                "ss",
                f"must be less than the source's duration ({duration_ms:.0f} ms), got {request.ss}",
            )
    rotation = src.rotation() if getattr(request, "ar", None) is not None else 0
    shape = output_geometry(request, info.width, info.height, rotation)
    return Capture(src, request, plan, shape, rotation, mode)


def _plan(src: VideoSource, mode: Mode) -> CapturePlan:
    """Plans on the loaded index; a source opened around its end is planned by time where the
    samples lie further apart than a window costs (each GOP read when the capture gets there:
    :func:`_windows_read_less`), else its whole stream is indexed first."""
    timeline = src.timeline
    if mode.by_time and timeline.windowed:
        # The last GOP tells the stream's end; its frame count comes from the container where
        # it has one (MP4/MOV), else from the last GOP's frame rate.
        samples = mode.sample_times(src.index, timeline.frames_estimate())
        if (
            samples is not None
            and _windows_read_less(src, mode.windows(samples))
            and mode.plans_by_time(src.info)
        ):
            return CapturePlan(mode.name, (), (), samples=samples)
        timeline.load_whole_index()
    return mode.plan(src.index)


def _windows_read_less(src: VideoSource, windows: int) -> bool:
    """Whether reading ``windows`` GOPs, each by a seek, reads less than indexing the whole
    stream (which reads every byte of the file once). What one window costs is measured on the
    media (:meth:`Timeline.window_cost`): samples further apart than that stretch of the file
    are read GOP by GOP, denser ones on the whole index. Where the source's size is not known
    (a file object that cannot tell), the stretch of the stream a window's read holds is
    weighed against the duration."""
    size, duration = src.size, src.index.duration
    if duration <= 0:
        return True
    cost = src.timeline.window_cost(size)
    if size is None or cost.read <= 0:
        return windows * cost.seconds() < duration
    return windows * cost.read < size


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
        mode: Mode | None = None,
    ) -> None:
        self.source = src
        self.request = request
        self.mode = mode or mode_for(request)
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
        """The outputs in time order, as the mode decides them; closes the source when
        exhausted or closed.

        Where the plan repeats a frame (``avg``), the same :class:`Output` object is yielded
        again, lazily (``num`` may be far larger than the frames), so that :meth:`mapped`
        renders it once."""
        with self:
            if self.info.cover_art:  # a cover picture: once, in every mode
                score = 100.0 if self.mode.scores else None
                yield Output(self.source.cover_frame(), 0, 0, True, score)
            else:
                yield from self.mode.decide(self._decoded(), self._again, self)

    def _decoded(self) -> Iterator[tuple[int, Output, int]]:
        """Each planned frame, decoded, once, in time order: its number in the loaded index,
        its output and how many outputs it gives."""
        if self.plan.samples:
            yield from self._decoded_by_time()
            return
        for number, frame in self.source.decode(self.plan.runs):
            yield number, self._output(number, frame, None), self.plan.outputs(number)

    def frame_hash(self, frame: Any) -> int:
        """The dhash of a decoded frame's luma, computed where it was decoded (the backend)."""
        return self.backend.dhash(frame)

    def _again(self, scores: dict[int, float]) -> Iterator[Output]:
        """Frames of the whole stream's index decoded again, with their scores."""
        runs = decode_runs(self.source.index, list(scores))
        for number, frame in self.source.decode(runs):
            yield self._output(number, frame, scores[number])

    def _decoded_by_time(self) -> Iterator[tuple[int, Output, int]]:
        """The frames shown at the plan's sample times, found GOP by GOP
        (:meth:`Timeline.sampled`). Several windows decode at once on parallel decoders. A
        frame that samples in two windows show is output once (a mode that repeats: once per
        sample, decoded once)."""
        src, mode = self.source, self.mode
        keyframes_only = mode.keyframes_only
        windows = src.timeline.sampled(self.plan.samples, onward=mode.reads_onward)
        decoded: Iterator[tuple[int, Output, int]]
        if src.parallel and (len(self.plan.samples) > 1 or mode.reads_onward):
            jobs = (
                src.job(run, {n: (n, self._output(n, None, None), counts[n]) for n in run.frames})
                for counts in windows
                for run in decode_runs(src.index, list(counts), keyframes_only)
            )
            decoded = (
                (number, dataclasses.replace(output, frame=frame), count)
                for (number, output, count), frame in src.decode_jobs(jobs, mode.limit)
            )
        else:
            decoded = (
                (n, self._output(n, frame, None), counts[n])
                for counts in windows
                for n, frame in src.decode(decode_runs(src.index, list(counts), keyframes_only))
            )
        previous: Output | None = None
        given = 0
        for number, output, count in decoded:
            if previous is not None and output.frame.pts == previous.frame.pts:
                if mode.repeats:
                    yield number, previous, count
                continue
            yield number, output, count if mode.repeats else 1
            previous = output
            given += 1
            if given == mode.limit:
                return

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
    ``requests`` say what describing it cost (as in :class:`DecodeStats`).

    Where the container counts the frames (an MP4/MOV sample table) only the last GOP (the
    duration) and each keyframe's packet (its time) are read; elsewhere every packet."""
    source = sources.bind(source, storage_options)
    with VideoSource(source, around=END) as src:
        keyframes = src.timeline.keyframe_times_ms()  # None: not from the sample table
        if keyframes is None:
            src.timeline.load_whole_index()
        index = src.index
        if keyframes is None:
            keyframes = [index.time_ms(i) for i in keyframe_numbers(index)]
        info = src.info
        described = {
            "codec": info.codec,
            "width": info.width,
            "height": info.height,
            "rotation": src.rotation(),
            "fps": round(info.fps, 6),
            "frames": src.timeline.frame_count,
            "duration_ms": float(index.duration * 1000),
            "start_ms": float(index.first_pts * index.time_base * 1000),
            "keyframes_ms": keyframes,
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
    stream: ``seek`` (only the GOP around t is read), ``from_start`` (no usable seek: read up
    to t) or ``whole_stream`` (every packet, e.g. missing timestamps). What the trial read is
    added to ``read``."""
    if cover_art:
        return timeline.SEEK  # the one picture
    with VideoSource(source, around=index.duration / 2) as trial:
        read.add(trial.stats)
        return trial.reach or timeline.WHOLE_STREAM
