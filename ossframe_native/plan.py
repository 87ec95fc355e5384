"""Capture plans: which frames each request outputs, and which packets must be decoded.

Pure functions over a :class:`~ossframe_native.index.FrameIndex`; nothing here decodes and
nothing imports PyAV. Frames are numbered in presentation order. The frame rules the modes
(``modes.py``) are made of live here (``docs/BEHAVIOUR.md``, "Which frame" and "Intervals and
modes"): the frames shown at sample times, ``avg``'s counts, keyframes; and how a mode's frames
become decode runs (:func:`capture_plan`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .index import DecodeRun, FrameIndex


@dataclass(frozen=True)
class CapturePlan:
    """The frames to output (time order, each once) and how to decode them.

    ``repeats[i]`` is how many outputs frames[i] gives (``avg`` repeats a frame when ``num``
    exceeds the frames); empty means one each. The plan's size is bounded by the frames of the
    video, whatever ``num`` asks. In ``dhash`` mode ``frames`` are the candidates; which of them
    are output is decided by their hashes while decoding (``modes.Dhash``).
    """

    mode: str  # the mode's name (modes.py)
    frames: tuple[int, ...]
    runs: tuple[DecodeRun, ...]
    repeats: tuple[int, ...] = ()
    # A capture planned by time (``Mode.sample_times``): frames and runs are empty; each sample's
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
    """A mode's frames (time order, each once) with how many outputs each gives (empty: one
    each)."""

    frames: list[int]
    repeats: tuple[int, ...] = ()


def capture_plan(
    mode: str, picked: Counted, index: FrameIndex, keyframes_only: bool = False
) -> CapturePlan:
    """The plan that outputs a mode's ``picked`` frames of ``index``."""
    runs = decode_runs(index, picked.frames, keyframes_only)
    return CapturePlan(mode, tuple(picked.frames), runs, picked.repeats)


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
    return [int(i) for i in index.keyframe_numbers()]


def last_keyframe_at(index: FrameIndex, t: Fraction) -> int:
    """The last keyframe at or before ``t`` (the first keyframe if none is); a recovery point
    counts (decoded exactly, from the keyframe before it: see :func:`decode_runs`)."""
    shown = index.frame_at(t)
    keys = [int(i) for i in np.flatnonzero(index.packet_key[index.decode_pos])]
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
        alone = [i for i in frames if index.is_keyframe(i)]
        positions = sorted({int(index.decode_pos[i]): i for i in alone}.items())
        singles = tuple(DecodeRun(pos, pos, (i,), keyframes_only=True) for pos, i in positions)
        if len(alone) == len(frames):
            return singles
        # Recovery points decode from the keyframe before them (runs in decode order).
        others = decode_runs(index, [i for i in frames if not index.is_keyframe(i)])
        return tuple(sorted(singles + others, key=lambda run: run.start))
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
    and needs the GOP before it. A recovery point (periodic intra refresh) gives exact
    pictures only once a refresh period has passed since the decode started: the start is the
    keyframe before it, whose period ends by then.
    """
    k = int(last_key[pos])
    while k > 0 and index.packet_pts[k] > pts:
        k = int(last_key[k - 1])
    if k > 0 and index.packet_recovery is not None and index.packet_recovery[k]:
        k = int(last_key[k - 1])
    return max(k, 0)
