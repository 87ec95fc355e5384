"""Opening a source for capture: where an opened source (:mod:`~ossframe_native.sources`: a
path, bytes, a file object or a URL, read as a stream) becomes an FFmpeg container, and
:class:`VideoSource`, which ties an open source's parts together.

PyAV (``av``) is imported only by the decode layer, one module per concern:

* ``decode.py`` (this module): opening a source's container, the GPU
  decoder ``hwdecode`` picks (:func:`open_gpu`), and :class:`VideoSource`.
* ``streams.py``: which picture stream is captured from, what the demuxer says about every
  stream, reading its packets.
* ``windows.py``: reading a frame index from packets, the whole stream or the GOP around a time.
* ``timeline.py``: the index an open source holds, the windows a capture loads, the demuxer
  positioned for each decode run (the one module the pipeline asks about windows and seeks).
* ``runs.py``: decode runs on the stream's decoder or on parallel decoders.
* ``pictures.py``: decoded pictures as arrays (planes, colour tags, rotation, RGB).

Every PyAV error becomes a :class:`MediaError`; what the decoders did is counted in
:class:`~ossframe_native.index.DecodeStats` (``VideoSource.stats``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

import av

from . import hwdecode, sources, streams
from .errors import MediaError
from .index import DecodeRun, DecodeStats, FrameIndex, MediaInfo
from .pictures import rotation
from .plan import decode_runs
from .runs import DecodeJob, Decoder
from .sources import Source
from .streams import OpenStream, demux_guarded
from .timeline import Timeline

__all__ = ["DecodeRun", "FrameIndex", "GpuDecoder", "MediaInfo", "Source", "VideoSource"]

T = TypeVar("T")


class VideoSource:
    """One open source: its picture stream, frame index (:class:`Timeline`) and decoders
    (:class:`Decoder`).

    Use as a context manager. ``source`` is a path, a URL, ``bytes`` or a seekable binary file
    object (see :mod:`~ossframe_native.sources`; what reading it cost is counted in ``stats``).
    ``threads``: decoder threads (0: one per core, FFmpeg's choice; None: the same unless
    ``OSSFRAME_DECODE_THREADS`` says otherwise). ``around``: a time (seconds) whose GOP alone is
    indexed, or ``index.END`` for the last GOP (see :class:`Timeline`). ``hw="cuda"`` /
    ``"cuda:N"`` decodes on that GPU where :func:`open_gpu` can.
    """

    def __init__(
        self,
        source: Source,
        threads: int | None = None,
        around: Fraction | None = None,
        hw: str | None = None,
    ) -> None:
        self.stats = DecodeStats()
        self.gpu: GpuDecoder | None = None
        self._source = sources.open_source(source, self.stats)
        try:
            container = _open(self._source)
        except BaseException:
            self._source.close()
            raise
        try:
            stream, cover = streams.picture_stream(container)
            streams.require_decoder(stream, lambda: _open(self._source))
        except BaseException:
            container.close()
            self._source.close()
            raise
        threads = threads if threads is not None else _default_threads()
        self._opened = OpenStream(self._open_again, container, stream, threads)
        try:
            if hw is not None:
                self._start_gpu(hw, cover)
            self.info = streams.media_info(self._opened.container, self._opened.stream, cover)
            self.timeline = Timeline(self._opened, self.stats, around, cover)
        except BaseException:
            self.close()
            raise
        gpu = self.gpu
        self._decoder = Decoder(
            self._opened,
            self.timeline,
            self.stats,
            _fresh_decoder,
            cuvid=None if gpu is None else gpu.cuvid,
            hwaccel=None if gpu is None else gpu.hwaccel,
        )
        self._rotation: int | None = None

    @property
    def hw(self) -> hwdecode.HwDecoder | None:
        """The GPU decoder in use, if any."""
        return None if self.gpu is None else self.gpu.decoder

    @property
    def index(self) -> FrameIndex:
        """The loaded frame index (see :class:`Timeline`)."""
        return self.timeline.index

    @property
    def reach(self) -> str | None:
        """With ``around``: how the window was found (see :class:`Timeline`)."""
        return self.timeline.reach

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the container, its decoder and the source."""
        self._opened.close()
        self._source.close()

    def _open_again(self) -> Any:
        return _open(self._source, None if self.gpu is None else self.gpu.hwaccel)

    def _start_gpu(self, device: str, cover: bool) -> None:
        gpu = open_gpu(self._source, self._opened.stream, device, cover)
        if gpu is None:
            return
        if gpu.container is not None:  # the hwaccel route decodes from its own container
            self._opened.replace(gpu.container)
        self.gpu = gpu

    def cover_frame(self) -> Any:
        """Decodes the embedded cover picture (the stream's one packet)."""
        container, stream = self._opened.container, self._opened.stream
        ctx = stream.codec_context
        try:
            container.seek(0)
            for packet in demux_guarded(container, stream):
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
                keys = self.index.keyframe_numbers()
                if len(keys):  # the first keyframe alone
                    pos = int(self.index.decode_pos[keys[0]])
                    run = DecodeRun(pos, pos, (int(keys[0]),), keyframes_only=True)
                elif self.index.packet_recovery is not None:  # recovery points only
                    run = decode_runs(self.index, [len(self.index) - 1])[0]  # once recovered
                else:  # no keyframe flags: from the first packet up to frame 0
                    run = DecodeRun(0, int(self.index.decode_pos[0]), (0,))
                self._rotation = next((rotation(f) for _, f in self.decode([run])), 0)
        return self._rotation

    def decode(self, runs: Iterable[DecodeRun]) -> Iterator[tuple[int, Any]]:
        """Yields ``(frame_number, av.VideoFrame)`` for every wanted frame of every run, in order
        (see :meth:`Decoder.decode`)."""
        return self._decoder.decode(runs)

    @property
    def parallel(self) -> bool:
        """Whether runs can go to parallel decoders (not with a cuvid decoder: one per source)."""
        return self._decoder.parallel

    def job(self, run: DecodeRun, tags: dict[int, T]) -> DecodeJob[T]:
        """A run of the loaded index, ready for :meth:`decode_jobs` (see :meth:`Decoder.job`)."""
        return self._decoder.job(run, tags)

    def decode_jobs(self, jobs: Iterable[DecodeJob[T]], most: int = 0) -> Iterator[tuple[T, Any]]:
        """Decodes jobs on parallel decoders, in order (see :meth:`Decoder.decode_jobs`)."""
        return self._decoder.decode_jobs(jobs, most)

    @property
    def size(self) -> int | None:
        """The source's size in bytes (None where a file object cannot tell)."""
        return self._source.size


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
