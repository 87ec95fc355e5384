"""Capture modes: each mode is one object that answers everything the pipeline asks of it.

A mode is built from its request (:func:`mode_for`) and tells:

* :meth:`Mode.select`: the frames it outputs on an index of the whole stream (time order, each
  once, with how many outputs each gives);
* :attr:`Mode.by_time` / :meth:`Mode.sample_times`: whether it may be planned by time (samples
  far apart, each found in the GOP around it) and its sample times once the last GOP is known;
  :meth:`Mode.windows`: how many GOPs such a capture reads at most; :attr:`Mode.reads_onward`:
  from its one sample on, the keyframes of each GOP in turn (``key``);
* :attr:`Mode.keyframes_only`, :attr:`Mode.limit` (most outputs), :attr:`Mode.repeats` (a frame
  several samples show is output once per sample), :attr:`Mode.scores`;
* :meth:`Mode.decide`: which decoded frames are output, for a mode that decides while decoding
  (``dhash`` hashes each candidate); by default every planned frame.

Adding a ``video/snapshots`` mode: a :class:`SnapshotsMode` subclass here with :func:`register`
(its name joins ``params.SNAPSHOTS_MODES``), any new parameter in ``params.py``, and its rules in
``docs/BEHAVIOUR.md``. Nothing else changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Protocol

from . import kernels
from .index import END, FrameIndex, MediaInfo, Output
from .params import SNAPSHOTS_MODES, CaptureRequest, SnapshotRequest, SnapshotsRequest
from .plan import (
    CapturePlan,
    Counted,
    avg_frames,
    capture_plan,
    keyframe_numbers,
    last_keyframe_at,
    sampled_frames,
)

# (frame number in the loaded index, its output, how many outputs it gives), in time order
Decoded = Iterator[tuple[int, Output, int]]
# Decodes frames of the whole stream's index again: {frame number: score} -> outputs in order
DecodeAgain = Callable[[dict[int, float]], Iterator[Output]]


class CaptureView(Protocol):
    """What a mode that decides while decoding reads of its capture."""

    @property
    def info(self) -> MediaInfo:
        """The source's description."""
        ...

    def frame_hash(self, frame: Any) -> int:
        """The 64-bit difference hash of a decoded frame's luma (where it was decoded)."""
        ...


class Mode:
    """A capture mode with its request's parameters. Subclasses override what differs."""

    name: ClassVar[str] = ""
    keyframes_only: ClassVar[bool] = False  # only keyframes are decoded
    scores: ClassVar[bool] = False  # outputs carry a score (a cover picture gets 100)
    repeats: ClassVar[bool] = False  # a frame several samples show: one output per sample
    reads_onward: ClassVar[bool] = False  # by time: every keyframe from its sample on

    def __init__(self, request: Any) -> None:
        self.request = request

    def select(self, index: FrameIndex) -> Counted:
        """The frames output on ``index`` (the whole stream's, or a snapshot's window)."""
        raise NotImplementedError

    def plan(self, index: FrameIndex) -> CapturePlan:
        """The capture plan on ``index``: :meth:`select`'s frames and their decode runs."""
        return capture_plan(self.name, self.select(index), index, self.keyframes_only)

    @property
    def limit(self) -> int:
        """The most outputs (0: no limit)."""
        return 0

    @property
    def by_time(self) -> bool:
        """Whether the capture may be planned by time (known before the media is opened): the
        source is then opened at its last GOP, and the pipeline plans by time where the
        samples lie further apart than what reading one GOP costs in this media."""
        return False

    def around(self) -> Fraction | None:
        """Where the source is opened: the time whose GOP alone is indexed, ``END`` (the last
        GOP, for a capture that may be planned by time), or None (the whole stream)."""
        return END if self.by_time else None

    def sample_times(self, last: FrameIndex, frames: int) -> tuple[Fraction, ...] | None:
        """The sample times of a capture planned by time, from ``last`` (an index holding the
        stream's last frame) and the stream's ``frames``; None: plan on the whole index."""
        return None

    def windows(self, samples: tuple[Fraction, ...]) -> int:
        """How many GOPs a capture planned by time reads at most."""
        return min(self.limit, len(samples)) if self.limit else len(samples)

    def plans_by_time(self, info: MediaInfo) -> bool:
        """Whether a capture by time suits this media (see :class:`Dhash`)."""
        return True

    def decide(
        self, decoded: Decoded, again: DecodeAgain, capture: CaptureView
    ) -> Iterator[Output]:
        """The outputs, from the planned frames of ``capture`` as they are decoded: each as
        often as it is output (the same object again, so that it is rendered once). ``again``
        decodes frames of the whole stream's index once more."""
        for _, output, count in decoded:
            for _ in range(count):
                yield output


class Snapshot(Mode):
    """``video/snapshot``: the frame shown at ``t``."""

    name = "snapshot"

    def select(self, index: FrameIndex) -> Counted:
        return Counted([index.frame_at(Fraction(self.request.t, 1000))])

    def around(self) -> Fraction | None:
        return Fraction(self.request.t, 1000)


class Fast(Snapshot):
    """``video/snapshot,m_fast``: the last keyframe at or before ``t``."""

    name = "fast"
    keyframes_only = True

    def select(self, index: FrameIndex) -> Counted:
        return Counted([last_keyframe_at(index, Fraction(self.request.t, 1000))])


class SnapshotsMode(Mode):
    """A ``video/snapshots`` mode (``m``): the base of every registered mode."""

    request: SnapshotsRequest

    @property
    def ss(self) -> Fraction:
        """The start time, seconds."""
        return Fraction(self.request.ss, 1000)

    def interval_times(self, last: FrameIndex, frames: int) -> tuple[Fraction, ...] | None:
        """ss, ss + inter, ... up to the last frame's time, where ``inter`` is longer than the
        mean frame interval and they are fewer than ``frames`` (else None: every frame, or
        more samples than frames, is planned on the whole index)."""
        inter = Fraction(self.request.inter, 1000)
        if inter <= last.duration / frames:
            return None
        count = max(int((last.time_exact(len(last) - 1) - self.ss) // inter) + 1, 1)
        if count > frames:
            return None
        return tuple(self.ss + k * inter for k in range(count))

    @property
    def spaced(self) -> bool:
        """Whether ``inter`` spaces the samples at all (0: every frame, from the whole index);
        whether they lie far enough apart to be read GOP by GOP is weighed on the media."""
        return self.request.inter > 0


class Default(SnapshotsMode):
    """``default``: the frames shown at ss, ss + inter, ...; ``num`` caps the outputs."""

    name = "default"

    def select(self, index: FrameIndex) -> Counted:
        frames = sampled_frames(index, self.ss, Fraction(self.request.inter, 1000))
        return Counted(frames[: self.limit] if self.limit else frames)

    @property
    def limit(self) -> int:
        return self.request.num

    @property
    def by_time(self) -> bool:
        return self.spaced

    def sample_times(self, last: FrameIndex, frames: int) -> tuple[Fraction, ...] | None:
        return self.interval_times(last, frames)


class Avg(SnapshotsMode):
    """``avg``: exactly ``num`` outputs, the frames shown at ss + k (D - ss) / num."""

    name = "avg"
    repeats = True

    def select(self, index: FrameIndex) -> Counted:
        pairs = avg_frames(index, self.ss, self.request.num)
        return Counted([frame for frame, _ in pairs], tuple(count for _, count in pairs))

    @property
    def by_time(self) -> bool:
        return True

    def sample_times(self, last: FrameIndex, frames: int) -> tuple[Fraction, ...] | None:
        num = self.request.num
        step = (last.duration - self.ss) / num
        if num > frames:
            return None
        return tuple(self.ss + k * step for k in range(num))


class Key(SnapshotsMode):
    """``key``: every keyframe at or after ss; ``num`` keeps the first ``num``."""

    name = "key"
    keyframes_only = True
    reads_onward = True

    def select(self, index: FrameIndex) -> Counted:
        keys = [i for i in keyframe_numbers(index) if index.time_exact(i) >= self.ss]
        return Counted(keys[: self.limit] if self.limit else keys)

    @property
    def limit(self) -> int:
        return self.request.num

    @property
    def by_time(self) -> bool:
        return bool(self.request.num)  # without num every GOP is needed

    def sample_times(self, last: FrameIndex, frames: int) -> tuple[Fraction, ...] | None:
        return (self.ss,)  # its keyframes are found GOP by GOP from there

    def windows(self, samples: tuple[Fraction, ...]) -> int:
        return self.request.num


# dhash with num > 0 holds its best candidates' decoded frames while it hashes the rest when
# they fit in this many pixels; otherwise it keeps scores only and decodes the winners again.
_DHASH_HOLD_PIXELS = 64 * 1024 * 1024


class Dhash(SnapshotsMode):
    """``dhash``: the candidates ``default`` samples (``num`` does not cut them), each kept
    when its hash differs from the previous candidate's by more than ``thr`` percent; with
    ``num`` the ``num`` highest scores, in time order."""

    name = "dhash"
    scores = True

    def select(self, index: FrameIndex) -> Counted:
        # Every sampled frame is a candidate; num limits the winners, not the candidates.
        return Counted(sampled_frames(index, self.ss, Fraction(self.request.inter, 1000)))

    @property
    def by_time(self) -> bool:
        return self.spaced

    def sample_times(self, last: FrameIndex, frames: int) -> tuple[Fraction, ...] | None:
        return self.interval_times(last, frames)

    def plans_by_time(self, info: MediaInfo) -> bool:
        # With num the winners are decoded again unless they can be held: a whole index then.
        return self._holds(info)

    def _holds(self, info: MediaInfo) -> bool:
        return self.request.num * info.width * info.height <= _DHASH_HOLD_PIXELS

    def decide(
        self, decoded: Decoded, again: DecodeAgain, capture: CaptureView
    ) -> Iterator[Output]:
        """Hashes each candidate's luma as it is decoded and ranks it (:class:`DhashRanking`).
        Winners that cannot be held (see :meth:`plans_by_time`) are decoded again: such a
        capture is planned on the whole stream's index."""
        request = self.request
        ranking = DhashRanking(request.thr, request.num, kernels.hash_distance)
        hold = self._holds(capture.info)
        # Ranked by their place among the candidates (time order), which ties go by.
        for place, (number, output, _) in enumerate(decoded):
            score = ranking.score(capture.frame_hash(output.frame))
            if not ranking.passes(score):
                continue
            scored = output.scored(score)
            if not request.num:
                yield scored
            else:
                ranking.rank(place, score, scored if hold else number)
        winners = ranking.winners()
        if hold:
            yield from (scored for _, _, scored in winners)
        else:
            yield from again({number: score for _, score, number in winners})


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


# m -> its mode; register() adds one
MODES: dict[str, type[SnapshotsMode]] = {}


def register(mode: type[SnapshotsMode]) -> type[SnapshotsMode]:
    """Makes ``mode`` the ``video/snapshots`` mode ``m_<mode.name>`` (a class decorator)."""
    MODES[mode.name] = mode
    if mode.name not in SNAPSHOTS_MODES:
        SNAPSHOTS_MODES.append(mode.name)
    return mode


def unregister(name: str) -> None:
    """Removes the mode ``name`` (a test's own mode, when the test ends)."""
    MODES.pop(name, None)
    if name in SNAPSHOTS_MODES:
        SNAPSHOTS_MODES.remove(name)


for _builtin in (Default, Avg, Key, Dhash):
    register(_builtin)


def mode_for(request: CaptureRequest) -> Mode:
    """The mode of a ``video/snapshot`` (``snapshot`` / ``fast``) or ``video/snapshots`` request
    (its ``m``)."""
    if isinstance(request, SnapshotRequest):
        return Fast(request) if request.m == "fast" else Snapshot(request)
    return MODES[request.m](request)
