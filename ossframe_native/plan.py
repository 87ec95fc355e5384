"""Capture plans: which frames each request outputs, and which packets must be decoded.

Pure functions over a :class:`~ossframe_native.index.FrameIndex`; nothing here decodes and
nothing imports PyAV. Frames are numbered in presentation order. Every rule on *which* frames
come out lives here (``docs/BEHAVIOUR.md``, "Which frame" and "Intervals and modes"): one
selector per mode in :data:`SELECTORS`, and the dhash ranking (:class:`DhashRanking`).
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .index import DecodeRun, FrameIndex
from .params import CaptureRequest, SnapshotRequest, SnapshotsRequest


@dataclass(frozen=True)
class CapturePlan:
    """The frames to output (time order, each once) and how to decode them.

    ``repeats[i]`` is how many outputs frames[i] gives (``avg`` repeats a frame when ``num``
    exceeds the frames); empty means one each. The plan's size is bounded by the frames of the
    video, whatever ``num`` asks. In ``dhash`` mode ``frames`` are the candidates; which of them
    are output is decided by their hashes while decoding (:class:`DhashRanking`).
    """

    mode: str  # a key of SELECTORS
    frames: tuple[int, ...]
    runs: tuple[DecodeRun, ...]
    repeats: tuple[int, ...] = ()
    # A capture planned by time (:func:`sample_times`): frames and runs are empty; each sample's
    # frame is found in the GOP around it, read when the capture gets there.
    samples: tuple[Fraction, ...] = ()

    def outputs(self, number: int) -> int:
        """How many outputs frame ``number`` gives (0 if it is not in the plan)."""
        position = self._positions.get(number)
        if position is None:
            return 0
        return self.repeats[position] if self.repeats else 1

    @functools.cached_property
    def _positions(self) -> dict[int, int]:
        return {frame: i for i, frame in enumerate(self.frames)}


@dataclass(frozen=True)
class Counted:
    """A selector's frames (time order, each once) with how many outputs each gives."""

    frames: list[int]
    repeats: tuple[int, ...]


def mode_of(request: CaptureRequest) -> str:
    """The selector a request uses: ``snapshot`` / ``fast`` for ``video/snapshot``, else its
    ``m`` (``default`` / ``avg`` / ``dhash`` / ``key``)."""
    if isinstance(request, SnapshotRequest):
        return "fast" if request.m == "fast" else "snapshot"
    return request.m


def plan_capture(request: CaptureRequest, index: FrameIndex) -> CapturePlan:
    """The plan for a ``video/snapshot`` or ``video/snapshots`` request."""
    mode = mode_of(request)
    select, keyframes_only = SELECTORS[mode]
    picked = select(request, index)
    if isinstance(picked, Counted):
        frames, repeats = picked.frames, picked.repeats
    else:
        frames, repeats = picked, ()
    runs = decode_runs(index, frames, keyframes_only)
    return CapturePlan(mode, tuple(frames), runs, repeats)


# Samples this far apart (seconds) or more are found GOP by GOP (see sample_times); closer ones
# are planned on the index of the whole stream, which reads every packet once.
SPARSE_SPACING = Fraction(10)


def may_sample_by_time(request: SnapshotsRequest) -> bool:
    """Whether :func:`sample_times` can plan the request by time, before the media is known:
    ``key`` with ``num``, ``avg``, or ``default``/``dhash`` with ``inter`` of at least
    :data:`SPARSE_SPACING`."""
    if request.m == "key":
        return bool(request.num)
    return request.m == "avg" or request.inter >= SPARSE_SPACING * 1000


def sample_times(
    request: SnapshotsRequest, last: FrameIndex, frames: int
) -> tuple[Fraction, ...] | None:
    """The times ``default``, ``dhash`` and ``avg`` sample, where they lie at least
    :data:`SPARSE_SPACING` apart and are fewer than the stream's ``frames``; None otherwise.
    ``key`` with ``num``: just ss (its keyframes are found GOP by GOP from there); without
    ``num``: None.

    ``last`` is an index that holds the stream's last frame (the GOP at its end), which tells
    the duration and the last frame's time. The frame shown at each time is the one the
    selector picks from the whole stream's index (``default``: ss, ss + inter, ... up to the
    last frame's time, every frame where ``inter`` is not longer than the mean frame interval;
    ``avg``: ss + k * (D - ss) / num), so both plans output the same frames.
    """
    if not may_sample_by_time(request):
        return None
    ss = Fraction(request.ss, 1000)
    if request.m == "key":
        return (ss,)
    if request.m == "avg":
        step = (last.duration - ss) / request.num
        if step < SPARSE_SPACING or request.num > frames:
            return None
        return tuple(ss + k * step for k in range(request.num))
    inter = Fraction(request.inter, 1000)  # default, dhash
    if inter <= last.duration / frames:
        return None
    count = max(int((last.time_exact(len(last) - 1) - ss) // inter) + 1, 1)  # ss even past it
    if count > frames:
        return None
    return tuple(ss + k * inter for k in range(count))


def _snapshot(request: Any, index: FrameIndex) -> list[int]:
    return [index.frame_at(Fraction(request.t, 1000))]


def _fast(request: Any, index: FrameIndex) -> list[int]:
    return [last_keyframe_at(index, Fraction(request.t, 1000))]


def _default(request: Any, index: FrameIndex) -> list[int]:
    frames = sampled_frames(index, Fraction(request.ss, 1000), Fraction(request.inter, 1000))
    return frames[: request.num] if request.num else frames


def _dhash_candidates(request: Any, index: FrameIndex) -> list[int]:
    # Every sampled frame is a candidate; num limits the winners, not the candidates.
    return sampled_frames(index, Fraction(request.ss, 1000), Fraction(request.inter, 1000))


def _avg(request: Any, index: FrameIndex) -> Counted:
    pairs = avg_frames(index, Fraction(request.ss, 1000), request.num)
    return Counted([frame for frame, _ in pairs], tuple(count for _, count in pairs))


def avg_frames(index: FrameIndex, ss: Fraction, num: int) -> list[tuple[int, int]]:
    """``avg``: the frames shown at ss + k * (D - ss) / num, k = 0..num-1, as (frame, count)
    pairs in time order, where count is how many of the num samples show that frame.

    Counted per frame, not per sample, so the work is bounded by the video's frames whatever
    ``num`` is: the samples before time T number ceil((T - ss) * num / (D - ss)), clamped to
    0..num, and frame i gets those before its successor's time minus those before its own.
    """
    span = index.duration - ss
    if span <= 0:  # ss at or past the end (the request check refuses it): the last frame
        return [(len(index) - 1, num)]

    def samples_before(t: Fraction) -> int:
        return min(max(-((ss - t) * num // span), 0), num)  # ceil((t - ss) * num / span)

    pairs = []
    before = 0
    for i in range(index.frame_at(ss), len(index)):
        after = samples_before(index.time_exact(i + 1)) if i + 1 < len(index) else num
        if after > before:
            pairs.append((i, after - before))
        before = after
    return pairs


def _key(request: Any, index: FrameIndex) -> list[int]:
    ss = Fraction(request.ss, 1000)
    keys = [i for i in keyframe_numbers(index) if index.time_exact(i) >= ss]
    return keys[: request.num] if request.num else keys


Selector = Callable[[Any, FrameIndex], list[int] | Counted]

# mode -> (the frames it outputs, in time order (dhash: its candidates; avg: each once, Counted
# with its repeats); keyframes only?)
SELECTORS: dict[str, tuple[Selector, bool]] = {
    "snapshot": (_snapshot, False),
    "fast": (_fast, True),
    "default": (_default, False),
    "avg": (_avg, False),
    "key": (_key, True),
    "dhash": (_dhash_candidates, False),
}


def snapshots_frames(request: SnapshotsRequest, index: FrameIndex) -> list[int]:
    """The frames ``video/snapshots`` outputs (``dhash``: its candidates), in time order, a
    repeated frame (``avg``) as often as it is output."""
    picked = SELECTORS[request.m][0](request, index)
    if isinstance(picked, Counted):
        return [
            frame
            for frame, count in zip(picked.frames, picked.repeats, strict=True)
            for _ in range(count)
        ]
    return picked


@dataclass
class DhashRanking:
    """dhash mode's choice among its candidates, fed their hashes in time order.

    A candidate's score is the percent of hash bits changed from the previous candidate (100
    for the first); it passes when the score is above ``thr``. With ``num`` only the ``num``
    best that pass are output (higher score wins; on ties the earlier frame), in time order.
    """

    thr: int
    num: int
    distance: Callable[[int, int], float]  # percent of differing bits of two hashes
    _previous: int | None = None
    _best: list[tuple[float, int, Any]] = field(default_factory=list)  # (score, -number, item)

    def score(self, hash_value: int) -> float:
        """The next candidate's score (its hash against the previous candidate's)."""
        score = 100.0 if self._previous is None else self.distance(self._previous, hash_value)
        self._previous = hash_value
        return score

    def passes(self, score: float) -> bool:
        """Whether a candidate with this score is output (before ``num`` ranking)."""
        return score > self.thr

    def rank(self, place: int, score: float, item: Any = None) -> None:
        """Holds a passing candidate among the ``num`` best; ``place``: its place in time order
        (ties go to the earlier), ``item``: what to hand back."""
        heapq.heappush(self._best, (score, -place, item))
        if len(self._best) > self.num:
            heapq.heappop(self._best)

    def winners(self) -> list[tuple[int, float, Any]]:
        """The ``num`` best as ``(place, score, item)``, in time order."""
        in_time_order = sorted(self._best, key=lambda entry: -entry[1])
        return [(-neg_place, score, item) for score, neg_place, item in in_time_order]


def sampled_frames(index: FrameIndex, ss: Fraction, inter: Fraction) -> list[int]:
    """Frames shown at ss, ss+inter, ... up to the last frame's time, each frame once.

    A frame that several samples fall on is returned once. An interval of 0, or not longer than
    the mean frame interval, returns every frame from the one shown at ``ss`` on.
    """
    first = index.frame_at(ss)
    if inter <= index.duration / len(index):
        return list(range(first, len(index)))
    last_time = index.time_exact(len(index) - 1)
    frames = [first]
    while frames[-1] + 1 < len(index):
        # Jump straight to the first sample that shows a later frame.
        next_time = index.time_exact(frames[-1] + 1)
        k = -((ss - next_time) // inter)  # ceil((next_time - ss) / inter)
        sample = ss + k * inter
        if sample > last_time:
            break
        frames.append(index.frame_at(sample))
    return frames


def keyframe_numbers(index: FrameIndex) -> list[int]:
    """Frame numbers of the keyframes, in time order."""
    return [int(i) for i in np.flatnonzero(index.packet_key[index.decode_pos])]


def last_keyframe_at(index: FrameIndex, t: Fraction) -> int:
    """The last keyframe at or before ``t`` (the first keyframe if none is)."""
    shown = index.frame_at(t)
    keys = keyframe_numbers(index)
    before = [k for k in keys if k <= shown]
    return before[-1] if before else (keys[0] if keys else 0)


def decode_runs(
    index: FrameIndex, frames: Sequence[int], keyframes_only: bool = False
) -> tuple[DecodeRun, ...]:
    """Groups frames into decode runs: each starts at the keyframe its first frame needs.

    A frame whose keyframe lies inside (or right after) the packets an earlier run already
    feeds joins that run, so frames of one GOP share one decode pass and nothing is decoded
    twice or sought backwards.
    """
    if keyframes_only:
        positions = sorted({int(index.decode_pos[i]): i for i in frames}.items())
        return tuple(DecodeRun(pos, pos, (i,), keyframes_only=True) for pos, i in positions)
    last_key = _last_keyframe_positions(index)
    runs: list[list[Any]] = []  # [start, end, frames]
    for i in sorted(set(frames), key=lambda n: int(index.pts[n])):
        pos = int(index.decode_pos[i])
        start = _start_keyframe(index, last_key, pos, int(index.pts[i]))
        if runs and start <= runs[-1][1] + 1 and start >= runs[-1][0]:
            runs[-1][1] = max(runs[-1][1], pos)
            runs[-1][2].append(i)
        else:
            runs.append([start, pos, [i]])
    return tuple(DecodeRun(start, end, tuple(nums)) for start, end, nums in runs)


def _last_keyframe_positions(index: FrameIndex) -> np.ndarray:
    positions = np.where(index.packet_key, np.arange(len(index.packet_key)), -1)
    return np.maximum.accumulate(positions)


def _start_keyframe(index: FrameIndex, last_key: np.ndarray, pos: int, pts: int) -> int:
    """The last keyframe at or before decode position ``pos`` whose pts is not after ``pts``.

    The pts test matters for open GOPs: a leading picture of keyframe K is presented before K
    and needs the GOP before it.
    """
    k = int(last_key[pos])
    while k > 0 and index.packet_pts[k] > pts:
        k = int(last_key[k - 1])
    return max(k, 0)
