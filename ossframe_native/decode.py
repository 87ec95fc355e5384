"""Talking to FFmpeg (PyAV): the only module that imports ``av``.

* Opening a source (through :mod:`~ossframe_native.sources`: a path, bytes, a seekable file
  object or a URL, read as a stream this module hands to FFmpeg) and choosing its picture
  stream: the one FFmpeg itself would choose (``av_find_best_stream``), never a cover picture
  when a real video exists.
* Building the :class:`~ossframe_native.index.FrameIndex` from demuxed packets (no decoding):
  the whole stream, or for one snapshot only the GOP around its time, reached by a seek in any
  container FFmpeg can seek in. These functions
  are kept together at the end of the module ("Frame index building").
* Executing decode runs (:class:`~ossframe_native.index.DecodeRun`): for each run the demuxer is
  positioned on the run's keyframe (a seek, or reading on when that is cheaper), the packets the
  run needs are fed, FFmpeg skips unreferenced frames that are not wanted, and the decoder is
  drained. One loop (:func:`_decode_packets`) does the decoding, whether the run goes to the
  stream's own decoder or, for runs of lone keyframes, to parallel decoders.
* GPU decoders: :func:`open_gpu` opens the one ``hwdecode`` picks (or none).
* Frame helpers: plane views, colour tags, rotation, RGB conversion.

Every PyAV error becomes a :class:`MediaError`. What the decoders did is counted in
:class:`~ossframe_native.index.DecodeStats` (``VideoSource.stats``).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Generic, TypeVar

import av
import numpy as np

from . import hwdecode, sources
from .errors import MediaError
from .index import (
    DecodeRun,
    DecodeStats,
    FrameIndex,
    MediaInfo,
    StreamInfo,
    clamp_pts,
    single_picture_index,
)
from .sources import Source

__all__ = ["DecodeRun", "FrameIndex", "GpuDecoder", "MediaInfo", "Source", "VideoSource"]

# Reading on through this many packets is cheaper than a seek (which re-reads container headers
# and may land early); beyond it, seek.
_READ_ON_PACKETS = 64
# Parallel NVDEC sessions when runs decode on the GPU (7 decode engines on an H100/H200).
_GPU_SESSIONS = 8
# Seeks a snapshot window tries before reading from the start (see _seek_window).
_SEEK_TRIES = 10
# Packets read for the first pts where the container gives no dts (more than any reordering).
_FIRST_PACKETS = 64
# A window's packets are held in memory: past this many bytes (a GOP of minutes, or a stream
# with no keyframe after its first) no window is made and the whole stream is indexed instead,
# whose decoding reads packets as it goes.
_WINDOW_MAX_BYTES = 256 * 1024 * 1024


# A time past every frame: ``around=END`` indexes the stream's last GOP (its duration and last
# frame come from the end of the file).
END = Fraction(2**62)

# How a snapshot's window was found (VideoSource.reach, ``probe``'s ``snapshot_reads``):
SEEK = "seek"  # a seek to the GOP around t; frames numbered by sample table or constant rate
SEEK_AND_COUNT = "seek_and_count"  # the same, frames before it counted from the start
FROM_START = "from_start"  # no usable seek: packets read from the start up to t
WHOLE_STREAM = "whole_stream"  # no window possible (e.g. missing timestamps): every packet


T = TypeVar("T")


@dataclass(frozen=True)
class DecodeJob(Generic[T]):
    """A decode run made ready for a parallel decoder: its packets (with whether each may be
    skipped, see :func:`_decode_packets`), the wanted frames' pts, each with what the frame is
    yielded with, and their times (ms) for an error message."""

    packets: list[tuple[Any, bool]]
    wanted: dict[int, T]
    times: dict[int, int]


class VideoSource:
    """One open source: its picture stream, frame index and decoder.

    Use as a context manager. ``source`` is a path, a URL, ``bytes`` or a seekable binary file
    object (see :mod:`~ossframe_native.sources`; what reading it cost is counted in ``stats``).
    ``threads``: decoder threads (0: one per core, FFmpeg's choice; None: the same unless
    ``OSSFRAME_DECODE_THREADS`` says otherwise). With ``around=t`` (seconds) only the GOP that
    shows ``t`` is demuxed and indexed, and its packets are kept for decoding: what one snapshot
    needs; ``around=END`` indexes the last GOP, whose frames tell the duration and the last
    frame's time (their numbers are not counted where the window cannot tell them; see
    :meth:`load_window` for the GOPs of later times). ``hw="cuda"`` / ``"cuda:N"`` decodes on
    that GPU where :func:`open_gpu` can.
    """

    def __init__(
        self,
        source: Source,
        threads: int | None = None,
        around: Fraction | None = None,
        hw: str | None = None,
    ) -> None:
        self._threads = threads if threads is not None else _default_threads()
        self.stats = DecodeStats()
        self.gpu: GpuDecoder | None = None
        self._source = sources.open_source(source, self.stats)
        try:
            self._container = _open(self._source)
        except BaseException:
            self._source.close()
            raise
        try:
            self._stream, cover = _picture_stream(self._container)
            self._stream_number = self._stream.index
            _require_decoder(self._stream, self._source)
            if hw is not None:
                self._start_gpu(hw, cover)
            self.info = _media_info(self._container, self._stream, cover)
            self._window: list[Any] | None = None  # demuxed packets of a windowed index
            self._covered: tuple[int, int | None] | None = None  # pts the window answers for
            self._first_pts: int | None = None  # the stream's first frame, once read
            self._read_from_start = False  # a window was read from the start (load_window)
            self.frame_count: int | None = None  # frames in the stream, where known
            self.reach: str | None = None  # with ``around``: how the window was found
            if cover:
                self.index = single_picture_index()
            elif around is not None and (window := self._index_around(around)):
                self._window, self.index = window
            else:
                if around is not None:  # the window was tried and moved the demuxer
                    self.reach = WHOLE_STREAM
                self._read_whole_index(reopen=around is not None)
        except BaseException:
            self.close()
            raise
        self._configure_decoder(self._stream)
        self._next_pos: int | None = None  # decode position of the next demuxed packet
        self._packets: Iterator[Any] | None = None
        self._pending: Any = None  # a packet read by a seek check, not yet handed out
        self._rotation: int | None = None

    @property
    def hw(self) -> hwdecode.HwDecoder | None:
        """The GPU decoder in use, if any."""
        return None if self.gpu is None else self.gpu.decoder

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the container, its decoder and the source."""
        self._container.close()
        self._source.close()

    def _start_gpu(self, device: str, cover: bool) -> None:
        gpu = open_gpu(self._source, self._stream, device, cover)
        if gpu is None:
            return
        if gpu.container is not None:  # the hwaccel route decodes from its own container
            self._container.close()
            self._container = gpu.container
            self._stream = self._container.streams[self._stream_number]
        self.gpu = gpu

    def _decoder(self) -> Any:
        """The video decoder: a cuvid one when in use, else the stream's own."""
        if self.gpu is not None and self.gpu.cuvid is not None:
            return self.gpu.cuvid
        return self._stream.codec_context

    def _configure_decoder(self, stream: Any) -> None:
        ctx = stream.codec_context
        ctx.thread_type = "AUTO"
        ctx.thread_count = self._threads

    def cover_frame(self) -> Any:
        """Decodes the embedded cover picture (the stream's one packet)."""
        ctx = self._stream.codec_context
        try:
            self._container.seek(0)
            for packet in demux_guarded(self._container, self._stream):
                if packet.size:
                    self.stats.packets_fed += 1
                    frame = next(iter([*ctx.decode(packet), *ctx.decode(None)]))
                    self.stats.frames_decoded += 1
                    return frame
        except (av.FFmpegError, StopIteration) as exc:
            raise MediaError(f"cannot decode the cover picture ({exc})") from exc
        raise MediaError("the cover picture stream holds no picture")

    def rotation(self) -> int:
        """The stream's display rotation (counter-clockwise degrees: 0, 90, 180, 270).

        PyAV exposes no stream side data, so this decodes the index's first keyframe and reads
        the display matrix FFmpeg attaches to every frame (once per source; counted in
        ``stats``). A cover picture has none.
        """
        if self._rotation is None:
            if self.info.cover_art:
                self._rotation = 0
            else:
                keys = np.flatnonzero(self.index.packet_key[self.index.decode_pos])
                if len(keys):  # the first keyframe alone
                    pos = int(self.index.decode_pos[keys[0]])
                    run = DecodeRun(pos, pos, (int(keys[0]),), keyframes_only=True)
                else:  # no keyframe flags: from the first packet up to frame 0
                    run = DecodeRun(0, int(self.index.decode_pos[0]), (0,))
                self._rotation = next((rotation(f) for _, f in self.decode([run])), 0)
        return self._rotation

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
            packets = self._run_packets(run)
            for frame in _decode_packets(self._decoder(), packets, set(wanted), self.stats):
                number = wanted.pop(frame.pts, None)
                if number is not None:  # a repeated timestamp is output once
                    yield number, frame
            self._check_all_decoded(self.index.time_ms(i) for i in wanted.values())

    @property
    def parallel(self) -> bool:
        """Whether runs can go to parallel decoders (not with a cuvid decoder: one per source)."""
        return self.gpu is None or self.gpu.cuvid is None

    def job(self, run: DecodeRun, tags: dict[int, T]) -> DecodeJob[T]:
        """A run of the loaded index, its packets read now, for :meth:`decode_jobs`; ``tags``
        maps each of the run's frame numbers to what its decoded frame is yielded with."""
        wanted = {int(self.index.pts[number]): tag for number, tag in tags.items()}
        times = {int(self.index.pts[number]): self.index.time_ms(number) for number in tags}
        return DecodeJob(list(self._run_packets(run)), wanted, times)

    @staticmethod
    def _check_all_decoded(missing_ms: Iterable[int]) -> None:
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
        workers = self._threads or os.cpu_count() or 1
        hwaccel = None if self.gpu is None else self.gpu.hwaccel
        if hwaccel is not None:  # NVDEC: a GPU has up to 7 engines; more sessions queue
            workers = min(workers, _GPU_SESSIONS)
        in_flight = min(most, workers + 1) if most else workers + 1
        codec = self._stream.codec_context  # read here: jobs may reopen the container
        codec_name, extradata = codec.name, codec.extradata
        local = threading.local()

        def decode_alone(job: DecodeJob[T]) -> tuple[list[Any], DecodeStats]:
            ctx = getattr(local, "ctx", None)
            if ctx is None:
                ctx = local.ctx = _fresh_decoder(codec_name, extradata, hwaccel)
            stats = DecodeStats(runs=1, parallel_runs=1)  # merged in this thread, in order
            return list(_decode_packets(ctx, job.packets, set(job.wanted), stats)), stats

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

    def _run_packets(self, run: DecodeRun) -> Iterator[tuple[Any, bool]]:
        """The packets a run feeds, each with whether FFmpeg may skip it if unreferenced (a
        frame nothing refers to is needed only if it is wanted)."""
        wanted_positions = {int(self.index.decode_pos[i]) for i in run.frames}
        self._position_at(run.start)
        for pos in range(run.start, run.end + 1):
            packet = self._next_packet(pos)
            if not run.keyframes_only or self.index.packet_key[pos]:
                yield packet, pos not in wanted_positions

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

    def _position_at(self, pos: int) -> None:
        """Makes the next demuxed packet the one at decode position ``pos``."""
        if self._window is not None:
            self._next_pos = pos
            return
        gap = None if self._next_pos is None else pos - self._next_pos
        if gap is None or gap < 0 or gap > _READ_ON_PACKETS:
            self._seek_near(pos)
        while self._next_pos is not None and self._next_pos < pos:
            self._next_packet(self._next_pos)
        if self._next_pos != pos:  # the seek landed after the keyframe: read from the start
            self._rewind()
            while self._next_pos is not None and self._next_pos < pos:
                self._next_packet(self._next_pos)

    def _seek_near(self, pos: int) -> None:
        # Seek by the keyframe's dts: demuxers order their seek index by dts.
        dts = int(self.index.packet_dts[pos])
        self.stats.seeks += 1
        try:
            self._container.seek(dts, stream=self._stream, backward=True, any_frame=False)
        except av.FFmpegError:
            self._rewind()
            return
        self._packets = self._demux()
        first = next(self._packets, None)
        if first is None:
            self._rewind()
            return
        landed = self.index.packet_ids.get((first.dts, first.pts))
        if landed is None and first.is_keyframe:  # Matroska: no dts right after a seek
            keys = np.flatnonzero((self.index.packet_pts == first.pts) & self.index.packet_key)
            landed = int(keys[0]) if len(keys) == 1 else None
        if landed is None or landed > pos:
            self._rewind()
            return
        self._pending = first
        self._next_pos = landed

    def _index_around(self, t: Fraction) -> tuple[list[Any] | None, FrameIndex] | None:
        """The packets and index of the window that shows ``t`` (see :func:`_read_window`).

        Where seeking fails the window is read from the first packet (work grows with t, not
        with the file); where nothing numbers the window's frames, the packets before it are
        counted from the start (demuxing only). None: index the whole stream instead. No
        packets (None) with the index: it is the whole stream's (END read from the start).
        """
        self._first_pts = _first_pts(_demux_all(self._container, self._stream))
        if self._first_pts is None:
            return None
        window = _read_window(self._stream, t, self._first_pts)
        self.reach = SEEK
        if window is None:
            self._reopen()
            window = _read_window(self._stream, t, self._first_pts, from_start=True)
            self.reach = FROM_START
        if window is None:
            return None
        index = window.index
        if window.numbered <= index.frame_at(t) and t != END:  # END: for the times only
            self.reach = SEEK_AND_COUNT
            self._reopen()
            try:
                before = _count_before(self._container, self._stream, window.packets[0])
            except (av.FFmpegError, StreamAddedMidway):
                before = None
            if before is None:
                return None
            index = dataclasses.replace(index, first_number=before)
        else:
            self._covered = window.covered
            if window.numbered == len(index) and window.covered[1] is None:  # to the end
                self.frame_count = index.first_number + len(index)
        if t == END and self.reach == FROM_START:  # every packet was read: the whole index
            self._covered = None
            return None, index
        return window.packets, index

    @property
    def size(self) -> int | None:
        """The source's size in bytes (None where a file object cannot tell)."""
        return self._source.size

    @property
    def windowed(self) -> bool:
        """Whether the loaded index is a window of the stream, not the whole of it."""
        return self._window is not None

    def covers(self, t: Fraction) -> bool:
        """Whether the loaded index tells (and numbers) the frame shown at ``t``: always for a
        whole-stream index, else only inside a window loaded by :meth:`load_window`."""
        if self._window is None:
            return True
        if self._covered is None:
            return False
        low, high = self._covered
        pts = clamp_pts(self.index.first_pts + int(t / self.index.time_base // 1))
        return low <= pts and (high is None or pts <= high)

    def covered_keyframes(self, t: Fraction) -> list[int]:
        """The keyframes (numbers in the loaded index) presented at or after ``t`` that the
        loaded index covers, in time order."""
        low, high = self._covered or (None, None)
        start = clamp_pts(self.index.first_pts + int(-(-t // self.index.time_base)))
        keys = np.flatnonzero(self.index.packet_key[self.index.decode_pos])
        return [
            int(k)
            for k in keys
            if self.index.pts[k] >= start
            and (low is None or self.index.pts[k] >= low)
            and (high is None or self.index.pts[k] <= high)
        ]

    def after_window(self) -> Fraction | None:
        """The time just after what the loaded window covers (None: it reaches the end, or the
        whole stream is loaded)."""
        if self._window is None or self._covered is None or self._covered[1] is None:
            return None
        return (self._covered[1] + 1 - self.index.first_pts) * self.index.time_base

    def load_window(self, t: Fraction) -> bool:
        """Indexes the GOP that shows ``t`` (reached by a seek, read up to the next keyframe) in
        place of the loaded index; later times in the same GOP are then :meth:`covers`-ed too.
        False where no seek reaches it or its frames cannot be numbered without counting from
        the start: :meth:`load_whole_index` then."""
        assert self._first_pts is not None, "open the source with around= first"
        self.stats.seeks += 1  # one window, however many seeks found it
        window = _read_window(self._stream, t, self._first_pts, whole_gop=True)
        if window is None and not self._read_from_start:
            # e.g. the first GOP of an MPEG-TS: read from the start up to t, once per source
            # (seeks failing again would make every window read from the start).
            self._read_from_start = True
            self._reopen()
            window = _read_window(self._stream, t, self._first_pts, True, whole_gop=True)
        if window is None:
            return False
        self._window, self.index, self._covered = window.packets, window.index, window.covered
        return self.covers(t)

    def load_whole_index(self) -> None:
        """Indexes every packet of the stream in place of a window (read again from the start)."""
        if self._window is not None:
            self._read_whole_index(reopen=True)

    def _read_whole_index(self, reopen: bool) -> None:
        if reopen:
            self._reopen()
        self._window = self._covered = None
        self._packets = self._pending = self._next_pos = None
        self.index = _read_index(self._container, self._stream)
        self.frame_count = len(self.index)

    def _reopen(self) -> None:
        self._container.close()
        hwaccel = None if self.gpu is None else self.gpu.hwaccel
        self._container = _open(self._source, hwaccel)
        self._stream = self._container.streams[self._stream_number]
        self._configure_decoder(self._stream)

    def _rewind(self) -> None:
        """Reopens the source and reads from its first packet (used when a seek misses)."""
        self.stats.seeks += 1
        self._reopen()
        self._packets = self._demux()
        self._pending = None
        self._next_pos = 0

    def _demux(self) -> Iterator[Any]:
        return (p for p in demux_guarded(self._container, self._stream) if p.size)

    def _next_packet(self, pos: int) -> Any:
        """Returns the packet at decode position ``pos``, which must be the next one."""
        if self._window is not None and pos < len(self._window):
            self._next_pos = pos + 1
            return self._window[pos]
        if self._packets is None or self._next_pos != pos:
            raise AssertionError(f"demuxer at {self._next_pos}, asked for {pos}")
        packet, self._pending = self._pending, None
        if packet is None:
            try:
                packet = next(self._packets, None)
            except av.FFmpegError as exc:
                raise MediaError(f"cannot read the file past packet {pos} ({exc})") from exc
        if packet is None:
            raise MediaError(f"the file ends early, at packet {pos}; it may be truncated")
        self._next_pos = pos + 1
        return packet


def _decode_packets(
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


# ---------------------------------------------------------------------------------------------
# GPU decoders


@dataclass(frozen=True)
class GpuDecoder:
    """An opened GPU decoder: ``decoder`` is hwdecode's choice; the ``hwaccel`` route brings its
    own ``container`` (opened with the hwaccel, frames stay in GPU memory), the ``cuvid`` route a
    separate decoder ``cuvid`` fed with the stream's packets."""

    decoder: hwdecode.HwDecoder
    container: Any = None
    hwaccel: Any = None
    cuvid: Any = None


def open_gpu(
    source: sources.Opened, stream: Any, device: str, cover_art: bool
) -> GpuDecoder | None:
    """Opens the GPU decoder ``hwdecode`` picks for ``stream`` on ``device`` (``"cuda"`` or
    ``"cuda:N"``); None where none fits or it cannot be opened (hwdecode logs why)."""
    ctx = stream.codec_context
    hwaccel_module: Any = getattr(av.codec, "hwaccel", None)  # PyAV >= 14
    choice = hwdecode.choose(
        ctx.name,
        ctx.format.name if ctx.format is not None else None,
        ctx.width,
        ctx.height,
        hwaccel_devices=hwaccel_module.hwdevices_available() if hwaccel_module else (),
        decoders=av.codecs_available,
        device=int(device.partition(":")[2] or 0),
        cover_art=cover_art,
    )
    decoder = choice.decoder
    if decoder is None:
        return None
    try:
        if decoder.method == "hwaccel":
            hwaccel = hwaccel_module.HWAccel(
                device_type=decoder.name,
                device=str(decoder.device),
                allow_software_fallback=True,
                is_hw_owned=True,  # frames stay in GPU memory; ml.py takes them by DLPack
            )
            # av.open creates the CUDA device: without a usable GPU it fails here.
            return GpuDecoder(decoder, container=_open(source, hwaccel), hwaccel=hwaccel)
        gpu = av.CodecContext.create(decoder.name, "r")
        gpu.extradata = ctx.extradata
        gpu.options = {"gpu": str(decoder.device)}
        gpu.open()
        return GpuDecoder(decoder, cuvid=gpu)
    except (av.FFmpegError, OSError, MediaError) as exc:
        hwdecode.device_failed(decoder, exc.__cause__ or exc)
        return None


def _fresh_decoder(codec_name: str, extradata: bytes | None, hwaccel: Any = None) -> Any:
    """A single-threaded decoder of a stream's codec (its name and extradata), independent of
    the stream's own; with ``hwaccel``, its own NVDEC session (frames stay in GPU memory)."""
    extra = {"hwaccel": hwaccel} if hwaccel is not None else {}  # PyAV < 14 has no hwaccel=
    ctx = av.CodecContext.create(codec_name, "r", **extra)
    ctx.extradata = extradata
    ctx.thread_count = 1
    return ctx


def _default_threads() -> int:
    value = os.environ.get("OSSFRAME_DECODE_THREADS", "")
    return int(value) if value.isdigit() else 0  # 0: FFmpeg picks one per core


def _open(source: sources.Opened, hwaccel: Any = None) -> Any:
    """A container over a fresh reader of the opened source (never a name FFmpeg's protocol
    layer would interpret: ``concat:x.mp4`` is that file)."""
    extra = {"hwaccel": hwaccel} if hwaccel is not None else {}  # PyAV < 14 has no hwaccel=
    try:
        return av.open(source.reader(), mode="r", metadata_errors="ignore", **extra)
    except av.FFmpegError as exc:
        raise MediaError(f"cannot open the source as a media file ({exc.strerror or exc})") from exc


def _picture_stream(container: Any) -> tuple[Any, bool]:
    """The video stream FFmpeg would choose, else an embedded cover picture; ``(stream, is_cover)``.

    ``av_find_best_stream`` (what ``ffmpeg -i file out.png`` also takes) prefers default streams,
    then the highest bitrate; a cover picture (attached picture) is chosen only when there is no
    real video stream. Should FFmpeg rank a cover first, the largest real video is taken.
    """
    videos = list(container.streams.video)
    real = [s for s in videos if not s.disposition & av.stream.Disposition.attached_pic]
    if real:
        best = container.streams.best("video")
        if best is None or best.index not in {s.index for s in real}:
            best = max(
                real, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0)
            )
        return best, False
    if videos:
        return videos[0], True
    raise MediaError("no video stream and no cover picture in the source")


def _media_info(container: Any, stream: Any, cover: bool) -> MediaInfo:
    ctx = stream.codec_context
    return MediaInfo(
        codec=ctx.name,
        width=ctx.width,
        height=ctx.height,
        fps=float(stream.average_rate or stream.guessed_rate or 0),
        cover_art=cover,
        stream=stream.index,
        streams=tuple(_stream_info(s) for s in container.streams),
    )


def _require_decoder(stream: Any, source: sources.Opened) -> None:
    """MediaError naming the codec tag when FFmpeg has no decoder for the picture stream."""
    if stream.codec_context is not None:
        return
    raise MediaError(
        f"the video stream's codec ({_codec_tag(source, stream.index)}) is not one FFmpeg can "
        "decode; nothing can be captured from it"
    )


def _codec_tag(source: sources.Opened, index: int) -> str:
    """The stream's codec tag as FFmpeg reports it (PyAV does not expose it): the source is
    opened again with FFmpeg's warnings captured. Only on this error path."""
    import av.logging

    previous, skip_repeated = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.WARNING)
    av.logging.set_skip_repeated(False)  # the same file twice logs the same line twice
    try:
        with av.logging.Capture() as logs:
            _open(source).close()
    except MediaError:
        logs = []
    finally:
        av.logging.set_skip_repeated(skip_repeated)
        av.logging.set_level(previous)
    pattern = re.compile(rf"stream {index} \(Video: \S+ \((.+?) / (0x[0-9A-Fa-f]+)\)")
    for _level, _name, text in logs:
        found = pattern.search(text)
        if found:
            return f"tag {found.group(1)!r}, {found.group(2)}"
    return "unknown tag"


class StreamAddedMidway(MediaError):
    """The demuxer met a stream that appeared after the file was opened (an MPEG-TS whose
    streams start mid-file); PyAV cannot read on past it."""


def demux_guarded(container: Any, stream: Any) -> Iterator[Any]:
    """``container.demux(stream)``, with PyAV's ``IndexError`` on a stream that appears
    mid-file turned into :class:`StreamAddedMidway` (a :class:`MediaError`)."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except IndexError as exc:
            raise StreamAddedMidway(
                "a new stream starts in the middle of the file and it cannot be read past that "
                "point"
            ) from exc
        yield packet


def _stream_info(stream: Any) -> StreamInfo:
    ctx = stream.codec_context
    video = stream.type == "video"
    disposition = stream.disposition
    return StreamInfo(
        index=stream.index,
        type=stream.type,
        codec=ctx.name if ctx is not None else None,
        width=ctx.width if video else None,
        height=ctx.height if video else None,
        cover_art=bool(disposition & av.stream.Disposition.attached_pic),
        default=bool(disposition & av.stream.Disposition.default),
    )


# ---------------------------------------------------------------------------------------------
# Frame index building (demuxing only; a separate concern from decoding, kept together here)


def _read_index(container: Any, stream: Any) -> FrameIndex:
    """Indexes every packet of the stream (demuxing only)."""
    return _index_from(demux_guarded(container, stream), _time_base(stream))


@dataclass(frozen=True)
class _Window:
    """A window of the stream: its packets (decode order, from a keyframe) and their index.

    ``numbered``: index frames 0 .. numbered - 1 carry exact stream numbers
    (``index.first_number`` set). ``covered``: the pts range ``(low, high)`` for which the
    index tells, and numbers, the frame shown (``high`` None: up to the end of the stream).
    """

    packets: list[Any]
    index: FrameIndex
    numbered: int
    covered: tuple[int, int | None]


def _read_window(
    stream: Any, t: Fraction, first_pts: int, from_start: bool = False, whole_gop: bool = False
) -> _Window | None:
    """The packets from a keyframe at or before ``t`` up to the last one that can show ``t``
    (``whole_gop``: up to the next keyframe, so that later times of the GOP are indexed too),
    and their index.

    The demuxer seeks before t, stepping back further while the first keyframe it reaches is
    presented after t (see :func:`_seek_window`); ``from_start`` reads from the first packet
    instead (the container must be freshly opened). Frames are numbered by the demuxer's
    sample table (MP4/MOV), by the start of the stream (``from_start``) or by a constant frame
    rate that the window's timestamps follow; otherwise the caller counts them. None where the
    timestamps are missing or out of order, or no keyframe before t was reached.
    """
    container = stream.container
    time_base = _time_base(stream)
    # Matroska stores no dts (FFmpeg guesses them): read up to the next keyframe there too.
    trust_dts = "matroska" not in container.format.name and not whole_gop
    target = clamp_pts(first_pts + int(t / time_base // 1))
    try:
        if from_start:
            read = _window_packets(_demux_all(container, stream), target, trust_dts, False)
        else:
            read = _seek_window(stream, target, first_pts, trust_dts)
    except (av.FFmpegError, StreamAddedMidway):
        return None
    if read is None or not read[0] or read[0][0].pts > target:
        return None
    packets, bound = read
    index = _index_from(packets, time_base, first_pts)
    numbered = len(index)
    if not from_start:
        before = _frames_before_window(stream, packets[0])
        if before is None:
            before, numbered = _number_by_rate(stream, index) or (0, 0)
        index = dataclasses.replace(index, first_number=before)
    high = bound
    if numbered < len(index):  # past the numbered frames nothing is told
        high = (
            int(index.pts[numbered]) - 1
            if bound is None
            else min(bound, int(index.pts[numbered]) - 1)
        )
    return _Window(packets, index, numbered, (int(packets[0].pts), high))


def _seek_window(
    stream: Any, target: int, first_pts: int, trust_dts: bool
) -> tuple[list[Any], int | None] | None:
    """The window's packets after a seek whose first keyframe is presented at or before
    ``target``, with their bound (see :func:`_window_packets`); None if none is reached within
    :data:`_SEEK_TRIES` seeks.

    Where the demuxer has an index of keyframes, the first seek is to target and the first
    retry seeks just before the keyframe reached. Without one (timestamp search, as in
    MPEG-TS, lands at any packet and the next keyframe may be a GOP later) the first seek is
    1 s before target and each retry steps back 1, 2, 4, ... seconds further.
    """
    container = stream.container
    one_second = max(int(1 / _time_base(stream)), 1)
    # Without an index of keyframes the seek lands where the timestamps say, not on a keyframe.
    back = 0 if len(stream.index_entries) else one_second
    seek_to = max(target - back, first_pts)  # a keyframe at t is rare: start a step before it
    for _ in range(_SEEK_TRIES):
        container.seek(seek_to, stream=stream, backward=True, any_frame=False)
        demuxed = _demux_all(container, stream)
        first = next(demuxed, None)  # where the seek landed, keyframe or not
        if first is None:  # past the last packet
            read: tuple[list[Any], int | None] | None = ([], None)
        else:
            read = _window_packets(itertools.chain([first], demuxed), target, trust_dts, True)
        if read is None:
            return None
        packets = read[0]
        if packets and packets[0].pts <= target:
            return read
        if seek_to <= first_pts:
            return None
        landed = seek_to if first is None or first.dts is None else first.dts
        if packets and packets[0].dts is not None:  # a keyframe after t: before it
            landed = min(landed, packets[0].dts)
        seek_to = max(min(landed - 1, seek_to) - back, first_pts)
        back = max(2 * back, one_second)
    return None


def _window_packets(
    packets: Iterable[Any], target: int, trust_dts: bool, after_seek: bool
) -> tuple[list[Any], int | None] | None:
    """Packets in decode order until no later one can be presented at or before ``target``, and
    their bound: every frame presented at or before that pts is among them (None: the stream
    ended, so every later frame is).

    After a seek the packets before the first keyframe are dropped (none are returned once a
    packet decoded after target comes before any keyframe). With trustworthy dts
    (every packet has one, increasing, not after its pts) reading stops at the first packet
    whose dts passes target: every later packet is presented after it. Otherwise it stops after
    a keyframe presented after target and the first packet presented after that keyframe (the
    leading pictures of an open GOP, presented before their keyframe, come before it). None if
    a packet has no pts, the dts are out of order, or the packets pass
    :data:`_WINDOW_MAX_BYTES`.
    """
    kept: list[Any] = []
    later_key = None  # pts of a keyframe presented after target, once one is read
    held = 0  # bytes of the kept packets
    for packet in packets:
        if after_seek and not kept and not packet.is_keyframe:
            if packet.dts is not None and packet.dts > target:  # no keyframe at or before t
                return kept, None  # follows: the caller seeks further back
            continue
        if packet.pts is None:
            return None
        if trust_dts:
            dts = packet.dts
            if dts is None or dts > packet.pts or (kept and dts <= kept[-1].dts):
                return None
        kept.append(packet)
        held += packet.size
        if held > _WINDOW_MAX_BYTES:
            return None
        if trust_dts and packet.dts > target:
            return kept, int(packet.dts)
        if later_key is not None and packet.pts > later_key:
            return kept, later_key
        if later_key is None and packet.is_keyframe and packet.pts > target and len(kept) > 1:
            later_key = int(packet.pts)
    return kept, None


def _frames_before_window(stream: Any, keyframe: Any) -> int | None:
    """Frames before ``keyframe`` from the demuxer's sample table, where it lists every sample
    (MP4/MOV); None elsewhere."""
    entries = stream.index_entries
    mov = "mp4" in stream.container.format.name.split(",")
    if not mov or not stream.frames or len(entries) != stream.frames:
        return None
    return _frames_before(entries, keyframe)


def _number_by_rate(stream: Any, index: FrameIndex) -> tuple[int, int] | None:
    """Numbers the index's frames by their time times the stream's frame rate: the number of
    its frame 0 and how many of its first frames follow on, one per step of that rate's grid
    (within a tick of rounding). None where fewer than two do (variable rate, or too few frames
    to tell: one frame fits any rate)."""
    rate = stream.average_rate or stream.guessed_rate
    if not rate or len(index) < 2:
        return None
    step = 1 / (Fraction(rate.numerator, rate.denominator) * index.time_base)  # ticks per frame
    first = None
    for i, pts in enumerate(index.pts):
        offset = int(pts) - index.first_pts
        number = round(offset / step)
        if abs(offset - number * step) > 1 or (first is not None and number != first + i):
            break
        first = number if first is None else first
    else:
        i = len(index)
    if first is None or first < 0 or i < 2:
        return None
    return first, i


def _count_before(container: Any, stream: Any, keyframe: Any) -> int | None:
    """Frames before ``keyframe`` in decode order, counted from the first packet (demuxing
    only); None if the keyframe is not found."""
    count = 0
    for packet in _demux_all(container, stream):
        if packet.pts == keyframe.pts and packet.is_keyframe:  # Matroska dts are guessed
            return count
        if not packet.is_discard:
            count += 1
    return None


def _demux_all(container: Any, stream: Any) -> Iterator[Any]:
    """The stream's packets that carry data, from the demuxer's position on."""
    return (packet for packet in demux_guarded(container, stream) if packet.size)


def _frames_before(entries: Any, keyframe: Any) -> int | None:
    """How many frames precede ``keyframe`` in decode order, from the demuxer's sample index
    (sorted by dts); None if the packet is not found there."""
    lo, hi = 0, len(entries)
    while lo < hi:  # first entry with timestamp >= the keyframe's dts
        mid = (lo + hi) // 2
        if entries[mid].timestamp < keyframe.dts:
            lo = mid + 1
        else:
            hi = mid
    if lo == len(entries) or entries[lo].pos != keyframe.pos:
        return None
    return sum(1 for j in range(lo) if not entries[j].is_discard)


def _first_pts(packets: Iterator[Any]) -> int | None:
    """The smallest pts of the stream's frames, read from its first packets (``packets`` from
    the start).

    Reading stops at a packet whose dts is not before the smallest pts so far (every later
    packet is presented at or after it) or, where the dts are missing, after
    :data:`_FIRST_PACKETS` packets.
    """
    first = None
    for read, packet in enumerate(packets, 1):
        if packet.is_discard:
            continue
        if packet.pts is None:
            return None
        first = packet.pts if first is None else min(first, packet.pts)
        if (packet.dts is not None and packet.dts >= first) or read >= _FIRST_PACKETS:
            break
    return first


def _time_base(stream: Any) -> Fraction:
    return Fraction(stream.time_base.numerator, stream.time_base.denominator)


def _index_from(
    packets: Iterable[Any], time_base: Fraction, first_pts: int | None = None
) -> FrameIndex:
    """Builds the index of a run of packets in decode order (a whole stream or a window)."""
    pts_list: list[int] = []
    dts_list: list[int] = []
    key_list: list[bool] = []
    ids: dict[tuple[int | None, int | None], int] = {}
    frame_pts: list[int] = []
    frame_pos: list[int] = []
    end_pts = None
    try:
        for packet in packets:
            if not packet.size:
                continue
            pos = len(pts_list)
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                raise MediaError("the video stream has packets without timestamps; not supported")
            pts_list.append(pts)
            dts_list.append(packet.dts if packet.dts is not None else pts)
            key_list.append(bool(packet.is_keyframe))
            ids.setdefault((packet.dts, packet.pts), pos)
            if not packet.is_discard:
                frame_pts.append(pts)
                frame_pos.append(pos)
                end = pts + (packet.duration or 0)
                end_pts = end if end_pts is None else max(end_pts, end)
    except (av.FFmpegError, StreamAddedMidway) as exc:
        if not frame_pts:
            raise MediaError(f"cannot read the video stream ({exc})") from exc
        # A damaged tail (or one PyAV cannot demux): index what could be read; decoding
        # reports the damage if it reaches it.
    if not frame_pts:
        raise MediaError("the video stream has no frames")
    order = np.argsort(np.asarray(frame_pts, dtype=np.int64), kind="stable")
    pts_sorted = np.asarray(frame_pts, dtype=np.int64)[order]
    if len(pts_sorted) > 1 and np.any(np.diff(pts_sorted) == 0):
        raise MediaError("the video stream has frames with duplicate timestamps; not supported")
    if end_pts is None or end_pts <= pts_sorted[-1]:
        step = int(np.median(np.diff(pts_sorted))) if len(pts_sorted) > 1 else 1
        end_pts = int(pts_sorted[-1]) + step
    return FrameIndex(
        pts=pts_sorted,
        decode_pos=np.asarray(frame_pos, dtype=np.int64)[order],
        packet_key=np.asarray(key_list, dtype=bool),
        packet_pts=np.asarray(pts_list, dtype=np.int64),
        packet_dts=np.asarray(dts_list, dtype=np.int64),
        packet_ids=ids,
        time_base=time_base,
        end_pts=int(end_pts),
        first_pts=int(pts_sorted[0]) if first_pts is None else first_pts,
    )


# ---------------------------------------------------------------------------------------------
# Decoded frames


def luma_plane(frame: Any) -> np.ndarray:
    """A zero-copy (H, W) uint8 view of the frame's luma, converting only non-8-bit-YUV formats."""
    if frame.format.name not in _EIGHT_BIT_YUV:
        frame = _converted(frame, "gray")
    return _plane_view(frame.planes[0])


def yuv420_planes(frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Zero-copy Y, U, V views of an 8-bit planar 4:2:0 frame; None for any other format."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return None
    y, u, v = (_plane_view(plane) for plane in frame.planes)
    return y, u, v


def colour(frame: Any) -> tuple[str, bool]:
    """(matrix, full_range) as FFmpeg's conversion reads the frame's tags: BT.709 when tagged
    so, else BT.601; full range for yuvj formats or a JPEG range tag."""
    matrix = "bt709" if int(frame.colorspace or 0) == 1 else "bt601"  # AVCOL_SPC_BT709
    full = frame.format.name.startswith("yuvj") or int(frame.color_range or 0) == 2  # JPEG
    return matrix, full


def _plane_view(plane: Any) -> np.ndarray:
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


_EIGHT_BIT_YUV = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "nv12",
        "nv21",
        "gray",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
    }
)


def to_rgb(frame: Any, bgr: bool = False) -> np.ndarray:
    """The frame as an (H, W, 3) uint8 array (FFmpeg's swscale conversion)."""
    image: np.ndarray = _converted(frame, "bgr24" if bgr else "rgb24").to_ndarray()
    return image


def _converted(frame: Any, pixel_format: str) -> Any:
    """``frame.reformat``, with swscale's refusal (e.g. colour tags a corrupt stream garbled)
    reported as a MediaError."""
    try:
        return frame.reformat(format=pixel_format)
    except av.FFmpegError as exc:
        raise MediaError(
            f"cannot convert a decoded {frame.width}x{frame.height} {frame.format.name} frame to "
            f"{pixel_format} ({exc.strerror or exc}); the file may be corrupt"
        ) from exc


def rotation(frame: Any) -> int:
    """Counter-clockwise display rotation of the frame in degrees: 0, 90, 180 or 270."""
    return int(round((frame.rotation or 0) / 90.0)) % 4 * 90
