"""Plain data about a stream, shared by the planner and the decoder; imports no ``av``.

* :class:`FrameIndex`: every frame of the video stream, from demuxed packets (no decoding).
* :class:`DecodeRun`: one stretch of packets to decode and the frames to keep from it.
* :class:`StreamInfo` / :class:`MediaInfo`: what the demuxer says about the streams.
* :class:`DecodeStats`: what a source's decoders did (frames decoded, packets fed, seeks) and
  what reading it cost (bytes, requests).
* :class:`Output`: one output of a capture, the decoded frame and what is reported about it.

The index is built by ``windows.py`` for ``timeline.py``; the rules on times
are in ``docs/ARCHITECTURE.md`` ("Time rules") and ``docs/BEHAVIOUR.md`` ("Which frame").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

# Timestamps are int64 in FFmpeg and in the index. A time past every frame (t up to 2**53 - 1 ms
# in a time base of 1/10**9 s is about 2**73 ticks) is clamped to this: it still lies after the
# last frame of any real stream, and it neither overflows NumPy nor av's seek.
PTS_LIMIT = 2**62

# A time (seconds) past every frame: a source opened around END indexes the stream's last GOP
# (its duration and last frame come from the end of the file).
END = Fraction(2**62)


def clamp_pts(pts: int) -> int:
    """``pts`` limited to +-PTS_LIMIT: the same frame is shown, and no int64 overflows."""
    return max(-PTS_LIMIT, min(pts, PTS_LIMIT))


@dataclass(frozen=True)
class FrameIndex:
    """Every frame of the video stream, from demuxed packets (no decoding).

    Arrays are in presentation order (sorted by ``pts``); ``decode_pos[i]`` is frame i's packet
    position in decode (file) order and ``packet_key`` tells, per decode position, whether that
    packet is a keyframe.
    """

    pts: np.ndarray  # int64, presentation order
    decode_pos: np.ndarray  # int64, presentation order -> decode position
    packet_key: np.ndarray  # bool, decode order
    packet_pts: np.ndarray  # int64, decode order
    packet_dts: np.ndarray  # int64, decode order (pts where the container gives no dts)
    packet_ids: dict[tuple[int | None, int | None], int]  # (dts, pts) -> decode position
    time_base: Fraction
    end_pts: int  # presentation end of the last frame
    first_pts: int  # the stream's first frame (a window of the stream may start later)
    # The stream's frame number of this index's frame 0; None where it is not known without
    # reading the stream from its start (a window outside MP4/MOV).
    first_number: int | None = 0
    # Per decode position: a packet flagged keyframe that is a recovery point, not an IDR
    # picture (H.264 periodic intra refresh). Decoding may start there only a refresh period
    # early (plan.decode_runs starts one keyframe before it); it is not reported as a keyframe.
    packet_recovery: np.ndarray | None = None

    def number(self, i: int) -> int | None:
        """Frame i's number in the whole stream, in presentation order from 0 (None: not
        known, see ``first_number``)."""
        return None if self.first_number is None else self.first_number + i

    def __len__(self) -> int:
        return len(self.pts)

    def time_ms(self, i: int) -> int:
        """Frame i's time from the first frame, rounded up to whole milliseconds."""
        exact = (int(self.pts[i]) - self.first_pts) * self.time_base * 1000
        return -((-exact.numerator) // exact.denominator)

    def time_exact(self, i: int) -> Fraction:
        """Frame i's time from the first frame, in seconds."""
        return (int(self.pts[i]) - self.first_pts) * self.time_base

    @property
    def duration(self) -> Fraction:
        """Seconds from the first frame's start to the last frame's end."""
        return (self.end_pts - self.first_pts) * self.time_base

    def frame_at(self, t: Fraction) -> int:
        """The frame shown at ``t`` seconds: greatest time <= t, the last frame past the end."""
        limit = clamp_pts(self.first_pts + int(t / self.time_base // 1))
        i = int(np.searchsorted(self.pts, limit, side="right")) - 1
        return max(i, 0)

    def is_keyframe(self, i: int) -> bool:
        """Whether frame i's packet is a keyframe (not a recovery point)."""
        return bool(self.keyframe_packets[self.decode_pos[i]])

    @property
    def keyframe_packets(self) -> np.ndarray:
        """Per decode position: a keyframe that is not a recovery point."""
        if self.packet_recovery is None:
            return self.packet_key
        keys: np.ndarray = self.packet_key & ~self.packet_recovery
        return keys

    def keyframe_numbers(self) -> np.ndarray:
        """Frame numbers of the keyframes (recovery points excluded), in time order."""
        numbers: np.ndarray = np.flatnonzero(self.keyframe_packets[self.decode_pos])
        return numbers


def single_picture_index() -> FrameIndex:
    """The index of a stream holding one picture (a cover image): one keyframe at time 0."""
    return FrameIndex(
        pts=np.zeros(1, np.int64),
        decode_pos=np.zeros(1, np.int64),
        packet_key=np.ones(1, bool),
        packet_pts=np.zeros(1, np.int64),
        packet_dts=np.zeros(1, np.int64),
        packet_ids={},
        time_base=Fraction(1, 1000),
        end_pts=1,
        first_pts=0,
    )


@dataclass(frozen=True)
class DecodeRun:
    """Decode packets ``start..end`` (decode positions) and keep ``frames`` (frame numbers).

    ``start`` is a keyframe. With ``keyframes_only`` only keyframe packets are fed.
    """

    start: int
    end: int
    frames: tuple[int, ...]
    keyframes_only: bool = False


@dataclass(frozen=True)
class StreamInfo:
    """One stream of the source as the demuxer describes it (``probe`` lists them)."""

    index: int  # the stream's number in the container
    type: str  # "video", "audio", "subtitle", "data", ...
    codec: str | None
    width: int | None = None
    height: int | None = None
    cover_art: bool = False  # an attached picture (cover image), not a video
    default: bool = False  # the container marks it as a default stream

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``probe``."""
        return {
            "index": self.index,
            "type": self.type,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "cover_art": self.cover_art,
            "default": self.default,
        }


@dataclass(frozen=True)
class MediaInfo:
    """What the demuxer says about a source, without decoding."""

    codec: str
    width: int
    height: int
    fps: float
    cover_art: bool  # the picture is an embedded cover image, not a video
    stream: int = 0  # container index of the stream captured from
    streams: tuple[StreamInfo, ...] = ()


@dataclass
class DecodeStats:
    """What the decoders of one source did; read it from ``Capture.stats`` (or
    ``VideoSource.stats``) after the outputs were consumed.

    ``frames_decoded`` counts every frame a decoder returned, wanted or not (frames FFmpeg was
    told to skip are not returned, so not counted); ``packets_fed`` the packets sent to
    decoders; ``seeks`` the demuxer seeks (a rewind to the start counts as one, and so does
    each GOP a sampled capture reads by seeking, however many seeks found it); ``runs`` the
    decode runs executed; ``parallel_runs`` those that went to parallel decoders.

    ``bytes_read``: bytes read from the source by the demuxers (a local file, bytes or a file
    object: what was read from it; a URL: what was fetched, including read-ahead that was not
    used); ``requests``: requests sent to a remote source (a URL's ranged GETs, and the
    metadata request of s3:// and gs://; 0 for local sources).
    """

    frames_decoded: int = 0
    packets_fed: int = 0
    seeks: int = 0
    runs: int = 0
    parallel_runs: int = 0
    bytes_read: int = 0
    requests: int = 0

    def add(self, other: DecodeStats) -> None:
        """Adds another decoder's counts to these."""
        self.frames_decoded += other.frames_decoded
        self.packets_fed += other.packets_fed
        self.seeks += other.seeks
        self.runs += other.runs
        self.parallel_runs += other.parallel_runs
        self.bytes_read += other.bytes_read
        self.requests += other.requests


@dataclass(frozen=True)
class Output:
    """One output of a capture: the decoded frame and what every front end reports about it."""

    frame: Any = None  # av.VideoFrame
    # The frame's number in the whole stream, presentation order, from 0; None where it is not
    # known without reading the stream from its start (docs/BEHAVIOUR.md, "Which frame").
    index: int | None = 0
    time_ms: int = 0  # the frame's time from the first frame, rounded up to whole ms
    keyframe: bool = False
    score: float | None = None  # dhash mode: percent of hash bits changed from the previous

    def scored(self, score: float) -> Output:
        """This output with ``score``."""
        return dataclasses.replace(self, score=score)
