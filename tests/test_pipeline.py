"""The capture pipeline: which video stream is read, errors at the call, one metadata rule for
every front end, and the decoder statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media import ClipTruth, decode_image, read_frame_number

import ossframe_native as ofn
from ossframe_native import decode, pipeline
from ossframe_native.index import DecodeStats
from ossframe_native.params import SnapshotRequest, SnapshotsRequest

# --------------------------------------------------------------------------------------------
# Which video stream


def test_two_video_streams_capture_ffmpegs_choice(ofn, clip_two_videos: Path) -> None:
    """Stream 0 is 320x180 (numbers 0..29), stream 1 480x270 (numbers 1000..1029); FFmpeg's
    av_find_best_stream (and the ffmpeg tool) pick stream 1, and so does every front end."""
    info = ofn.probe(clip_two_videos)
    assert info["stream"] == 1 and (info["width"], info["height"]) == (480, 270)
    sizes = [(s["index"], s["type"], s["width"], s["height"]) for s in info["streams"]]
    assert sizes == [(0, "video", 320, 180), (1, "video", 480, 270)]
    assert [s["used"] for s in info["streams"]] == [False, True]
    img = ofn.snapshot(clip_two_videos, t=500, f="png")
    assert (img.width, img.height, img.index) == (480, 270, 15)
    assert read_frame_number(decode_image(img.data)) == 1015
    key = list(ofn.snapshots(clip_two_videos, f="png", m="key"))
    assert [read_frame_number(decode_image(i.data)) for i in key] == [1000, 1010, 1020]
    arrays = list(ofn.frames(clip_two_videos, m="avg", num=3))
    assert [read_frame_number(f.array) for f in arrays] == [1000 + f.index for f in arrays]
    assert all(f.array.shape == (270, 480, 3) for f in arrays)


def test_cover_picture_is_not_chosen_over_a_video(ofn, clip_video_with_cover: Path) -> None:
    info = ofn.probe(clip_video_with_cover)
    covers = [s for s in info["streams"] if s["cover_art"]]
    assert len(covers) == 1 and (covers[0]["width"], covers[0]["height"]) == (640, 480)
    assert not info["cover_art"] and info["stream"] != covers[0]["index"]
    assert (info["width"], info["height"], info["frames"]) == (192, 108, 30)
    img = ofn.snapshot(clip_video_with_cover, t=400, f="png")
    assert (img.width, img.height, img.index) == (192, 108, 12)
    assert read_frame_number(decode_image(img.data)) == 12


# --------------------------------------------------------------------------------------------
# Errors at the call


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any decode fails the test: what is checked here must fail before decoding starts."""

    def refuse(self, runs):
        raise AssertionError("decoding started before the request was resolved")

    monkeypatch.setattr(decode.VideoSource, "decode", refuse)


def test_ss_past_the_end_raises_at_the_call(ofn, clip_h264_b: ClipTruth, no_decoding) -> None:
    """snapshots/frames raise InvalidArgument when called, not when the iterator is consumed."""
    calls = {
        "snapshots": lambda: ofn.snapshots(clip_h264_b.path, f="jpg", ss=999999),
        "snapshots_dhash": lambda: ofn.snapshots(clip_h264_b.path, m="dhash", ss=999999),
        "frames": lambda: ofn.frames(clip_h264_b.path, ss=999999),
        "frames_batch": lambda: ofn.frames_batch(clip_h264_b.path, m="key", ss=999999),
        "process": lambda: ofn.process(clip_h264_b.path, "video/snapshots,f_jpg,ss_999999"),
    }
    for name, call in calls.items():
        with pytest.raises(ofn.InvalidArgument) as exc:
            call()  # no list(): the call itself raises
        assert exc.value.param == "ss", name
        assert "3000" in str(exc.value), name


def test_saveas_task_raises_invalid_argument_before_writing(
    ofn, clip_h264_b: ClipTruth, tmp_path: Path, no_decoding
) -> None:
    from media import saveas

    spec = saveas("my-bucket", "x/{index}.jpg", "video/snapshots,f_jpg,m_key,ss_5000")
    with pytest.raises(ofn.InvalidArgument) as exc:
        ofn.process(clip_h264_b.path, spec, store=tmp_path)
    assert exc.value.param == "ss"
    assert not (tmp_path / "my-bucket").exists()


def test_ar_bound_is_checked_before_the_target_is_decoded(ofn, clip_rot270: ClipTruth) -> None:
    """The rotation is read up front (first keyframe), so w past the rotated width fails in
    open_capture, with no output decoded."""
    request = SnapshotRequest(t=900, w=150, ar="auto")
    with pytest.raises(ofn.InvalidArgument) as exc:
        pipeline.open_capture(clip_rot270.path, request)
    assert exc.value.param == "w" and "108" in str(exc.value)
    with pipeline.open_capture(clip_rot270.path, SnapshotRequest(t=900, ar="auto")) as run:
        assert run.rotation == 270
        assert run.geometry.canvas == (108, 192)
        assert run.stats.frames_decoded == 1  # the first keyframe, for the rotation


# --------------------------------------------------------------------------------------------
# One metadata rule for every front end


@pytest.mark.parametrize(
    "spec",
    [
        dict(m="key"),
        dict(m="default", inter=700, ss=250),
        dict(m="avg", num=7),
        dict(m="dhash", inter=100, num=4),
    ],
)
def test_image_and_frame_report_the_same(ofn, clip_h264_b: ClipTruth, spec) -> None:
    images = list(ofn.snapshots(clip_h264_b.path, f="png", **spec))
    frames = list(ofn.frames(clip_h264_b.path, **spec))
    assert images and len(images) == len(frames)
    for image, frame in zip(images, frames, strict=True):
        assert (image.index, image.time_ms, image.keyframe, image.score) == (
            frame.index,
            frame.time_ms,
            frame.keyframe,
            frame.score,
        )
        assert np.array_equal(decode_image(image.data), frame.array)


def test_snapshot_index_is_the_stream_number(ofn, clip_h264_b: ClipTruth) -> None:
    """A snapshot indexes only its GOP; its index is still the frame's number in the stream,
    the same number frames() reports for that frame."""
    for t in (0, 1500, 2999):
        image = ofn.snapshot(clip_h264_b.path, t=t, f="png")
        (frame,) = ofn.frames(clip_h264_b.path, ss=t, num=1)
        assert (image.index, image.time_ms, image.keyframe) == (
            frame.index,
            frame.time_ms,
            frame.keyframe,
        )


# --------------------------------------------------------------------------------------------
# Decoder statistics


def _stats(path, request) -> tuple[DecodeStats, int]:
    with pipeline.open_capture(path, request) as run:
        outputs = list(run.outputs())
        return run.stats, len(outputs)


def test_decode_stats_on_a_known_clip(clip_h264_b: ClipTruth) -> None:
    """clip_h264_b: 90 frames, keyframes 0, 30, 60 (GOP 30, 2 B-frames)."""
    stats, n = _stats(clip_h264_b.path, SnapshotRequest(t=0))
    assert n == 1
    assert (stats.frames_decoded, stats.packets_fed, stats.runs) == (1, 1, 1)
    stats, n = _stats(clip_h264_b.path, SnapshotRequest(t=1000))  # frame 30, a keyframe
    assert (n, stats.frames_decoded, stats.packets_fed) == (1, 1, 1)
    stats, n = _stats(clip_h264_b.path, SnapshotsRequest(m="key"))
    assert n == 3
    assert (stats.frames_decoded, stats.packets_fed, stats.runs) == (3, 3, 3)
    assert stats.parallel_runs == 3  # lone keyframes go to parallel decoders
    stats, n = _stats(clip_h264_b.path, SnapshotsRequest())  # every frame
    assert n == 90
    assert (stats.frames_decoded, stats.packets_fed, stats.runs) == (90, 90, 1)


def test_collect_stats_sees_the_captures_of_the_public_calls(clip_h264_b: ClipTruth) -> None:
    """What the benchmarks read: the statistics of every capture a public call opens."""
    from ossframe_native.pipeline import collect_stats

    with collect_stats() as stats:
        ofn.snapshot(clip_h264_b.path, t=0, f="png")
        keyframes = list(ofn.snapshots(clip_h264_b.path, m="key", f="png"))
    assert [s.frames_decoded for s in stats] == [1, 3] and len(keyframes) == 3
    with collect_stats() as stats:
        pass
    assert stats == []


def test_decode_stats_count_skipped_frames_out(clip_h264_b: ClipTruth) -> None:
    """Frame 15 needs the references from keyframe 0 on, not the B-frames nobody refers to:
    fewer frames are decoded than packets fed."""
    stats, n = _stats(clip_h264_b.path, SnapshotRequest(t=500))
    assert n == 1
    assert 1 < stats.frames_decoded < stats.packets_fed <= 18


def test_planner_and_index_import_no_pyav() -> None:
    """The frame index and the planner are plain data and pure functions: no PyAV."""
    import subprocess
    import sys

    code = (
        "import sys, ossframe_native.plan, ossframe_native.index\n"
        "assert 'av' not in sys.modules, 'PyAV imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------------
# Repeated outputs (avg with num above the frame count)


@pytest.mark.parametrize("ahead", [0, 2])
def test_a_repeated_frame_is_rendered_once(clip_h264_b: ClipTruth, ahead: int) -> None:
    """avg num=270 on 90 frames: every frame is output 3 times, as one Output object, and
    ``mapped`` calls its function once per frame (the result is handed out again)."""
    request = SnapshotsRequest(m="avg", num=270)
    with pipeline.open_capture(clip_h264_b.path, request) as run:
        assert run.plan.frames == tuple(range(90)) and run.plan.repeats == (3,) * 90
        calls: list[int] = []

        def rendered(output: pipeline.Output) -> tuple[int, np.ndarray]:
            calls.append(output.index)
            return output.index, run.render(output)

        results = list(run.mapped(rendered, ahead=ahead))
    assert calls == list(range(90))
    assert [number for number, _ in results] == [i // 3 for i in range(270)]
    assert all(results[i] is results[i - i % 3] for i in range(270))
    assert [read_frame_number(results[i][1]) for i in range(0, 270, 27)] == list(range(0, 90, 9))


def test_ml_frames_reuse_the_array_of_a_repeated_frame(ofn, clip_h264_b: ClipTruth) -> None:
    frames = list(ofn.frames(clip_h264_b.path, m="avg", num=180, w=64, h=36))
    assert [fr.index for fr in frames] == [i // 2 for i in range(180)]
    assert all(frames[i].array is frames[i + 1].array for i in range(0, 180, 2))
    assert frames[0].array is not frames[2].array
