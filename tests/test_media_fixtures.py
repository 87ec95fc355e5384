"""The generated media are what their fixtures say, checked against plain PyAV.

These tests do not touch ossframe_native: they make sure the ground truth the other test
modules rely on (frame numbers, keyframes, timestamps, rotation, covers, damage) is right.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import ROTATED_CLIPS, VFR_STEPS_MS, VIDEO_CLIPS
from media import (
    CODE_H,
    CODE_W,
    MAX_NUMBER,
    PICT_B,
    UnreadableFrame,
    decode_image,
    dhash_bits,
    dhash_score,
    draw_number,
    read_frame_number,
    reference_frames,
    render_frame,
    shown_at,
)

ALL_VIDEO = tuple(dict.fromkeys(VIDEO_CLIPS + ROTATED_CLIPS + ("clip_smooth",)))


@pytest.mark.parametrize("name", ALL_VIDEO)
def test_every_frame_shows_its_index(name: str, request: pytest.FixtureRequest) -> None:
    truth = request.getfixturevalue(name)
    refs = reference_frames(truth.path)
    assert [r.number for r in refs] == list(range(truth.n_frames))
    assert [r.time for r in refs] == sorted(r.time for r in refs)
    assert refs[0].time == 0
    # the decoder's key flags agree with the demuxer's (the engine reads the latter)
    assert truth.packet_keyframes == len(truth.keyframes)
    assert refs[0].rgb.shape == (truth.height, truth.width, 3)
    assert refs[0].luma.shape == (truth.height, truth.width)


EXPECTED = {
    # name: (size, n_frames, keyframes, has B-frames, codec name as PyAV decodes it)
    "clip_h264_b": ((192, 108), 90, (0, 30, 60), True, "h264"),
    "clip_h264_long_gop": ((160, 96), 300, (0, 250), True, "h264"),
    "clip_hevc": ((192, 108), 60, (0, 24, 48), True, "hevc"),
    "clip_hevc_open_gop": ((192, 108), 60, (0, 24, 48), True, "hevc"),
    "clip_vp9": ((193, 109), 60, (0, 30), False, "vp9"),
    "clip_mpeg4": ((192, 108), 60, None, True, "mpeg4"),
    "clip_mpeg4_avi": ((192, 108), 50, (0, 10, 20, 30, 40), False, "mpeg4"),
    "clip_vfr": ((192, 108), 40, (0, 20), True, "h264"),
    "clip_ts_offset": ((192, 108), 60, (0, 25, 50), True, "h264"),
    "clip_odd444": ((321, 241), 30, (0, 15), True, "h264"),
    "clip_odd420": ((318, 178), 30, (0, 15), True, "h264"),
    "clip_rot270": ((192, 108), 30, (0, 15), True, "h264"),
    "clip_cuts": ((192, 108), 72, (0, 36), True, "h264"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_clip_truth_matches_docstring(name: str, request: pytest.FixtureRequest) -> None:
    truth = request.getfixturevalue(name)
    size, n, keys, has_b, codec = EXPECTED[name]
    assert truth.size == size
    assert truth.n_frames == n
    if keys is not None:
        assert truth.keyframes == keys
    else:  # MPEG-4: every 12th frame, plus the encoder's own choices
        assert set(range(0, n, 12)) <= set(truth.keyframes)
    assert (truth.b_frames > 0) == has_b
    with av.open(str(truth.path)) as c:
        assert c.streams.video[0].codec_context.name == codec


def test_long_gop_is_long(clip_h264_long_gop) -> None:
    keys = clip_h264_long_gop.keyframes
    assert max(b - a for a, b in zip(keys, keys[1:], strict=False)) >= 250


def test_open_gop_has_leading_pictures(clip_hevc_open_gop) -> None:
    """Frames 21-23 are presented before CRA 24 but decoded after it."""
    with av.open(str(clip_hevc_open_gop.path)) as c:
        stream = c.streams.video[0]
        order = [p.pts for p in c.demux(stream) if p.size]
    tb = Fraction(stream.time_base)
    frame_of = {pts: round(pts * tb * 24) for pts in order}
    decode_order = [frame_of[p] for p in order]
    cra = decode_order.index(24)
    assert set(decode_order[cra + 1 : cra + 4]) == {21, 22, 23}


def test_pixel_formats(clip_odd444, clip_odd420, clip_vp9) -> None:
    for truth, fmt in ((clip_odd444, "yuv444p"), (clip_odd420, "yuv420p"), (clip_vp9, "yuv420p")):
        with av.open(str(truth.path)) as c:
            assert c.streams.video[0].codec_context.pix_fmt == fmt


def test_vfr_timestamps(clip_vfr) -> None:
    steps = [b - a for a, b in zip(clip_vfr.times, clip_vfr.times[1:], strict=False)]
    expected = [Fraction(VFR_STEPS_MS[i % len(VFR_STEPS_MS)], 1000) for i in range(39)]
    assert steps == expected


def test_ts_first_timestamp_is_not_zero(clip_ts_offset) -> None:
    assert clip_ts_offset.start == Fraction(7, 5)
    assert clip_ts_offset.times[:3] == (0, Fraction(1, 25), Fraction(2, 25))
    with av.open(str(clip_ts_offset.path)) as c:
        assert c.format.name == "mpegts"


def test_constant_rate_times(clip_h264_b, clip_mpeg4_avi, clip_vp9) -> None:
    assert list(clip_h264_b.times) == [Fraction(i, 30) for i in range(90)]
    assert list(clip_mpeg4_avi.times) == [Fraction(i, 25) for i in range(50)]
    # WebM keeps ms: the time of frame i is round(i * 1000 / 30) ms
    vp9_ms = [round(Fraction(i * 1000, 30)) for i in range(60)]
    assert list(clip_vp9.times) == [Fraction(ms, 1000) for ms in vp9_ms]


@pytest.mark.parametrize("name", ROTATED_CLIPS)
def test_rotation_metadata(name: str, request: pytest.FixtureRequest) -> None:
    truth = request.getfixturevalue(name)
    angle = {"clip_rot270": -90, "clip_rot90": 90, "clip_rot180": 180}[name]
    assert truth.rotation % 360 == angle % 360
    assert all(r.rotation == truth.rotation for r in reference_frames(truth.path))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI not installed")
@pytest.mark.parametrize("name", ROTATED_CLIPS)
def test_rotation_as_ffmpeg_displays_it(name: str, request: pytest.FixtureRequest, tmp_path):
    """ffmpeg's autorotate shows the stored frame as ``np.rot90(frame, angle // 90)``; the
    ``ar=auto`` tests use the same rule."""
    truth = request.getfixturevalue(name)
    out = tmp_path / "first.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(truth.path), "-frames:v", "1", str(out)],
        check=True,
        timeout=60,
    )
    shown = decode_image(out.read_bytes())
    ref = reference_frames(truth.path)[0].rgb
    assert np.array_equal(shown, np.rot90(ref, truth.rotation // 90))


def test_read_frame_number_round_trip() -> None:
    base = render_frame(0, 0, (160, 96))
    for number in (*range(0, 64), 1000, 2047, 2048, 4000, MAX_NUMBER):
        frame = base.copy()
        draw_number(frame, number)
        assert read_frame_number(frame) == number
        ok, buf = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])
        assert ok
        assert read_frame_number(decode_image(buf.tobytes())) == number


def test_read_frame_number_rejects_damage() -> None:
    frame = render_frame(5, 1234, (192, 108))
    assert read_frame_number(frame) == 1234
    grey = frame.copy()
    grey[20:28, 20:28] = 128  # the middle of one block
    with pytest.raises(UnreadableFrame):
        read_frame_number(grey)
    swapped = frame.copy()  # a data row no longer the inverse of its guard row
    swapped[2 * 16 : 3 * 16, 0:16] = swapped[0:16, 0:16]
    with pytest.raises(UnreadableFrame):
        read_frame_number(swapped)
    for bad in (
        np.zeros((108, 192, 3), np.uint8),
        np.full((108, 192, 3), 255, np.uint8),
        np.random.default_rng(0).integers(0, 256, (108, 192, 3), np.uint8),
        np.rot90(frame).copy(),
    ):
        with pytest.raises(UnreadableFrame):
            read_frame_number(bad)
    with pytest.raises(UnreadableFrame):
        read_frame_number(frame[: CODE_H - 1, :CODE_W])


def test_shown_at_rule(clip_h264_b) -> None:
    refs = reference_frames(clip_h264_b.path)
    assert shown_at(refs, 0) == 0
    assert shown_at(refs, 33) == 0  # frame 1 is at 33.33 ms
    assert shown_at(refs, 34) == 1
    assert shown_at(refs, 1000) == 30  # exactly on a frame
    assert shown_at(refs, 999) == 29
    assert shown_at(refs, 10**9) == 89


def test_dhash_reference_matches_imagehash() -> None:
    """On a 9x8 input the grid cells are single pixels; imagehash's dhash sets bit = right >
    left, ours (docs/BEHAVIOUR.md) left > right, so with no equal neighbours one is the other
    inverted."""
    import imagehash
    from PIL import Image

    rng = np.random.default_rng(3)
    for _ in range(20):
        row = rng.permutation(256)[:72].astype(np.uint8).reshape(8, 9)
        ours = dhash_bits(row)
        theirs = imagehash.dhash(Image.fromarray(row, mode="L"), hash_size=8).hash
        assert np.array_equal(ours, ~theirs)
    # pinned values: a left-to-right falling ramp sets every bit, a rising one none
    ramp = np.tile(np.arange(180, 0, -1, dtype=np.uint8), (40, 1))
    assert dhash_bits(ramp).all()
    assert not dhash_bits(ramp[:, ::-1]).any()
    assert dhash_score(dhash_bits(ramp), dhash_bits(ramp[:, ::-1])) == 100.0


def test_cut_clip_separates_cuts(clip_cuts) -> None:
    refs = reference_frames(clip_cuts.path)
    hashes = [dhash_bits(r.luma) for r in refs]
    scores = [dhash_score(a, b) for a, b in zip(hashes, hashes[1:], strict=False)]
    cut_scores = [scores[c - 1] for c in clip_cuts.scene_cuts]
    other = [s for i, s in enumerate(scores, start=1) if i not in clip_cuts.scene_cuts]
    assert min(cut_scores) >= 35, cut_scores
    assert max(other) < 30, other
    assert min(other) > 0  # frames move: thr 0 keeps (almost) all, a high thr only the cuts


def test_audio_covers(cover_file, cover_rgb) -> None:
    with av.open(str(cover_file)) as c:
        assert c.streams.audio
        (vs,) = c.streams.video
        assert vs.disposition & av.stream.Disposition.attached_pic
        frames = list(c.decode(vs))
    assert len(frames) == 1
    rgb = frames[0].to_ndarray(format="rgb24")
    assert rgb.shape == cover_rgb.shape
    assert read_frame_number(rgb) == 7
    if frames[0].format.name.startswith("rgb"):  # PNG covers are lossless
        assert np.array_equal(rgb, cover_rgb)


def test_plain_audio_has_no_video(audio_plain, audio_plain_mp3) -> None:
    for path in (audio_plain, audio_plain_mp3):
        with av.open(str(path)) as c:
            assert c.streams.audio and not c.streams.video


def test_bad_files_are_bad(empty_file, random_file, truncated_file) -> None:
    for path in (empty_file, random_file, truncated_file):
        with pytest.raises(av.FFmpegError):  # noqa: SIM117
            with av.open(str(path)) as c:
                list(c.decode(video=0))


def test_truncated_faststart_keeps_a_prefix(truncated_faststart) -> None:
    path, truth = truncated_faststart
    refs = reference_frames(path, strict=False)
    numbers = [r.number for r in refs]
    assert 5 <= len(refs) < truth.n_frames
    assert numbers[:5] == list(range(5))


def test_corrupt_middle_damage(corrupt_middle) -> None:
    path, truth, first_bad = corrupt_middle
    refs = reference_frames(path, strict=False)
    numbers = [r.number for r in refs]
    assert numbers[:first_bad] == list(range(first_bad))
    assert first_bad not in numbers
    after = [n for n in numbers[first_bad:]]
    assert after and all(n is None or n >= first_bad for n in after)
    assert 60 in numbers  # FFmpeg resumes at the next keyframe
    assert truth.keyframes == (0, 30, 60)
    assert all(r.pict_type != PICT_B for r in reference_frames(truth.path))


def test_shipped_sample(sample_mp4: Path) -> None:
    """``examples/sample.mp4`` (made by ``examples/make_sample.py``) is what its script says."""
    path = sample_mp4
    assert path.stat().st_size < 1_000_000
    refs = reference_frames(path)
    assert [r.number for r in refs] == list(range(250))
    assert [i for i, r in enumerate(refs) if r.key] == [0, 50, 100, 150, 200]
    assert refs[0].rgb.shape == (360, 640, 3)
    assert refs[-1].time == Fraction(249, 25)
