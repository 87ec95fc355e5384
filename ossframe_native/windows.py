"""Reading a stream's frame index from its packets (demuxing only, no decoding): the whole
stream, or a window of it (the GOP around a time) reached by a seek in any container FFmpeg can
seek in.

Only :mod:`~ossframe_native.timeline` calls these; it holds what they read.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from .errors import MediaError
from .index import FrameIndex, clamp_pts
from .streams import StreamAddedMidway, demux_guarded, recovery_point_test, time_base

# Seeks a snapshot window tries before reading from the start (see _seek_window).
_SEEK_TRIES = 10
# Packets read for the first pts where the container gives no dts (more than any reordering).
_FIRST_PACKETS = 64
# A window's packets are held in memory: past this many bytes (a GOP of minutes, or a stream
# with no keyframe after its first) no window is made and the whole stream is indexed instead,
# whose decoding reads packets as it goes.
_WINDOW_MAX_BYTES = 256 * 1024 * 1024


def read_index(container: Any, stream: Any) -> FrameIndex:
    """Indexes every packet of the stream (demuxing only)."""
    packets = demux_guarded(container, stream)
    if container.format.flags & av.format.Flags.ts_discont.value:  # MPEG-TS and the like
        packets = _no_backward_jump(packets, time_base(stream))
    return index_from(packets, time_base(stream), recovery=recovery_point_test(stream))


def _no_backward_jump(packets: Iterator[Any], base: Fraction) -> Iterator[Any]:
    """``packets``, with a MediaError where their decode timestamps go backwards (a timestamp
    discontinuity: clips spliced without retiming, an encoder restarted): times after it would
    repeat times before it."""
    first = last = None
    for packet in packets:
        dts = packet.dts
        if dts is not None and last is not None and dts < last:
            assert first is not None
            raise MediaError(
                f"the video's timestamps jump backwards {_ms(last - dts, base)} ms at "
                f"{_ms(last - first, base)} ms into the stream (a timestamp discontinuity), so a "
                "time in it would name two frames; remux it with continuous timestamps first "
                "(ffmpeg -i IN -c copy OUT does)"
            )
        if dts is not None:
            first = dts if first is None else first
            last = dts
        yield packet


def _ms(ticks: int, base: Fraction) -> int:
    return round(ticks * base * 1000)


@dataclass(frozen=True)
class Window:
    """A window of the stream: its packets (decode order, from a keyframe) and their index,
    whose ``first_number`` is the stream number of its frame 0 where the container tells it
    (an MP4/MOV sample table) or the window starts at the stream's start, else None.
    ``covered``: the pts range ``(low, high)`` for which the index tells the frame shown
    (``high`` None: up to the end of the stream)."""

    packets: list[Any]
    index: FrameIndex
    covered: tuple[int, int | None]


def read_window(
    stream: Any,
    t: Fraction,
    start: Start,
    from_start: bool = False,
    whole_gop: bool = False,
    counts: DiscardCounts | None = None,
) -> Window | None:
    """The packets from a keyframe at or before ``t`` up to the last one that can show ``t``
    (``whole_gop``: up to the next keyframe, so that later times of the GOP are indexed too),
    and their index.

    The demuxer seeks before t, stepping back further while the first keyframe it reaches is
    presented after t (see :func:`_seek_window`); ``from_start`` reads from the first packet
    instead (the container must be freshly opened). Frames are numbered by the demuxer's
    sample table (MP4/MOV) or where the window starts at the stream's first packet
    (``from_start``, or a seek that lands there); elsewhere not (no packet before the window
    is read to count them). None where the timestamps are missing or
    out of order, or no keyframe before t was reached. ``counts``: see :func:`frames_before`.
    """
    container = stream.container
    base = time_base(stream)
    # Matroska stores no dts (FFmpeg guesses them): read up to the next keyframe there too.
    trust_dts = "matroska" not in container.format.name and not whole_gop
    first_pts = start.pts
    target = clamp_pts(first_pts + int(t / base // 1))
    try:
        if from_start:
            read = _window_packets(demux_all(container, stream), target, trust_dts, False)
        else:
            read = _seek_window(stream, target, first_pts, trust_dts)
    except (av.FFmpegError, StreamAddedMidway):
        return None
    if read is None or not read[0] or read[0][0].pts > target:
        return None
    packets, bound = read
    low = int(packets[0].pts)
    recovery = recovery_point_test(stream)
    if not from_start and recovery is not None and recovery(bytes(packets[0])):
        earlier = _gop_before(stream, packets[0], first_pts)
        if earlier is None:
            return None
        packets = earlier + packets
    index = index_from(packets, base, first_pts, recovery)
    if not from_start and (start.pos is None or packets[0].pos != start.pos):
        before = frames_before(stream, packets[0], counts)
        index = dataclasses.replace(index, first_number=before)
    return Window(packets, index, (low, bound))


def _gop_before(stream: Any, keyframe: Any, first_pts: int) -> list[Any] | None:
    """The packets from the keyframe before ``keyframe`` up to (not including) it, reached by a
    seek: a recovery point decodes exactly only after a refresh period started that early.
    Empty where none comes before it; None where a seek fails."""
    try:
        read = _seek_window(stream, int(keyframe.pts) - 1, first_pts, trust_dts=False)
    except (av.FFmpegError, StreamAddedMidway):
        return None
    if read is None:
        return None
    earlier: list[Any] = []
    for packet in read[0]:
        if packet.pts == keyframe.pts and packet.is_keyframe:  # Matroska: dts guessed or not
            return earlier
        earlier.append(packet)
    return [] if not earlier or earlier[0].pts > keyframe.pts else None


def _seek_window(
    stream: Any, target: int, first_pts: int, trust_dts: bool
) -> tuple[list[Any], int | None] | None:
    """The window's packets after a seek whose first keyframe is presented at or before
    ``target``, with their bound (see :func:`_window_packets`); None if none is reached within
    :data:`_SEEK_TRIES` seeks.

    Where the demuxer has an index of keyframes, the first seek is to target and the first
    retry seeks just before the keyframe reached. Without one (timestamp search, as in
    MPEG-TS, lands at any packet and the next keyframe may be a GOP later) the first seek is
    2 s before target (common GOPs are at most 2 s long: one timestamp search, which costs
    more than reading on) and each retry steps back 4, 8, ... seconds further (or over the gap
    in the timestamps a seek fell into, where that is longer). Seeks go down
    to 1 s before the first frame's pts: demuxers that search decode times land after a first
    keyframe decoded before its presentation time otherwise.
    """
    container = stream.container
    one_second = max(int(1 / time_base(stream)), 1)
    lowest = first_pts - one_second
    # Without an index of keyframes the seek lands where the timestamps say, not on a keyframe.
    back = 0 if len(stream.index_entries) else 2 * one_second
    seek_to = max(target - back, lowest)  # a keyframe at t is rare: start a step before it
    for _ in range(_SEEK_TRIES):
        container.seek(seek_to, stream=stream, backward=True, any_frame=False)
        demuxed = demux_all(container, stream)
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
        if seek_to <= lowest:
            return None
        landed = seek_to if first is None or first.dts is None else first.dts
        if packets and packets[0].dts is not None:  # a keyframe after t: before it
            landed = min(landed, packets[0].dts)
        # A seek that lands far past where it aimed fell into a gap in the timestamps: the
        # next one steps back over that much too.
        gap = 0 if first is None or first.dts is None else first.dts - seek_to
        seek_to = max(min(landed - 1, seek_to) - max(back, gap), lowest)
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


def sample_table(stream: Any) -> bool:
    """Whether the demuxer's index lists every sample of the stream (MP4/MOV sample tables):
    then it tells how many frames precede a packet, and the stream's frame count."""
    mov = "mp4" in stream.container.format.name.split(",")
    return mov and bool(stream.frames) and len(stream.index_entries) == stream.frames


def listed_keyframes(stream: Any) -> list[Any] | None:
    """The keyframe entries of the container's own index, in decode order: an MP4/MOV sample
    table, Matroska/WebM cues (read by the demuxer at its first seek), an AVI index that lists
    every frame; None where the container has none (the entries a demuxer adds as it reads,
    as in MPEG-TS, are not an index of the stream)."""
    names = stream.container.format.name.split(",")
    entries = stream.index_entries
    cues = "matroska" in names and len(entries) > 0
    avi_index = "avi" in names and bool(stream.frames) and len(entries) == stream.frames
    if not (sample_table(stream) or cues or avi_index):
        return None
    return [entry for entry in entries if entry.is_keyframe and not entry.is_discard]


def load_listed_keyframes(stream: Any, first_pts: int) -> None:
    """Makes the demuxer read its keyframe index now where it reads it at the first seek
    (Matroska/WebM cues), by a seek to ``first_pts``: what reading a window costs is then
    measured without that one-time read."""
    names = stream.container.format.name.split(",")
    if "matroska" in names:  # its entries so far may be the packets it read
        with contextlib.suppress(av.FFmpegError):  # the window's own seek tells what works
            stream.container.seek(first_pts, stream=stream, backward=True, any_frame=False)


def keyframe_pts(stream: Any, most: int) -> list[int] | None:
    """The pts of every keyframe the sample table lists (see :func:`sample_table`), each
    packet reached by a seek to its decode time; None where they are more than ``most``."""
    entries = [e for e in stream.index_entries if e.is_keyframe and not e.is_discard]
    if len(entries) > most:
        return None
    container = stream.container
    recovery = recovery_point_test(stream)
    found = []
    for entry in entries:  # the first keyframe at or after its decode time: that one
        container.seek(entry.timestamp, stream=stream, backward=False, any_frame=False)
        packet = next(demux_all(container, stream), None)
        if packet is None or packet.pts is None or packet.pos != entry.pos:
            return None
        if recovery is None or not recovery(bytes(packet)):  # not a recovery point
            found.append(int(packet.pts))
    return found


def frames_before(stream: Any, keyframe: Any, counts: DiscardCounts | None = None) -> int | None:
    """Frames before ``keyframe`` from the demuxer's sample table (see :func:`sample_table`);
    None elsewhere. ``counts``: the source's discarded samples, counted once for all its
    windows (else counted again up to ``keyframe``)."""
    if not sample_table(stream):
        return None
    return _frames_before(stream.index_entries, keyframe, counts or DiscardCounts())


def demux_all(container: Any, stream: Any) -> Iterator[Any]:
    """The stream's packets that carry data, from the demuxer's position on."""
    return (packet for packet in demux_guarded(container, stream) if packet.size)


class DiscardCounts:
    """How many sample-table entries before a position are discarded (MP4 edit-list pre-roll:
    not frames), counted as far as asked once, so that each window of a long file does not
    count from the start again."""

    def __init__(self) -> None:
        self._discarded: list[int] = []  # positions of discarded entries, ascending
        self._scanned = 0  # entries looked at so far

    def before(self, entries: Any, position: int) -> int:
        """Discarded entries among ``entries[:position]``."""
        for j in range(self._scanned, position):
            if entries[j].is_discard:
                self._discarded.append(j)
        self._scanned = max(self._scanned, position)
        return bisect.bisect_left(self._discarded, position)


def _frames_before(entries: Any, keyframe: Any, counts: DiscardCounts) -> int | None:
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
    return lo - counts.before(entries, lo)


@dataclass(frozen=True)
class Start:
    """Where the stream starts: the smallest pts of its frames, and the file position of its
    first packet (None where the demuxer does not tell it)."""

    pts: int
    pos: int | None


def stream_start(packets: Iterator[Any]) -> Start | None:
    """The stream's :class:`Start`, read from its first packets (``packets`` from the start);
    None where a packet has no pts.

    Reading stops at a packet whose dts is not before the smallest pts so far (every later
    packet is presented at or after it) or, where the dts are missing, after
    :data:`_FIRST_PACKETS` packets.
    """
    first = pos = None
    for read, packet in enumerate(packets, 1):
        if read == 1:
            pos = packet.pos if packet.pos is not None and packet.pos >= 0 else None
        if packet.is_discard:
            continue
        if packet.pts is None:
            return None
        first = packet.pts if first is None else min(first, packet.pts)
        if (packet.dts is not None and packet.dts >= first) or read >= _FIRST_PACKETS:
            break
    return None if first is None else Start(int(first), pos)


def index_from(
    packets: Iterable[Any],
    base: Fraction,
    first_pts: int | None = None,
    recovery: Callable[[bytes], bool] | None = None,
) -> FrameIndex:
    """Builds the index of a run of packets in decode order (a whole stream or a window);
    ``recovery`` tells keyframe packets that are recovery points (see
    :func:`~ossframe_native.streams.recovery_point_test`)."""
    pts_list: list[int] = []
    dts_list: list[int] = []
    key_list: list[bool] = []
    recovery_list: list[bool] = []
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
            recovery_list.append(key_list[-1] and recovery is not None and recovery(bytes(packet)))
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
        end_pts = int(pts_sorted[-1]) + _last_step(frame_pts, frame_pos, key_list)
    return FrameIndex(
        pts=pts_sorted,
        decode_pos=np.asarray(frame_pos, dtype=np.int64)[order],
        packet_key=np.asarray(key_list, dtype=bool),
        packet_recovery=np.asarray(recovery_list, dtype=bool) if any(recovery_list) else None,
        packet_pts=np.asarray(pts_list, dtype=np.int64),
        packet_dts=np.asarray(dts_list, dtype=np.int64),
        packet_ids=ids,
        time_base=base,
        end_pts=int(end_pts),
        first_pts=int(pts_sorted[0]) if first_pts is None else first_pts,
    )


def _last_step(frame_pts: list[int], frame_pos: list[int], keys: list[bool]) -> int:
    """How long the last frame lasts where no packet says: the median interval between the
    frames of the last GOP (from the last keyframe on, the same in a window that reaches the
    end as in the whole stream), or of every frame read where that GOP holds one frame."""
    last_key = max((pos for pos, key in enumerate(keys) if key), default=0)
    tail = sorted(p for p, pos in zip(frame_pts, frame_pos, strict=True) if pos >= last_key)
    if len(tail) < 2:
        tail = sorted(frame_pts)
    return int(np.median(np.diff(tail))) if len(tail) > 1 else 1
