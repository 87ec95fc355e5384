"""The picture stream of an open container: which stream is captured from, what the demuxer
says about every stream, and reading its packets.

* :func:`picture_stream`: the stream FFmpeg itself would choose (``av_find_best_stream``),
  never a cover picture when a real video exists.
* :class:`OpenStream`: the container and its picture stream as the index reader
  (:mod:`~ossframe_native.timeline`) and the decoders (:mod:`~ossframe_native.runs`) share
  them; reopened where reading must start over.
* :func:`demux_guarded`: the stream's packets, PyAV's error on a stream that appears mid-file
  turned into a :class:`MediaError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import av

from .errors import MediaError
from .index import MediaInfo, StreamInfo


class OpenStream:
    """An open container and its picture stream (found again by its number when reopened).

    ``opener`` opens the source again (the same way it was first opened); ``threads`` is the
    stream decoder's thread count (0: one per core, FFmpeg's choice).
    """

    def __init__(
        self, opener: Callable[[], Any], container: Any, stream: Any, threads: int
    ) -> None:
        self._opener = opener
        self.threads = threads
        self.number = stream.index
        self.container = container
        self.stream = stream
        self._configure()

    def _configure(self) -> None:
        ctx = self.stream.codec_context
        ctx.thread_type = "AUTO"
        ctx.thread_count = self.threads

    def replace(self, container: Any) -> None:
        """Reads from ``container`` (the same source, opened another way) from now on."""
        self.container.close()
        self.container = container
        self.stream = container.streams[self.number]
        self._configure()

    def reopen(self) -> None:
        """Opens the source again; the demuxer starts at its first packet."""
        self.replace(self._opener())

    def close(self) -> None:
        """Releases the container and its decoder."""
        self.container.close()

    def packets(self) -> Iterator[Any]:
        """The stream's packets that carry data, from the demuxer's position on."""
        return (p for p in demux_guarded(self.container, self.stream) if p.size)

    @property
    def time_base(self) -> Fraction:
        """The stream's time base."""
        return time_base(self.stream)


def time_base(stream: Any) -> Fraction:
    """A stream's time base as an exact fraction."""
    return Fraction(stream.time_base.numerator, stream.time_base.denominator)


def picture_stream(container: Any) -> tuple[Any, bool]:
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


def media_info(container: Any, stream: Any, cover: bool) -> MediaInfo:
    ctx = stream.codec_context
    return MediaInfo(
        codec=ctx.name,
        width=ctx.width,
        height=ctx.height,
        fps=float(stream.average_rate or stream.guessed_rate or 0),
        cover_art=cover,
        stream=stream.index,
        streams=tuple(stream_info(s) for s in container.streams),
    )


def require_decoder(stream: Any, reopen: Callable[[], Any]) -> None:
    """MediaError naming the codec tag when FFmpeg has no decoder for the picture stream
    (``reopen``: opens the source again, to read FFmpeg's description of the stream)."""
    if stream.codec_context is not None:
        return
    raise MediaError(
        f"the video stream's codec ({_codec_tag(reopen, stream.index)}) is not one FFmpeg can "
        "decode; nothing can be captured from it"
    )


def _codec_tag(reopen: Callable[[], Any], index: int) -> str:
    """The stream's codec tag as FFmpeg reports it (PyAV does not expose it): the source is
    opened again with FFmpeg's warnings captured. Only on this error path."""
    import av.logging

    previous, skip_repeated = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.WARNING)
    av.logging.set_skip_repeated(False)  # the same file twice logs the same line twice
    try:
        with av.logging.Capture() as logs:
            reopen().close()
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


def stream_info(stream: Any) -> StreamInfo:
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


def recovery_point_test(stream: Any) -> Callable[[bytes], bool] | None:
    """For an H.264 stream: a test telling, from a keyframe packet's bytes, whether it is a
    recovery point rather than an IDR picture (no IDR slice in it: a keyframe of periodic
    intra refresh, which decodes exactly only a refresh period after an earlier start);
    None for other codecs, whose keyframes are taken as they are flagged."""
    ctx = stream.codec_context
    if ctx is None or ctx.name != "h264":
        return None
    extradata = ctx.extradata or b""
    if extradata[:1] == b"\x01" and len(extradata) > 4:  # avcC: length-prefixed NAL units
        size = (extradata[4] & 3) + 1
        return lambda data: 5 not in _avcc_nal_types(data, size)
    return lambda data: 5 not in _annexb_nal_types(data)


def _avcc_nal_types(data: bytes, size: int) -> set[int]:
    types, at = set(), 0
    while at + size < len(data):
        length = int.from_bytes(data[at : at + size], "big")
        types.add(data[at + size] & 0x1F)
        at += size + length
    return types


def _annexb_nal_types(data: bytes) -> set[int]:
    types, at = set(), data.find(b"\x00\x00\x01")
    while at >= 0 and at + 3 < len(data):
        types.add(data[at + 3] & 0x1F)
        at = data.find(b"\x00\x00\x01", at + 3)
    return types
