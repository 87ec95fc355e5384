"""Hostile input: every failure is InvalidArgument or MediaError, work stays bounded, and the
store writes nowhere outside its root.

Each test pins one defect found by fuzzing (unknown codecs, streams that start mid-file, huge
times in fine time bases, tiny frames, huge ``num``, symbolic links in a store, over-long key
segments, extreme resize ratios); ``test_cli_sweep`` runs the media cases through the command
line, which may only exit 0, 2 or 3.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import (
    b64,
    ceil_ms,
    counted_index,
    keyframe_at_or_before,
    make_clip,
    read_frame_number,
    reference_frames,
    saveas,
    shown_at,
)

MAX_INT = 2**53 - 1
REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# Media fixtures


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def unknown_codec_mp4(hostile_dir: Path) -> Path:
    """An H.264 MP4 whose sample entry ``avc1`` is renamed ``zzzz``: no decoder knows it."""
    clip = make_clip(hostile_dir / "avc1.mp4", n_frames=6, fps=10)
    data = clip.path.read_bytes()
    entry = data.index(b"avc1", data.index(b"stsd"))
    path = hostile_dir / "zzzz.mp4"
    path.write_bytes(data[:entry] + b"zzzz" + data[entry + 4 :])
    return path


@pytest.fixture(scope="module")
def ts_stream_added(hostile_dir: Path) -> Path:
    """A 7 s MPEG-TS (70 frames at 10 fps, numbered 0..69) followed by a second TS program
    with new PIDs: its stream appears mid-file, after FFmpeg has finished probing."""
    first = make_clip(hostile_dir / "first.ts", container="mpegts", n_frames=70, fps=10, gop=10)
    pids = {"mpegts_start_pid": "0x300", "mpegts_pmt_start_pid": "0x1100"}
    second = make_clip(
        hostile_dir / "second.ts",
        container="mpegts",
        n_frames=10,
        fps=10,
        gop=10,
        container_options={**pids, "mpegts_service_id": "7"},
    )
    path = hostile_dir / "added.ts"
    path.write_bytes(first.path.read_bytes() + second.path.read_bytes())
    return path


@pytest.fixture(scope="module")
def nanosecond_mp4(hostile_dir: Path) -> Path:
    """An MP4 with a video timescale of 10**9 (10 frames at 10 fps, GOP 5)."""
    clip = make_clip(
        hostile_dir / "ns.mp4",
        n_frames=10,
        fps=10,
        gop=5,
        container_options={"video_track_timescale": "1000000000"},
    )
    assert clip.time_base == Fraction(1, 10**9)
    return clip.path


def _tiny_clip(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    """A 6-frame lossless clip of ``size``; returns the luma of each frame as written."""
    w, h = size
    rng = np.random.default_rng(5)
    lumas = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "gray"
        for i in range(6):
            luma = rng.integers(0, 256, (h, w), dtype=np.uint8)
            lumas.append(luma)
            frame = av.VideoFrame.from_ndarray(luma, format="gray")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return lumas


# --------------------------------------------------------------------------------------------
# Media: clear errors


def test_unknown_codec_is_a_media_error_naming_the_tag(ofn, unknown_codec_mp4: Path) -> None:
    for call in (
        lambda: ofn.snapshot(unknown_codec_mp4),
        lambda: ofn.probe(unknown_codec_mp4),
        lambda: list(ofn.snapshots(unknown_codec_mp4.read_bytes(), m="key")),
        lambda: list(ofn.frames(unknown_codec_mp4)),
    ):
        with pytest.raises(ofn.MediaError, match=r"codec \(tag 'zzzz', 0x7A7A7A7A\)"):
            call()


def test_stream_added_mid_file_indexes_what_can_be_read(ofn, ts_stream_added: Path) -> None:
    """PyAV cannot demux past a stream added mid-file: the frames before it are captured
    exactly, as for a damaged tail."""
    info = ofn.probe(ts_stream_added)
    assert info["frames"] == 70
    images = list(ofn.snapshots(ts_stream_added, f="png", inter=2000))
    assert [img.index for img in images] == [0, 20, 40, 60]
    numbers = [read_frame_number(_rgb(img.data)) for img in images]
    assert numbers == [0, 20, 40, 60]
    last = ofn.snapshot(ts_stream_added, t=MAX_INT, f="png")
    assert last.index in (69, None) and read_frame_number(_rgb(last.data)) == 69


def _rgb(data: bytes) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return bgr[:, :, ::-1]


@pytest.mark.parametrize("m", [None, "fast"])
def test_huge_time_in_a_nanosecond_time_base(ofn, nanosecond_mp4: Path, m: str | None) -> None:
    """t up to 2**53 - 1 ms is about 2**73 ticks of 1 ns: clamped, never an OverflowError."""
    refs = reference_frames(nanosecond_mp4)
    img = ofn.snapshot(nanosecond_mp4, t=MAX_INT, m=m, f="png")
    pick = shown_at if m is None else keyframe_at_or_before
    expected = pick(refs, MAX_INT)
    assert expected == (9 if m is None else 5)  # the last frame / the last keyframe (GOP 5)
    assert img.index == expected
    assert read_frame_number(_rgb(img.data)) == expected
    frames = list(ofn.frames(nanosecond_mp4, inter=MAX_INT))
    assert [fr.index for fr in frames] == [0]


@pytest.mark.parametrize(("seed", "case"), [(7, 550)])
def test_fuzz_cases_found_before(ofn, tmp_path: Path, seed: int, case: int) -> None:
    """Mutants that once escaped as other errors (550: an MPEG-2 frame swscale refuses to
    convert, which was av's OSError)."""
    import fuzz_media

    path = fuzz_media.replay(seed, case, tmp_path)
    for op in fuzz_media.OPERATIONS:
        outcome, message = fuzz_media._outcome(ofn, op, str(path))
        assert outcome in fuzz_media.ALLOWED, (op, message)


# --------------------------------------------------------------------------------------------
# dhash of frames under 9x8


def test_dhash_of_a_plane_under_9x8_is_its_upscale(ofn) -> None:
    from ossframe_native import kernels

    rng = np.random.default_rng(1)
    for h, w in [(8, 8), (1, 1), (3, 20), (20, 3), (7, 9), (2, 2)]:
        plane = rng.integers(0, 256, (h, w), dtype=np.uint8)
        upscaled = np.repeat(np.repeat(plane, 8 if h < 8 else 1, 0), 9 if w < 9 else 1, 1)
        assert kernels.dhash(plane) == kernels.dhash(upscaled), (h, w)
    # Strictly falling left to right: every 8/9-pixel cell is darker than the one on its left.
    falling = np.tile(np.arange(240, 0, -30, dtype=np.uint8), (8, 1))  # 8x8
    assert kernels.dhash(falling) == 2**64 - 1
    assert kernels.dhash(falling[:, ::-1].copy()) == 0
    assert kernels.dhash(np.full((1, 1), 77, np.uint8)) == 0


def test_dhash_mode_on_an_8x8_video(ofn, hostile_dir: Path) -> None:
    from ossframe_native import kernels

    lumas = _tiny_clip(hostile_dir / "tiny.mkv", (8, 8))
    images = list(ofn.snapshots(hostile_dir / "tiny.mkv", m="dhash", f="png"))
    hashes = [kernels.dhash(np.repeat(np.repeat(y, 8, 0), 9, 1)) for y in lumas]
    expected = [100.0] + [kernels.hash_distance(a, b) for a, b in itertools.pairwise(hashes)]
    assert [img.score for img in images] == expected
    assert [img.index for img in images] == list(range(6))


# --------------------------------------------------------------------------------------------
# avg with a huge num: work bounded by the video, outputs produced lazily


def test_avg_with_huge_num_starts_at_once(ofn, clip_h264_b) -> None:
    """num = 2**53 - 1: the first outputs come at once (90 frames: each frame repeats about
    10**14 times, encoded once)."""
    start = time.monotonic()
    images = ofn.snapshots(clip_h264_b.path, m="avg", num=MAX_INT, f="jpg")
    head = list(itertools.islice(images, 300))
    assert time.monotonic() - start < 30
    assert {img.index for img in head} == {0}
    assert len({id(img) for img in head}) == 1  # one encoded image, repeated
    frames = ofn.frames(clip_h264_b.path, m="avg", num=MAX_INT, w=32, h=32)
    assert [fr.index for fr in itertools.islice(frames, 5)] == [0] * 5


@pytest.mark.parametrize("num", [1, 2, 7, 89, 90, 91, 250])
@pytest.mark.parametrize("ss", [0, 1234])
def test_avg_counts_match_the_sample_times(ofn, clip_vfr, num: int, ss: int) -> None:
    """The plan gives exactly the frames shown at ss + k (D - ss) / num (a sample read in its
    GOP alone, as in the last GOP here, has no number in Matroska: its drawn one stands in)."""
    from ossframe_native.decode import VideoSource

    refs = reference_frames(clip_vfr.path)
    with VideoSource(clip_vfr.path) as src:
        duration = src.index.duration * 1000  # D: the end of the last frame, in ms
    assert ss < duration
    expected = [shown_at(refs, ss + (duration - ss) * k / num) for k in range(num)]
    images = list(ofn.frames(clip_vfr.path, m="avg", num=num, ss=ss))
    assert [counted_index(fr, clip_vfr.path) for fr in images] == expected
    assert [fr.time_ms for fr in images] == [ceil_ms(refs[n].time) for n in expected]


# --------------------------------------------------------------------------------------------
# Process strings


def test_leading_zeros_beyond_the_int_digit_limit(ofn) -> None:
    zeros = "0" * 5000
    assert ofn.parse_process(f"video/snapshot,t_{zeros}7,f_jpg").action.t == 7
    assert ofn.parse_process(f"video/snapshots,num_{zeros},f_jpg").action.num == 0
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.parse_process(f"video/snapshot,t_{zeros}{'9' * 17},f_jpg")
    assert exc.value.param == "t"


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        ("video/snapshots,thr_101,f_jpg,num_x", "thr"),
        ("video/snapshots,num_x,f_jpg,thr_101", "num"),
        ("video/snapshot,w_x,t_-1,f_gif", "w"),
        ("video/snapshot,f_gif,w_x", "f"),
        ("video/snapshots,scaletype_zoom,m_all,f_jpg", "scaletype"),
        ("video/snapshots,m_all,scaletype_zoom,f_jpg", "m"),
        ("video/snapshots,inter_1.5,zz_1,f_jpg", "inter"),
        ("video/snapshots,zz_1,inter_1.5,f_jpg", "zz"),
    ],
)
def test_first_invalid_parameter_as_written(ofn, spec: str, param: str) -> None:
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.parse_process(spec)
    assert exc.value.param == param


@pytest.mark.parametrize("param", ["t", "ss", "inter"])
def test_time_messages_say_milliseconds(ofn, param: str) -> None:
    action = "video/snapshot" if param == "t" else "video/snapshots"
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.parse_process(f"{action},{param}_{MAX_INT + 1},f_jpg")
    assert "(ms)" in str(exc.value)


SEGMENT_256 = "a" * 256


@pytest.mark.parametrize(
    ("tail", "param", "words"),
    [
        (f"|sys/saveas,b_{b64('bkt')},o_{b64('x_{what}.jpg')}", "o", "unknown variable"),
        (f"|sys/saveas,b_{b64('bkt')},o_{b64('x_{index.jpg')}", "o", "unclosed"),
        (f"|sys/saveas,b_{b64('Bucket')},o_{b64('x.jpg')}", "b", "lower-case"),
        (f"|sys/saveas,b_{b64('bkt')},o_{b64('../x.jpg')}", "o", "'..'"),
        (f"|sys/saveas,b_{b64('bkt')},o_{b64('/etc/x.jpg')}", "o", "absolute"),
        (f"|sys/saveas,b_{b64('bkt')},o_{b64('x' * 2008)}", "o", "1023"),
        (f"|sys/saveas,b_{b64('bkt')},o_{b64('d/' + SEGMENT_256)}", "o", "255"),
        (
            f"|sys/saveas,b_{b64('bkt')},o_{b64('o.jpg')}|notify,topic_{b64('../../x')}",
            "topic",
            "topic",
        ),
        (f"|notify,topic_{b64('t1')}", "notify", "needs sys/saveas"),
    ],
)
def test_parse_process_checks_saveas_and_notify(
    ofn, tmp_path: Path, clip_h264_b, tail: str, param: str, words: str
) -> None:
    """parse_process refuses what process refuses before decoding, with the same message."""
    spec = "video/snapshot,f_jpg" + tail
    with pytest.raises(ofn.InvalidArgument) as parsed:
        ofn.parse_process(spec)
    assert parsed.value.param == param and words in str(parsed.value)
    with pytest.raises(ofn.InvalidArgument) as ran:
        ofn.process(clip_h264_b.path, spec, store=ofn.LocalStore(tmp_path))
    assert str(ran.value) == str(parsed.value)
    assert not any(tmp_path.iterdir())  # nothing written


def test_key_of_1023_bytes_with_a_long_segment(ofn, tmp_path: Path) -> None:
    """A key that validates can be written: a segment over 255 bytes is refused up front."""
    from ossframe_native.store import validate_key

    too_long = ("x" * 200 + "/") * 3 + "y" * 420  # 1023 bytes, last segment 420
    with pytest.raises(ofn.InvalidArgument, match="255 bytes per name"):
        validate_key(too_long)
    fits = ("x" * 255 + "/") * 3 + "y" * 255  # 1023 bytes, segments of 255
    assert len(fits.encode()) == 1023
    store = ofn.LocalStore(tmp_path)
    assert store.put("bkt", fits, b"data") == 4
    assert store.get("bkt", fits) == b"data"


# --------------------------------------------------------------------------------------------
# Store records never follow a symbolic link out of the root


@pytest.mark.parametrize("planted", ["file", "notify_dir", "tasks_dir"])
def test_records_never_follow_symlinks(ofn, tmp_path: Path, clip_h264_b, planted: str) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    if planted == "file":
        (root / ".notify").mkdir()
        (root / ".notify" / "t1.jsonl").symlink_to(outside / "t1.jsonl")
    elif planted == "notify_dir":
        (root / ".notify").symlink_to(outside, target_is_directory=True)
    else:
        (root / ".tasks").symlink_to(outside, target_is_directory=True)
    spec = saveas("bkt", "f{index}.jpg", "video/snapshot,f_jpg") + f"/notify,topic_{b64('t1')}"
    result = ofn.process(clip_h264_b.path, spec, store=ofn.LocalStore(root))
    assert result.state == "Succeeded" and result.keys == ["f1.jpg"]
    assert list(outside.iterdir()) == []  # nothing written outside the root
    if planted == "tasks_dir":
        assert result.notify["delivered"] is True
        assert any("not recorded" in note and "symbolic link" in note for note in result.notes)
    else:
        assert result.notify["delivered"] is False
        assert "symbolic link" in result.notify["error"]


# --------------------------------------------------------------------------------------------
# Area resize at extreme ratios


@pytest.mark.parametrize("ratio", [129, 1000, 16385, 33333, 100000])
@pytest.mark.parametrize("channels", [1, 3])
def test_area_resize_extreme_ratios_match_cv2(ratio: int, channels: int) -> None:
    """Random data (a constant image hides a wrong weighting); within 1 level of INTER_AREA."""
    import cv2

    from ossframe_native import _native

    rng = np.random.default_rng(ratio)
    for dst_w in (1, 3):
        src = rng.integers(0, 256, (2, ratio * dst_w + 17, channels), dtype=np.uint8)
        for image in (src, np.ascontiguousarray(src.transpose(1, 0, 2))):
            h, w = image.shape[:2]
            out_h, out_w = (1, dst_w) if w > h else (dst_w, 1)
            dst = np.zeros((out_h, out_w, channels), np.uint8)
            _native.resize(image, (0.0, 0.0, float(w), float(h)), dst, "area")
            ref = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)
            diff = np.abs(dst.astype(int) - ref.reshape(dst.shape)).max()
            assert diff <= 1, (ratio, channels, image.shape, dst.ravel(), ref.ravel())


def test_area_resize_extreme_ratio_yuv(ofn) -> None:
    """The YUV->RGB kernel shares the resampler: a 1x40000 gray row still averages right."""
    from ossframe_native import kernels

    rng = np.random.default_rng(3)
    y = rng.integers(16, 236, (2, 40000), dtype=np.uint8)
    u = np.full((1, 20000), 128, np.uint8)
    dst = np.zeros((1, 2, 3), np.uint8)
    kernels.yuv420_to_rgb_into((y, u, u.copy()), (0, 0, 40000, 2), dst, full_range=True)
    means = y.reshape(2, 2, 20000).mean(axis=(0, 2))
    assert np.abs(dst[0, :, 0].astype(float) - means).max() <= 1.0


# --------------------------------------------------------------------------------------------
# The command line: only exit 0, 2 (InvalidArgument) or 3 (MediaError) on hostile input


def test_cli_sweep(
    hostile_dir: Path, unknown_codec_mp4: Path, ts_stream_added: Path, nanosecond_mp4: Path
) -> None:
    _tiny_clip(hostile_dir / "tiny8.mkv", (8, 8))
    zeros = "0" * 4400
    cases = [
        (["probe", str(unknown_codec_mp4)], 3),
        (["process", str(unknown_codec_mp4), "video/snapshot,f_jpg"], 3),
        (["probe", str(ts_stream_added)], 0),
        (["process", str(ts_stream_added), "video/snapshots,f_jpg,m_key"], 0),
        (["process", str(nanosecond_mp4), "video/snapshot,f_jpg,t_10000000000000"], 0),
        (["process", str(nanosecond_mp4), f"video/snapshot,f_jpg,t_{MAX_INT}"], 0),
        (["process", str(hostile_dir / "tiny8.mkv"), "video/snapshots,f_jpg,m_dhash"], 0),
        (["process", str(nanosecond_mp4), f"video/snapshot,f_jpg,t_{zeros}1"], 0),
        (["process", str(nanosecond_mp4), f"video/snapshot,f_jpg,t_{zeros}1{'0' * 20}"], 2),
        (["process", str(nanosecond_mp4), "video/snapshots,f_jpg,m_avg,num_0"], 2),
        (["process", str(nanosecond_mp4), f"video/snapshot,f_jpg|notify,topic_{b64('t')}"], 2),
    ]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    for i, (args, status) in enumerate(cases):
        extra = ["-o", str(hostile_dir / f"cli{i}.jpg")] if args[0] == "process" else []
        run = subprocess.run(
            [sys.executable, "-m", "ossframe_native.cli", *args, *extra],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert run.returncode == status, (args[:2], run.returncode, run.stderr[-500:])
        if status:
            assert run.stderr.startswith(("ossframe: InvalidArgument:", "ossframe: MediaError:")), (
                run.stderr[-500:]
            )
        elif args[0] == "probe":
            assert json.loads(run.stdout)["frames"] == 70
