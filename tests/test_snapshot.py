"""``video/snapshot``: the exact frame shown at t, on every codec/container fixture
(docs/BEHAVIOUR.md, "Which frame").

"What FFmpeg decodes" is :func:`media.reference_frames`, a sequential PyAV decode of the whole
file; "the frame shown at t" is picked from it by :func:`media.shown_at`.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import (
    ClipTruth,
    ceil_ms,
    counted_index,
    decode_image,
    keyframe_at_or_before,
    psnr,
    read_frame_number,
    reference_frames,
    shown_at,
)


def capture_times(truth: ClipTruth) -> list[int]:
    """The t (ms) to probe a clip at: 0, between frames, on and just before frame boundaries,
    mid-GOP, just before and exactly at each keyframe, the last frame, and past the end."""
    times = truth.times_ms()
    n = len(times)
    out = {0, 1}
    for k in (1, n // 3, n - 2):  # between two frames
        out.add(math.floor((times[k] + times[k + 1]) / 2))
    for k in (2, n // 2, n - 1):  # on a frame boundary (its first whole ms) and just before
        out.add(ceil_ms(truth.times[k]))
        out.add(ceil_ms(truth.times[k]) - 1)
    keys = list(truth.keyframes) + [n]
    for a, b in zip(keys, keys[1:], strict=False):  # mid-GOP and the frame before the next key
        mid = (a + b) // 2
        out.add(ceil_ms(truth.times[mid]))
        out.add(ceil_ms(truth.times[b - 1]))
    for k in truth.keyframes[1:]:  # just before / exactly at / just after a keyframe
        out.update(
            {ceil_ms(truth.times[k]) - 1, ceil_ms(truth.times[k]), ceil_ms(truth.times[k]) + 1}
        )
    end = math.floor(truth.duration_ms)
    out.update({end, end + 1, end + 5000, 10**9})  # past the end: the last frame
    return sorted(t for t in out if t >= 0)


def _expected(refs, index: int) -> dict:
    r = refs[index]
    return {"index": index, "number": r.number, "time_ms": ceil_ms(r.time), "keyframe": r.key}


def _got(img, path) -> dict:
    rgb = decode_image(img.data)
    try:
        number = read_frame_number(rgb)
    except ValueError as exc:
        number = f"unreadable ({exc})"
    index = counted_index(img, path) if img.index is not None or isinstance(number, int) else None
    return {"index": index, "number": number, "time_ms": img.time_ms, "keyframe": img.keyframe}


def test_exact_frame_at_many_times(ofn, any_clip: ClipTruth) -> None:
    refs = reference_frames(any_clip.path)
    mismatches = []
    for t in capture_times(any_clip):
        img = ofn.snapshot(any_clip.path, t=t, f="jpg")
        want, got = _expected(refs, shown_at(refs, t)), _got(img, any_clip.path)
        if want != got:
            mismatches.append(f"t={t}: expected {want}, got {got}")
        assert img.format == "jpg"
        assert (img.width, img.height) == any_clip.size
        assert img.score is None
    assert not mismatches, f"{any_clip.path.name}:\n" + "\n".join(mismatches)


def test_png_is_pixel_identical(ofn, any_clip: ClipTruth) -> None:
    """PNG at the source size is bit for bit the reference rgb24 conversion (max diff 0)."""
    refs = reference_frames(any_clip.path)
    n = any_clip.n_frames
    keys = any_clip.keyframes
    picks = {0, n - 1, n // 2, keys[-1], max(keys[-1] - 1, 0), min(keys[-1] + 1, n - 1)}
    for k in sorted(picks):
        t = ceil_ms(any_clip.times[k])
        img = ofn.snapshot(any_clip.path, t=t, f="png")
        assert img.format == "png" and img.data[:8] == b"\x89PNG\r\n\x1a\n"
        rgb = decode_image(img.data)
        assert counted_index(img, any_clip.path) == k
        diff = np.abs(rgb.astype(int) - refs[k].rgb).max()
        assert diff == 0, f"{any_clip.path.name} frame {k}: max abs diff {diff}"


def test_fast_returns_keyframe_at_or_before(ofn, any_clip: ClipTruth) -> None:
    refs = reference_frames(any_clip.path)
    mismatches = []
    for t in capture_times(any_clip):
        img = ofn.snapshot(any_clip.path, t=t, m="fast", f="jpg")
        want, got = _expected(refs, keyframe_at_or_before(refs, t)), _got(img, any_clip.path)
        if want != got:
            mismatches.append(f"t={t}: expected {want}, got {got}")
    assert not mismatches, f"{any_clip.path.name} m=fast:\n" + "\n".join(mismatches)
    last_key = any_clip.keyframes[-1]
    img = ofn.snapshot(any_clip.path, t=10**9, m="fast", f="jpg")
    assert img.keyframe and counted_index(img, any_clip.path) == last_key


def test_first_frame_of_offset_stream_is_at_zero(ofn, clip_ts_offset: ClipTruth) -> None:
    """The MPEG-TS fixture starts at pts 1.4 s; t is measured from its first frame."""
    assert clip_ts_offset.start == Fraction(7, 5)
    for t, want in ((0, 0), (39, 0), (40, 1), (1399, 34), (1400, 35), (2360, 59)):
        img = ofn.snapshot(clip_ts_offset.path, t=t, f="jpg")
        got = (counted_index(img, clip_ts_offset.path), read_frame_number(decode_image(img.data)))
        assert got == (want, want), t
        assert img.time_ms == 40 * want


def test_vfr_every_frame_boundary(ofn, clip_vfr: ClipTruth) -> None:
    """Each irregular frame: its first ms returns it, the ms before returns its predecessor."""
    refs = reference_frames(clip_vfr.path)
    for k in range(1, clip_vfr.n_frames):
        start = ceil_ms(clip_vfr.times[k])
        at, before = (ofn.snapshot(clip_vfr.path, t=t, f="jpg") for t in (start, start - 1))
        assert counted_index(at, clip_vfr.path) == k
        assert counted_index(before, clip_vfr.path) == shown_at(refs, start - 1)


@pytest.mark.parametrize("name", ["clip_h264_b", "clip_vfr", "clip_vp9", "clip_ts_offset"])
def test_time_ms_round_trips(ofn, name: str, request: pytest.FixtureRequest) -> None:
    """``snapshot(t=img.time_ms)`` returns the same frame (time_ms is rounded up)."""
    truth = request.getfixturevalue(name)
    step = max(1, truth.n_frames // 15)
    for k in range(0, truth.n_frames, step):
        t = math.floor(truth.times_ms()[k]) + 0  # inside frame k-1 or exactly on k
        img = ofn.snapshot(truth.path, t=t, f="jpg")
        again = ofn.snapshot(truth.path, t=img.time_ms, f="jpg")
        number = counted_index(img, truth.path)
        assert counted_index(again, truth.path) == number, f"t={t}: {number} at {img.time_ms} ms"
        assert img.time_ms == ceil_ms(truth.times[number])


def test_time_ms_rounds_up(ofn, clip_h264_b: ClipTruth) -> None:
    """Frame 1 of a 30 fps clip is at 33.33 ms: reported as 34, and t=33 is still frame 0."""
    assert ofn.snapshot(clip_h264_b.path, t=40, f="jpg").time_ms == 34
    assert ofn.snapshot(clip_h264_b.path, t=33, f="jpg").index == 0
    assert ofn.snapshot(clip_h264_b.path, t=34, f="jpg").index == 1
    assert ofn.snapshot(clip_h264_b.path, t=1000, f="jpg").time_ms == 1000


# --------------------------------------------------------------------------------------------
# ar: rotation


def test_ar_absent_keeps_stored_orientation(ofn, rotated_clip: ClipTruth) -> None:
    refs = reference_frames(rotated_clip.path)
    img = ofn.snapshot(rotated_clip.path, t=500, f="png")
    k = shown_at(refs, 500)
    assert (img.width, img.height) == rotated_clip.size
    assert np.array_equal(decode_image(img.data), refs[k].rgb)


def test_ar_auto_applies_rotation(ofn, rotated_clip: ClipTruth) -> None:
    """``ar=auto`` shows the frame as players do: ``np.rot90(stored, angle // 90)`` where angle
    is the display-matrix angle (counter-clockwise; checked against ffmpeg's autorotate in
    test_media_fixtures)."""
    refs = reference_frames(rotated_clip.path)
    for t in (0, 500, 967):
        k = shown_at(refs, t)
        img = ofn.snapshot(rotated_clip.path, t=t, f="png", ar="auto")
        want = np.rot90(refs[k].rgb, rotated_clip.rotation // 90)
        assert (img.height, img.width) == want.shape[:2]
        got = decode_image(img.data)
        assert np.array_equal(got, want), (
            f"t={t}: not np.rot90(frame, {rotated_clip.rotation // 90})"
        )
        assert img.index == k


def test_ar_auto_without_metadata_is_identity(ofn, clip_h264_b: ClipTruth) -> None:
    refs = reference_frames(clip_h264_b.path)
    img = ofn.snapshot(clip_h264_b.path, t=100, f="png", ar="auto")
    assert np.array_equal(decode_image(img.data), refs[shown_at(refs, 100)].rgb)


def _quarter_turns(got: np.ndarray, ref: np.ndarray) -> list[int]:
    return [
        k
        for k in range(4)
        if np.rot90(ref, k).shape == got.shape and np.array_equal(np.rot90(ref, k), got)
    ]


@pytest.mark.parametrize("name", ["clip_h264_b", "clip_rot270", "clip_rot90", "clip_rot180"])
def test_ar_w_and_h_force_orientation(ofn, name: str, request: pytest.FixtureRequest) -> None:
    """``ar=w`` gives landscape, ``ar=h`` portrait; the content is the frame turned by quarter
    turns (which way a frame is turned is ours to choose; the pixels must be exact). A frame
    that already has the asked orientation (from its stored layout, here always landscape) is
    not turned when it has no rotation metadata."""
    truth = request.getfixturevalue(name)
    refs = reference_frames(truth.path)
    k = shown_at(refs, 300)
    ref = refs[k].rgb
    wide = ofn.snapshot(truth.path, t=300, f="png", ar="w")
    tall = ofn.snapshot(truth.path, t=300, f="png", ar="h")
    assert wide.width > wide.height and tall.height > tall.width
    assert (wide.width, wide.height) == (truth.width, truth.height)
    assert (tall.width, tall.height) == (truth.height, truth.width)
    turns_w = _quarter_turns(decode_image(wide.data), ref)
    turns_h = _quarter_turns(decode_image(tall.data), ref)
    assert turns_w and set(turns_w) <= {0, 2}
    assert turns_h and set(turns_h) <= {1, 3}
    if truth.rotation == 0:
        assert turns_w == [0]
    assert wide.index == tall.index == k


def test_ar_limits_w_h_after_rotation(ofn, clip_rot270: ClipTruth) -> None:
    """w/h may not exceed the source size after ``ar`` rotation."""
    path = clip_rot270.path
    img = ofn.snapshot(path, t=0, f="jpg", ar="auto", w=108, h=192)
    assert (img.width, img.height) == (108, 192)
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshot(path, t=0, f="jpg", ar="auto", w=150)
    assert exc.value.param == "w"
    assert "108" in str(exc.value)
    img = ofn.snapshot(path, t=0, f="jpg", w=150)  # stored orientation: 192 wide
    assert (img.width, img.height) == (150, round(150 * 108 / 192))
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.snapshot(path, t=0, f="jpg", h=150)
    assert exc.value.param == "h"


# --------------------------------------------------------------------------------------------
# Sources and the generic entry points


def test_sources_agree(ofn, clip_h264_b: ClipTruth) -> None:
    """A str path, a pathlib.Path, bytes, a BytesIO and an open file give the same PNG."""
    path = clip_h264_b.path
    data = path.read_bytes()
    outs = {
        "str": ofn.snapshot(str(path), t=1234, f="png"),
        "Path": ofn.snapshot(Path(path), t=1234, f="png"),
        "bytes": ofn.snapshot(data, t=1234, f="png"),
        "BytesIO": ofn.snapshot(io.BytesIO(data), t=1234, f="png"),
    }
    with open(path, "rb") as fh:
        outs["file"] = ofn.snapshot(fh, t=1234, f="png")
    refs = reference_frames(path)
    k = shown_at(refs, 1234)
    for name, img in outs.items():
        assert img.index == k, name
        assert np.array_equal(decode_image(img.data), refs[k].rgb), name
        assert img.time_ms == ceil_ms(refs[k].time), name


def test_sources_agree_for_snapshots(ofn, clip_ts_offset: ClipTruth) -> None:
    path = clip_ts_offset.path
    data = path.read_bytes()
    want = [(i.index, i.time_ms) for i in ofn.snapshots(path, f="jpg", m="key")]
    assert want == [(k, ceil_ms(clip_ts_offset.times[k])) for k in clip_ts_offset.keyframes]
    assert [(i.index, i.time_ms) for i in ofn.snapshots(data, f="jpg", m="key")] == want
    with open(path, "rb") as fh:
        assert [(i.index, i.time_ms) for i in ofn.snapshots(fh, f="jpg", m="key")] == want


def test_process_without_saveas_returns_images(ofn, clip_h264_b: ClipTruth) -> None:
    refs = reference_frames(clip_h264_b.path)
    result = ofn.process(clip_h264_b.path, "video/snapshot,t_1500,f_png")
    assert isinstance(result, ofn.TaskResult) and result.ok and result.outputs == 1
    images = list(result.images)
    assert len(images) == 1
    assert images[0].index == shown_at(refs, 1500) == 45
    assert np.array_equal(decode_image(images[0].data), refs[45].rgb)
    images = list(ofn.process(clip_h264_b.path, "video/snapshot,t_1500,f_jpg,m_fast").images)
    assert [i.index for i in images] == [30]


def test_jpeg_quality_is_close(ofn, clip_smooth: ClipTruth) -> None:
    """JPEG output (quality 90) is close to the exact frame: PSNR >= 35 dB on smooth content
    (a neighbouring frame scores far lower), and it still shows the right number."""
    refs = reference_frames(clip_smooth.path)
    img = ofn.snapshot(clip_smooth.path, t=500, f="jpg")
    assert img.data[:3] == b"\xff\xd8\xff"
    rgb = decode_image(img.data)
    k = shown_at(refs, 500)
    assert read_frame_number(rgb) == k
    assert psnr(rgb, refs[k].rgb) >= 35
    assert psnr(rgb, refs[k].rgb) > psnr(rgb, refs[k + 1].rgb) + 3


def test_probe(ofn, any_clip: ClipTruth) -> None:
    info = ofn.probe(any_clip.path)
    expected_codec = {"libx264": "h264", "libx265": "hevc", "libvpx-vp9": "vp9", "mpeg4": "mpeg4"}
    assert info["codec"] == expected_codec[any_clip.codec]
    assert (info["width"], info["height"]) == any_clip.size
    assert info["frames"] == any_clip.n_frames
    assert info["keyframes_ms"] == [ceil_ms(any_clip.times[k]) for k in any_clip.keyframes]
    assert info["start_ms"] == pytest.approx(float(any_clip.start * 1000), abs=1)
    # rotation: the display matrix angle, counter-clockwise, normalised to 0..359 (ours)
    assert info["rotation"] == any_clip.rotation % 360
    assert info["cover_art"] is False
    last = float(any_clip.times_ms()[-1])
    assert last < info["duration_ms"] <= last + 1000 / float(any_clip.fps) + 1
    if any_clip.path.name != "vfr.mkv":
        assert info["fps"] == pytest.approx(float(any_clip.fps), rel=1e-3)


def test_shipped_sample(ofn, sample_mp4: Path) -> None:
    """The README's first command captures from ``examples/sample.mp4`` (25 fps, GOP 50)."""
    path = sample_mp4
    refs = reference_frames(path)
    img = ofn.snapshot(path, t=7000, f="png")
    assert img.index == 175 and img.time_ms == 7000
    assert np.array_equal(decode_image(img.data), refs[175].rgb)
    keys = [i.index for i in ofn.snapshots(path, f="jpg", m="key")]
    assert keys == [0, 50, 100, 150, 200]
