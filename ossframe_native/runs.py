"""Executing decode runs: the stream's own decoder one run after another, or runs on parallel
single-threaded decoders (CPU, or one NVDEC session each); one loop (:func:`decode_packets`)
feeds them all.

For each run the timeline (:mod:`~ossframe_native.timeline`) positions the demuxer on the run's
keyframe and hands over its packets; FFmpeg skips the unreferenced frames that are not wanted,
and the decoder is drained. What the decoders did is counted in
:class:`~ossframe_native.index.DecodeStats`.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import av

from .errors import MediaError
from .index import DecodeRun, DecodeStats, FrameIndex
from .streams import OpenStream
from .timeline import Timeline

# Parallel NVDEC sessions when runs decode on the GPU (7 decode engines on an H100/H200).
_GPU_SESSIONS = 8

T = TypeVar("T")

# (codec name, extradata, hwaccel or None) -> a fresh single-threaded decoder of the codec
FreshDecoder = Callable[[str, "bytes | None", Any], Any]


@dataclass(frozen=True)
class DecodeJob(Generic[T]):
    """A decode run made ready for a parallel decoder: its packets (with whether each may be
    skipped, see :func:`_decode_packets`), the wanted frames' pts, each with what the frame is
    yielded with, and their times (ms) for an error message."""

    packets: list[tuple[Any, bool]]
    wanted: dict[int, T]
    times: dict[int, int]


class Decoder:
    """Decodes runs of an open stream's :class:`Timeline`.

    ``threads``: the parallel decoders' count (0: one per core). ``cuvid``: a separate GPU
    decoder fed with the stream's packets (then runs are not parallel); ``hwaccel``: the GPU
    the parallel decoders open sessions on; ``fresh_decoder`` makes a parallel decoder.
    """

    def __init__(
        self,
        opened: OpenStream,
        timeline: Timeline,
        stats: DecodeStats,
        fresh_decoder: FreshDecoder,
        cuvid: Any = None,
        hwaccel: Any = None,
    ) -> None:
        self._opened = opened
        self._timeline = timeline
        self.stats = stats
        self._fresh_decoder = fresh_decoder
        self._cuvid = cuvid
        self._hwaccel = hwaccel

    @property
    def index(self) -> FrameIndex:
        """The timeline's loaded index (the runs' frame numbers are its)."""
        return self._timeline.index

    def _decoder(self) -> Any:
        """The video decoder: a cuvid one when in use, else the stream's own."""
        return self._cuvid if self._cuvid is not None else self._opened.stream.codec_context

    def decode(self, runs: Iterable[DecodeRun]) -> Iterator[tuple[int, Any]]:
        """Yields ``(frame_number, av.VideoFrame)`` for every wanted frame of every run, in order.

        Frames are numbered in presentation order, as in :class:`FrameIndex`. Several runs go
        to parallel single-threaded decoders (CPU decoders, or one NVDEC session each).
        """
        runs = list(runs)
        if len(runs) > 1 and self.parallel:
            yield from self.decode_jobs(self.job(run, {i: i for i in run.frames}) for run in runs)
            return
        for run in runs:
            wanted = {int(self.index.pts[i]): i for i in run.frames}
            self.stats.runs += 1
            packets = self._timeline.run_packets(run)
            for frame in decode_packets(self._decoder(), packets, set(wanted), self.stats):
                number = wanted.pop(frame.pts, None)
                if number is not None:  # a repeated timestamp is output once
                    yield number, frame
            self._check_all_decoded(self.index.time_ms(i) for i in wanted.values())

    @property
    def parallel(self) -> bool:
        """Whether runs can go to parallel decoders (not with a cuvid decoder: one per source)."""
        return self._cuvid is None

    def job(self, run: DecodeRun, tags: dict[int, T]) -> DecodeJob[T]:
        """A run of the loaded index, its packets read now, for :meth:`decode_jobs`; ``tags``
        maps each of the run's frame numbers to what its decoded frame is yielded with."""
        wanted = {int(self.index.pts[number]): tag for number, tag in tags.items()}
        times = {int(self.index.pts[number]): self.index.time_ms(number) for number in tags}
        return DecodeJob(list(self._timeline.run_packets(run)), wanted, times)

    @staticmethod
    def _check_all_decoded(missing_ms: Iterable[int]) -> None:
        """MediaError naming the times of wanted frames a run did not give."""
        missing = ", ".join(f"{t} ms" for t in sorted(missing_ms))
        if missing:
            raise MediaError(
                f"the frames at {missing} could not be decoded; the file may be corrupt"
            )

    def decode_jobs(self, jobs: Iterable[DecodeJob[T]], most: int = 0) -> Iterator[tuple[T, Any]]:
        """Decodes jobs (see :meth:`job`) on parallel single-threaded decoders, yielding
        ``(tag, frame)`` in order; at most ``most`` jobs are taken before the first one's
        frames are yielded (0: one per decoder and one more): fewer where reading a job is
        costly and only the first few outputs may be wanted.

        Each job starts from a fresh decoder state, exactly as after a seek, so the frames are
        the ones sequential decoding gives; meanwhile several cores work, with none of frame
        threading's start-up and drain per run. ``jobs`` is consumed in this thread (it may
        read the file, or reopen it: the demuxer stays here).
        """
        workers = self._opened.threads or os.cpu_count() or 1
        hwaccel = self._hwaccel
        if hwaccel is not None:  # NVDEC: a GPU has up to 7 engines; more sessions queue
            workers = min(workers, _GPU_SESSIONS)
        in_flight = min(most, workers + 1) if most else workers + 1
        codec = self._opened.stream.codec_context  # read here: jobs may reopen the container
        codec_name, extradata = codec.name, codec.extradata
        local = threading.local()

        def decode_alone(job: DecodeJob[T]) -> tuple[list[Any], DecodeStats]:
            ctx = getattr(local, "ctx", None)
            if ctx is None:
                ctx = local.ctx = self._fresh_decoder(codec_name, extradata, hwaccel)
            stats = DecodeStats(runs=1, parallel_runs=1)  # merged in this thread, in order
            return list(decode_packets(ctx, job.packets, set(job.wanted), stats)), stats

        with ThreadPoolExecutor(workers) as pool:
            pending: deque[tuple[DecodeJob[T], Future[tuple[list[Any], DecodeStats]]]] = deque()
            try:
                for job in jobs:
                    pending.append((job, pool.submit(decode_alone, job)))
                    if len(pending) >= in_flight:
                        yield from self._collect(*pending.popleft())
                while pending:
                    yield from self._collect(*pending.popleft())
            finally:
                for _, future in pending:
                    future.cancel()

    def _collect(
        self, job: DecodeJob[T], future: Future[tuple[list[Any], DecodeStats]]
    ) -> Iterator[tuple[T, Any]]:
        frames, stats = future.result()
        self.stats.add(stats)
        wanted = dict(job.wanted)
        for frame in frames:
            if frame.pts in wanted:
                yield wanted.pop(frame.pts), frame
        self._check_all_decoded(job.times[pts] for pts in wanted)


def decode_packets(
    ctx: Any, packets: Iterable[tuple[Any, bool]], wanted: set[int], stats: DecodeStats
) -> Iterator[Any]:
    """The one decode loop: feeds ``(packet, may_skip)`` pairs to ``ctx``, drains it, and yields
    the decoded frames whose pts is in ``wanted``; counts into ``stats``.

    ``may_skip`` packets are decoded with ``skip_frame=NONREF`` (set per packet; frame threads
    copy the setting when a packet is submitted), so FFmpeg drops them unless they are
    referenced. The decoder is reset afterwards: after a drain it only takes new packets then.
    """
    skipping = False
    try:
        for packet, skip in itertools.chain(packets, [(None, False)]):
            if skipping != skip:
                skipping = skip
                ctx.skip_frame = "NONREF" if skip else "DEFAULT"
            if packet is not None:
                stats.packets_fed += 1
            for frame in ctx.decode(packet):
                stats.frames_decoded += 1
                if frame.pts in wanted:
                    yield frame
    except av.FFmpegError as exc:
        raise MediaError(f"cannot decode frame data ({exc}); the file may be corrupt") from exc
    finally:
        ctx.skip_frame = "DEFAULT"
        ctx.flush_buffers()
