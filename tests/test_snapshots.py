"""``video/snapshots``: every mode returns exactly the frames docs/BEHAVIOUR.md
("Intervals and modes") defines, in time order.

Expected selections are computed here from the reference decode (:func:`media.reference_frames`)
with the documented formulas; the engine's outputs are compared by index, by the number each image
shows, and by time.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from media import (
    ClipTruth,
    ceil_ms,
    decode_image,
    dhash_bits,
    dhash_score,
    read_frame_number,
    reference_frames,
    shown_at,
)


def default_selection(
    refs, ss: int, inter: int, num: int, frame_interval_ms: Fraction
) -> list[int]:
    """``default``: samples ss, ss+inter, ... up to the last frame's time, each the
    frame shown at that time; inter 0 or not longer than the frame interval = every frame from
    the one shown at ss on. A frame several samples fall on is returned once (ours: matters
    only for variable frame rate; the cases below never have two samples on one frame)."""
    last = refs[-1].time * 1000
    if inter == 0 or inter <= frame_interval_ms:
        picked = list(range(shown_at(refs, ss), len(refs)))
    else:
        picked = []
        k = 0
        while ss + k * inter <= last:
            i = shown_at(refs, ss + k * inter)
            if not picked or picked[-1] != i:
                picked.append(i)
            k += 1
    return picked[:num] if num else picked


def check_outputs(images, refs, expected: list[int], *, read_numbers: bool = True) -> None:
    got = [img.index for img in images]
    assert got == expected, f"frames: expected {expected}, got {got}"
    times = [img.time_ms for img in images]
    assert times == [ceil_ms(refs[i].time) for i in expected]
    assert times == sorted(times)
    assert [img.keyframe for img in images] == [refs[i].key for i in expected]
    if read_numbers:
        numbers = [read_frame_number(decode_image(img.data)) for img in images]
        assert numbers == [refs[i].number for i in expected]


# --------------------------------------------------------------------------------------------
# default


DEFAULT_CASES = [
    # (ss, inter, num) on clip_h264_b: 30 fps, 90 frames, last frame at 2966.67 ms
    (0, 0, 0),  # every frame
    (1000, 0, 0),  # from frame 30, which is exactly at ss
    (1010, 0, 0),  # from the frame shown at ss (frame 30, at 1000 ms) on
    (0, 20, 0),  # inter shorter than the frame interval: every frame once
    (0, 33, 0),  # 33 ms < 33.33 ms: every frame once
    (0, 34, 0),  # just longer: a sample every 34 ms skips a frame now and then
    (0, 1000, 0),  # 0, 1000, 2000 -> frames 0, 30, 60
    (500, 250, 0),  # 500, 750, ..., 2750
    (500, 250, 4),  # the first 4 of those
    (0, 0, 10),  # first 10 frames
    (2950, 0, 0),  # ss inside the last frames
    (120, 700, 3),
]


@pytest.mark.parametrize(("ss", "inter", "num"), DEFAULT_CASES)
def test_default_mode(ofn, clip_h264_b: ClipTruth, ss: int, inter: int, num: int) -> None:
    refs = reference_frames(clip_h264_b.path)
    expected = default_selection(refs, ss, inter, num, Fraction(1000, 30))
    images = list(ofn.snapshots(clip_h264_b.path, f="jpg", ss=ss, inter=inter, num=num))
    check_outputs(images, refs, expected)


def test_default_mode_examples_by_hand(ofn, clip_h264_b: ClipTruth) -> None:
    """The same rules on a few cases written out, so a bug in ``default_selection`` shows."""
    idx = [i.index for i in ofn.snapshots(clip_h264_b.path, f="jpg", inter=1000)]
    assert idx == [0, 30, 60]
    idx = [i.index for i in ofn.snapshots(clip_h264_b.path, f="jpg", ss=500, inter=250, num=4)]
    assert idx == [15, 22, 30, 37]
    idx = [i.index for i in ofn.snapshots(clip_h264_b.path, f="jpg", ss=1010)]
    assert idx == list(range(30, 90))
    assert len(list(ofn.snapshots(clip_h264_b.path, f="jpg", inter=33))) == 90
    assert len(list(ofn.snapshots(clip_h264_b.path, f="jpg", inter=34))) == 88  # 0..2958 / 34


@pytest.mark.parametrize(
    ("name", "ss", "inter", "num"),
    [
        ("clip_vfr", 0, 0, 0),
        ("clip_vfr", 55, 0, 0),
        ("clip_vfr", 0, 150, 0),  # longer than any frame: no two samples on one frame
        ("clip_vfr", 100, 101, 5),
        ("clip_ts_offset", 0, 0, 0),
        ("clip_ts_offset", 1000, 400, 0),
        ("clip_vp9", 0, 0, 0),
        ("clip_vp9", 250, 100, 0),
        ("clip_hevc", 0, 0, 0),
        ("clip_hevc", 300, 250, 0),
        ("clip_hevc_open_gop", 0, 0, 0),
        ("clip_hevc_open_gop", 850, 0, 0),
        ("clip_mpeg4", 0, 0, 0),
        ("clip_mpeg4_avi", 0, 120, 0),
        ("clip_odd444", 0, 0, 0),
        ("clip_h264_long_gop", 0, 500, 0),
        ("clip_h264_long_gop", 8000, 0, 0),
    ],
)
def test_default_mode_other_clips(
    ofn, name: str, ss: int, inter: int, num: int, request: pytest.FixtureRequest
) -> None:
    truth = request.getfixturevalue(name)
    refs = reference_frames(truth.path)
    # VFR: the shortest frame is 10 ms, so inter > 10 samples; the cases avoid repeats
    interval = Fraction(10) if name == "clip_vfr" else 1000 / truth.fps
    expected = default_selection(refs, ss, inter, num, interval)
    images = list(ofn.snapshots(truth.path, f="jpg", ss=ss, inter=inter, num=num))
    check_outputs(images, refs, expected)


def test_every_frame_png_is_exact(ofn, clip_vfr: ClipTruth) -> None:
    refs = reference_frames(clip_vfr.path)
    images = list(ofn.snapshots(clip_vfr.path, f="png"))
    assert len(images) == len(refs)
    for img, ref in zip(images, refs, strict=True):
        assert np.array_equal(decode_image(img.data), ref.rgb), img.index


# --------------------------------------------------------------------------------------------
# avg


def avg_selection(refs, ss: int, num: int, duration_ms: Fraction) -> list[int]:
    """``avg``: the frames shown at ss + k*(D - ss)/num, k = 0..num-1 (exact times)."""
    return [shown_at(refs, ss + k * (duration_ms - ss) / num) for k in range(num)]


@pytest.mark.parametrize(
    ("name", "ss", "num"),
    [
        ("clip_h264_b", 0, 1),
        ("clip_h264_b", 0, 7),
        ("clip_h264_b", 0, 16),
        ("clip_h264_b", 700, 5),
        ("clip_h264_long_gop", 0, 8),
        ("clip_ts_offset", 300, 6),
        ("clip_vfr", 0, 8),
        ("clip_vp9", 0, 11),
    ],
)
def test_avg_mode(ofn, name: str, ss: int, num: int, request: pytest.FixtureRequest) -> None:
    truth = request.getfixturevalue(name)
    refs = reference_frames(truth.path)
    duration = Fraction(ofn.probe(truth.path)["duration_ms"]).limit_denominator(1000)
    # the probe's duration is the clip's: its last frame plus that frame's duration
    assert float(truth.times_ms()[-1]) < duration <= float(truth.duration_ms) + 101
    expected = avg_selection(refs, ss, num, duration)
    # Sound test: the chosen cases do not depend on how a sample time is rounded to ms
    for k in range(num):
        t = ss + k * (duration - ss) / num
        assert shown_at(refs, int(t)) == shown_at(refs, -(-t.numerator // t.denominator)), (k, t)
    images = list(ofn.snapshots(truth.path, f="jpg", m="avg", ss=ss, num=num))
    check_outputs(images, refs, expected)


def test_avg_sample_exactly_on_a_frame(ofn, clip_h264_long_gop: ClipTruth) -> None:
    """D = 10000 ms, num 9: sample 3 is at 10000/3 ms, exactly frame 100's time (100/30 s).
    In exact arithmetic that is frame 100 (a sample rounded down to 3333 ms would give 99)."""
    refs = reference_frames(clip_h264_long_gop.path)
    assert refs[100].time == Fraction(10, 3)
    images = list(ofn.snapshots(clip_h264_long_gop.path, f="jpg", m="avg", num=9))
    assert [i.index for i in images] == [0, 33, 66, 100, 133, 166, 200, 233, 266]


def test_avg_by_hand(ofn, clip_h264_b: ClipTruth) -> None:
    """D = 3000 ms: num 3 -> 0, 1000, 2000 ms -> frames 0, 30, 60; ss 1500, num 3 -> 1500,
    2000, 2500 ms -> frames 45, 60, 75. inter is ignored."""
    assert ofn.probe(clip_h264_b.path)["duration_ms"] == pytest.approx(3000, abs=0.5)
    got = [i.index for i in ofn.snapshots(clip_h264_b.path, f="jpg", m="avg", num=3)]
    assert got == [0, 30, 60]
    got = [
        i.index
        for i in ofn.snapshots(clip_h264_b.path, f="jpg", m="avg", num=3, ss=1500, inter=999)
    ]
    assert got == [45, 60, 75]


def test_avg_more_samples_than_frames(ofn, clip_hevc: ClipTruth) -> None:
    """num larger than the frame count: still num outputs, some frames repeated (each output
    is the frame shown at its sample time)."""
    refs = reference_frames(clip_hevc.path)
    duration = Fraction(ofn.probe(clip_hevc.path)["duration_ms"]).limit_denominator(1000)
    num = 2 * len(refs) + 3
    images = list(ofn.snapshots(clip_hevc.path, f="jpg", m="avg", num=num))
    assert [i.index for i in images] == avg_selection(refs, 0, num, duration)


# --------------------------------------------------------------------------------------------
# key


@pytest.mark.parametrize(
    ("name", "ss", "num"),
    [
        ("clip_h264_b", 0, 0),
        ("clip_h264_b", 1, 0),
        ("clip_h264_b", 1000, 0),  # keyframe exactly at ss is kept
        ("clip_h264_b", 1001, 0),
        ("clip_h264_b", 0, 2),
        ("clip_h264_long_gop", 0, 0),
        ("clip_h264_long_gop", 100, 0),
        ("clip_hevc", 0, 0),
        ("clip_mpeg4", 0, 0),
        ("clip_mpeg4", 500, 3),
        ("clip_mpeg4_avi", 0, 0),
        ("clip_vp9", 0, 0),
        ("clip_vfr", 0, 0),
        ("clip_ts_offset", 0, 0),
        ("clip_ts_offset", 1500, 1),
    ],
)
def test_key_mode(ofn, name: str, ss: int, num: int, request: pytest.FixtureRequest) -> None:
    truth = request.getfixturevalue(name)
    refs = reference_frames(truth.path)
    keys = [i for i, r in enumerate(refs) if r.key and r.time * 1000 >= ss]
    expected = keys[:num] if num else keys
    images = list(ofn.snapshots(truth.path, f="jpg", m="key", ss=ss, num=num, inter=777))
    check_outputs(images, refs, expected)
    assert all(img.keyframe for img in images)


def test_key_by_hand(ofn, clip_h264_b: ClipTruth) -> None:
    assert [i.index for i in ofn.snapshots(clip_h264_b.path, f="jpg", m="key")] == [0, 30, 60]
    assert [i.time_ms for i in ofn.snapshots(clip_h264_b.path, f="jpg", m="key", ss=1)] == [
        1000,
        2000,
    ]


# --------------------------------------------------------------------------------------------
# dhash


def dhash_selection(refs, ss: int, inter: int, thr: int, num: int, interval: Fraction):
    """``dhash``: candidates = the ``default`` frames for ss/inter; score = percent of
    hash bits differing from the previous candidate (first = 100); keep score > thr; num > 0
    keeps the num highest (ties: earlier first), returned in time order."""
    candidates = default_selection(refs, ss, inter, 0, interval)
    scored = []
    previous = None
    for i in candidates:
        bits = dhash_bits(refs[i].luma)
        score = 100.0 if previous is None else dhash_score(previous, bits)
        previous = bits
        if score > thr:
            scored.append((i, score))
    if num:
        best = sorted(scored, key=lambda item: (-item[1], item[0]))[:num]
        scored = sorted(best)
    return scored


DHASH_CASES = [
    # (ss, inter, thr, num) on clip_cuts: cuts at 12, 24, 36, 48, 60
    (0, 0, 0, 0),
    (0, 0, 10, 0),
    (0, 0, 30, 0),  # the first frame and the five cuts
    (0, 0, 30, 3),
    (0, 0, 0, 5),
    (0, 0, 0, 1),
    (0, 100, 0, 0),  # candidates every 100 ms
    (0, 100, 20, 0),
    (500, 0, 15, 0),  # the first candidate (frame 15) scores 100
    (0, 0, 99, 0),  # only the first candidate
    (0, 0, 100, 0),  # nothing scores > 100: no output
    (200, 67, 5, 4),
]


@pytest.mark.parametrize(("ss", "inter", "thr", "num"), DHASH_CASES)
def test_dhash_mode(ofn, clip_cuts: ClipTruth, ss: int, inter: int, thr: int, num: int) -> None:
    refs = reference_frames(clip_cuts.path)
    expected = dhash_selection(refs, ss, inter, thr, num, Fraction(1000, 30))
    images = list(
        ofn.snapshots(clip_cuts.path, f="jpg", m="dhash", ss=ss, inter=inter, thr=thr, num=num)
    )
    check_outputs(images, refs, [i for i, _ in expected])
    assert [img.score for img in images] == pytest.approx([s for _, s in expected])


def test_dhash_thr_selects_the_cuts(ofn, clip_cuts: ClipTruth) -> None:
    """With thr 30 the outputs are the first frame and exactly the five hard cuts."""
    images = list(ofn.snapshots(clip_cuts.path, f="jpg", m="dhash", thr=30))
    assert [i.index for i in images] == [0, *clip_cuts.scene_cuts]
    assert images[0].score == 100.0
    assert all(img.score >= 35 for img in images)


def test_dhash_num_ties_prefer_earlier(ofn, clip_cuts: ClipTruth) -> None:
    refs = reference_frames(clip_cuts.path)
    scored = dhash_selection(refs, 0, 0, 0, 0, Fraction(1000, 30))
    by_score: dict[float, list[int]] = {}
    for i, s in scored:
        by_score.setdefault(s, []).append(i)
    ranked = sorted(scored, key=lambda item: (-item[1], item[0]))
    # pick a num that cuts through a group of equal scores
    for num in range(2, len(ranked)):
        tied = by_score[ranked[num - 1][1]]
        if len(tied) > 1 and tied[-1] not in [i for i, _ in ranked[:num]]:
            break
    else:
        pytest.fail("the cut clip has no tie to test")
    images = list(ofn.snapshots(clip_cuts.path, f="jpg", m="dhash", num=num))
    assert [i.index for i in images] == sorted(i for i, _ in ranked[:num])


def test_scores_only_in_dhash_mode(ofn, clip_cuts: ClipTruth) -> None:
    for mode in ("default", "key"):
        assert all(i.score is None for i in ofn.snapshots(clip_cuts.path, f="jpg", m=mode, num=3))
    assert all(i.score is None for i in ofn.snapshots(clip_cuts.path, f="jpg", m="avg", num=3))


# --------------------------------------------------------------------------------------------
# frames(): numpy arrays


@pytest.mark.parametrize("name", ["clip_h264_b", "clip_odd444", "clip_vp9", "clip_odd420"])
def test_frames_numpy_is_exact(ofn, name: str, request: pytest.FixtureRequest) -> None:
    truth = request.getfixturevalue(name)
    refs = reference_frames(truth.path)
    frames = list(ofn.frames(truth.path, output="numpy", device="cpu"))
    assert [f.index for f in frames] == list(range(len(refs)))
    for fr, ref in zip(frames, refs, strict=True):
        assert isinstance(fr.array, np.ndarray)
        assert fr.array.dtype == np.uint8 and fr.array.shape == (truth.height, truth.width, 3)
        diff = np.abs(fr.array.astype(int) - ref.rgb).max()
        assert diff == 0, f"frame {fr.index}: max abs diff {diff}"
        assert fr.time_ms == ceil_ms(ref.time)
        assert fr.keyframe == ref.key
        assert fr.score is None


def test_frames_modes_match_snapshots(ofn, clip_cuts: ClipTruth) -> None:
    refs = reference_frames(clip_cuts.path)
    for kwargs in (
        {"m": "key"},
        {"m": "avg", "num": 5},
        {"m": "dhash", "thr": 30},
        {"ss": 400, "inter": 200, "num": 3},
    ):
        images = list(ofn.snapshots(clip_cuts.path, f="jpg", **kwargs))
        frames = list(ofn.frames(clip_cuts.path, **kwargs))
        assert [f.index for f in frames] == [i.index for i in images], kwargs
        assert [f.time_ms for f in frames] == [i.time_ms for i in images], kwargs
        assert [f.score for f in frames] == [i.score for i in images], kwargs
        for f in frames:
            assert np.array_equal(f.array, refs[f.index].rgb), (kwargs, f.index)


def test_frames_geometry(ofn, clip_h264_b: ClipTruth) -> None:
    frames = list(ofn.frames(clip_h264_b.path, m="key", w=64, h=48, scaletype="crop"))
    assert [f.array.shape for f in frames] == [(48, 64, 3)] * 3
    frames = list(ofn.frames(clip_h264_b.path, m="key", num=1, pw=50))
    assert frames[0].array.shape == (54, 96, 3)
