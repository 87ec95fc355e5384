"""Which frames a source has and where their packets are: the frame index of an open stream
(the whole stream, or a window of it around a time), the windows a capture loads in turn, and
positioning the demuxer on a decode run's first packet (a seek, or reading on).

The pipeline asks this module, and only this module, about windows and seeks; it reads the
packets through :mod:`~ossframe_native.windows` and hands them to the decoders
(:mod:`~ossframe_native.runs`) through :meth:`Timeline.run_packets`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from .errors import MediaError
from .index import END, DecodeRun, DecodeStats, FrameIndex, clamp_pts, single_picture_index
from .streams import OpenStream
from .windows import (
    DiscardCounts,
    Start,
    keyframe_pts,
    listed_keyframes,
    load_listed_keyframes,
    read_index,
    read_window,
    sample_table,
    stream_start,
)

# Reading on through this many packets is cheaper than a seek (which re-reads container headers
# and may land early); beyond it, seek.
_READ_ON_PACKETS = 64

# How a snapshot's window was found (Timeline.reach, ``probe``'s ``snapshot_reads``):
SEEK = "seek"  # a seek to the GOP around t
FROM_START = "from_start"  # no usable seek: packets read from the start up to t
WHOLE_STREAM = "whole_stream"  # no window possible (e.g. missing timestamps): every packet


@dataclass(frozen=True)
class WindowRead:
    """What reading a window of the stream costs: the time it spans, the bytes of its packets
    (``held``) and the bytes read to find and read it (``read``: the seek's overhead too)."""

    span: Fraction
    held: int
    read: int

    def seconds(self) -> Fraction:
        """The stretch of the stream the bytes ``read`` hold, at the window's own rate."""
        if self.held <= 0:
            return self.span
        return self.span * max(self.read, self.held) / self.held


class Timeline:
    """The frame index of an open stream, and the packets behind it.

    ``around=t`` (seconds) indexes only the GOP that shows ``t`` and keeps its packets for
    decoding: what one snapshot needs; ``around=END`` indexes the last GOP, whose frames tell
    the duration and the last frame's time (see :meth:`load_window` for the GOPs of later
    times). Otherwise (and where no window can be read) the whole stream is indexed. ``cover``:
    the stream is one cover picture.
    """

    def __init__(
        self, opened: OpenStream, stats: DecodeStats, around: Fraction | None, cover: bool
    ) -> None:
        self._opened = opened
        self._stats = stats
        self._window: list[Any] | None = None  # demuxed packets of a windowed index
        self._covered: tuple[int, int | None] | None = None  # pts the window answers for
        self._start: Start | None = None  # where the stream starts, once read
        self._read_from_start = False  # a window was read from the start (load_window)
        self._window_read: WindowRead | None = None  # what reading the first window cost
        self._discards = DiscardCounts()  # MP4 windows' frame numbers, counted once
        self.frame_count: int | None = None  # frames in the stream, where known
        self.reach: str | None = None  # with ``around``: how the window was found
        self._next_pos: int | None = None  # decode position of the next demuxed packet
        self._packets: Iterator[Any] | None = None
        self._pending: Any = None  # a packet read by a seek check, not yet handed out
        self.index: FrameIndex
        if cover:
            self.index = single_picture_index()
        elif around is not None and (window := self._index_around(around)):
            self._window, self.index = window
        else:
            if around is not None:  # the window was tried and moved the demuxer
                self.reach = WHOLE_STREAM
            self._read_whole_index(reopen=around is not None)

    # -----------------------------------------------------------------------------------------
    # The loaded index: the whole stream, or a window of it

    def _index_around(self, t: Fraction) -> tuple[list[Any] | None, FrameIndex] | None:
        """The packets and index of the window that shows ``t`` (see :func:`read_window`).

        Where seeking fails the window is read from the first packet (work grows with t, not
        with the file). None: index the whole stream instead. No packets (None) with the
        index: it is the whole stream's (END read from the start).
        """
        opened = self._opened
        self._start = start = stream_start(opened.packets())
        if start is None:
            return None
        load_listed_keyframes(opened.stream, start.pts)
        before = self._stats.bytes_read
        window = read_window(opened.stream, t, start, counts=self._discards)
        self.reach = SEEK
        if window is None:
            opened.reopen()
            window = read_window(opened.stream, t, start, from_start=True)
            self.reach = FROM_START
        if window is None:
            return None
        index = window.index
        span = (index.end_pts - int(window.packets[0].pts)) * index.time_base
        held = sum(packet.size for packet in window.packets)
        self._window_read = WindowRead(span, held, self._stats.bytes_read - before)
        if sample_table(opened.stream):
            self.frame_count = int(opened.stream.frames)
        elif index.first_number is not None and window.covered[1] is None:  # read to the end
            self.frame_count = index.first_number + len(index)
        if t == END and self.reach == FROM_START:  # every packet was read: the whole index
            return None, index
        self._covered = window.covered
        return window.packets, index

    def keyframe_times_ms(self) -> list[int] | None:
        """Where the container lists every sample (MP4/MOV) and a window is loaded: each
        keyframe's time (ms, rounded up), its packet read by a seek; None elsewhere, or where
        keyframes are more than a quarter of the frames (reading every packet is as cheap)."""
        stream = self._opened.stream
        if self._window is None or self._start is None or not sample_table(stream):
            return None
        self._packets = self._pending = self._next_pos = None  # the demuxer moves
        try:
            pts = keyframe_pts(stream, most=max(len(self.index), self.frames_estimate() // 4))
        except (av.FFmpegError, MediaError):
            return None
        if pts is None:
            return None
        base = self.index.time_base
        return sorted(-(-(p - self._start.pts) * base * 1000 // 1) for p in pts)

    def frames_estimate(self) -> int:
        """The stream's frame count where known (:attr:`frame_count`), else estimated from the
        loaded index: its duration over the mean frame interval of its frames."""
        if self.frame_count:
            return self.frame_count
        index = self.index
        if len(index) < 2:
            return len(index)
        span = (int(index.pts[-1]) - int(index.pts[0])) * index.time_base
        return max(len(index), int(index.duration * (len(index) - 1) / span))

    def window_cost(self, size: int | None) -> WindowRead:
        """What reading one more window is estimated to cost, from the media: the window read
        when the source was opened (the last GOP for ``around=END``), measured, with what
        finding it by a seek read besides its packets (headers, a timestamp search's step back,
        a URL's read-ahead block); where the demuxer lists the keyframes (MP4/MOV sample table,
        Matroska cues, AVI index) and the mean GOP (``size``: the source's bytes, where known)
        is longer or larger, the mean GOP with that same overhead."""
        seen = self._window_read or WindowRead(self.index.duration, size or 0, size or 0)
        keyframes = self._listed_keyframes()
        if not keyframes:
            return seen
        span = max(seen.span, self.index.duration / keyframes)
        held = max(seen.held, (size or 0) // keyframes)
        return WindowRead(span, held, held + seen.read - seen.held)

    def _listed_keyframes(self) -> int:
        """How many keyframes the container's index lists (0: it has none, as MPEG-TS)."""
        return len(listed_keyframes(self._opened.stream) or ())

    @property
    def windowed(self) -> bool:
        """Whether the loaded index is a window of the stream, not the whole of it."""
        return self._window is not None

    def covers(self, t: Fraction) -> bool:
        """Whether the loaded index tells the frame shown at ``t``: always for a
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
        keys = self.index.keyframe_numbers()
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
        False where no seek reaches it: :meth:`load_whole_index` then."""
        start = self._start
        assert start is not None, "open the source with around= first"
        opened = self._opened
        self._stats.seeks += 1  # one window, however many seeks found it
        window = read_window(opened.stream, t, start, whole_gop=True, counts=self._discards)
        if window is None and not self._read_from_start:
            # e.g. the first GOP of an MPEG-TS: read from the start up to t, once per source
            # (seeks failing again would make every window read from the start).
            self._read_from_start = True
            opened.reopen()
            window = read_window(
                opened.stream, t, start, True, whole_gop=True, counts=self._discards
            )
        if window is None:
            return False
        self._window, self.index, self._covered = window.packets, window.index, window.covered
        return self.covers(t)

    def sampled(
        self, samples: Iterable[Fraction], onward: bool = False
    ) -> Iterator[dict[int, int]]:
        """The frames shown at ``samples`` (ascending times), window by window: loads, in turn,
        the window of each sample not yet covered (where none can be read, the whole stream's
        index) and yields the frames the samples it covers show (numbers in the loaded index),
        each with how many of them show it, in time order (one frame may end a window and start
        the next: the caller outputs it once). ``onward``: from the one sample on, the
        keyframes of each window, then of the window after it, to the end of the stream."""
        pending = deque(samples)
        while pending:
            if not self.covers(pending[0]) and not self.load_window(pending[0]):
                self.load_whole_index()
            if onward:
                start = pending.popleft()
                yield dict.fromkeys(self.covered_keyframes(start), 1)
                after = self.after_window()
                if after is not None:
                    pending.append(after)
                continue
            counts: dict[int, int] = {}
            while pending and self.covers(pending[0]):
                shown = self.index.frame_at(pending.popleft())
                counts[shown] = counts.get(shown, 0) + 1
            yield counts

    def load_whole_index(self) -> None:
        """Indexes every packet of the stream in place of a window (read again from the start)."""
        if self._window is not None:
            self._read_whole_index(reopen=True)

    def _read_whole_index(self, reopen: bool) -> None:
        if reopen:
            self._opened.reopen()
        self._window = self._covered = None
        self._packets = self._pending = self._next_pos = None
        self.index = read_index(self._opened.container, self._opened.stream)
        self.frame_count = len(self.index)

    # -----------------------------------------------------------------------------------------
    # The packets of a decode run

    def run_packets(self, run: DecodeRun) -> Iterator[tuple[Any, bool]]:
        """The packets a run feeds, each with whether FFmpeg may skip it if unreferenced (a
        frame nothing refers to is needed only if it is wanted)."""
        wanted_positions = {int(self.index.decode_pos[i]) for i in run.frames}
        self._position_at(run.start)
        for pos in range(run.start, run.end + 1):
            packet = self._next_packet(pos)
            if not run.keyframes_only or self.index.keyframe_packets[pos]:
                yield packet, pos not in wanted_positions

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
        self._stats.seeks += 1
        opened = self._opened
        try:
            opened.container.seek(dts, stream=opened.stream, backward=True, any_frame=False)
        except av.FFmpegError:
            self._rewind()
            return
        self._packets = opened.packets()
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

    def _rewind(self) -> None:
        """Reopens the source and reads from its first packet (used when a seek misses)."""
        self._stats.seeks += 1
        self._opened.reopen()
        self._packets = self._opened.packets()
        self._pending = None
        self._next_pos = 0

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
