"""Session fixtures: every clip is generated once per test session into a temporary directory.

Each clip fixture returns the :class:`media.ClipTruth` read back from a sequential decode of the
written file; its docstring states what is in it. Frame ``i`` (presentation order) always shows
the number ``i`` (see ``tests/media.py``). Sizes are tiny on purpose: the whole suite must run
in a few minutes on two cores.
"""

from __future__ import annotations

import importlib.util
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import (
    ClipTruth,
    make_audio,
    make_audio_with_cover,
    make_clip,
    make_cover,
    make_two_video_streams,
    make_video_with_cover,
)

# Irregular frame durations (ms) of the variable-frame-rate fixture, repeated.
VFR_STEPS_MS = (10, 50, 33, 17, 100)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


# --------------------------------------------------------------------------------------------
# Video clips


@pytest.fixture(scope="session")
def clip_h264_b(media_dir: Path) -> ClipTruth:
    """H.264 in MP4, 192x108 yuv420p, 30 fps, 90 frames (3 s), GOP 30 (keyframes 0, 30, 60),
    2 B-frames between references (fixed pattern), constant rate: pts = i * 512 / 15360 s."""
    return make_clip(media_dir / "h264_b.mp4", n_frames=90, fps=30, gop=30, bframes=2)


@pytest.fixture(scope="session")
def clip_h264_long_gop(media_dir: Path) -> ClipTruth:
    """H.264 in MP4, 160x96, 30 fps, 300 frames (10 s), GOP 250 (keyframes 0 and 250 only),
    3 B-frames. Targets deep inside the first GOP need a long decode from keyframe 0."""
    return make_clip(
        media_dir / "h264_long_gop.mp4",
        n_frames=300,
        fps=30,
        gop=250,
        bframes=3,
        size=(160, 96),
    )


@pytest.fixture(scope="session")
def clip_hevc(media_dir: Path) -> ClipTruth:
    """HEVC (libx265) in MP4, 192x108, 24 fps, 60 frames, closed GOP 24 (keyframes 0, 24,
    48), 3 B-frames, constant rate."""
    return make_clip(
        media_dir / "hevc.mp4", codec="libx265", n_frames=60, fps=24, gop=24, bframes=3
    )


@pytest.fixture(scope="session")
def clip_hevc_open_gop(media_dir: Path) -> ClipTruth:
    """HEVC (libx265) in MP4, 192x108, 24 fps, 60 frames, OPEN GOP 24: frames 24 and 48 are
    CRA pictures (flagged keyframes by demuxer and decoder) and the 3 B-frames presented just
    before each CRA (21-23, 45-47) are decoded after it and reference the previous GOP."""
    params = "log-level=error:scenecut=0:open-gop=1:keyint=24:min-keyint=24:bframes=3:b-adapt=0"
    return make_clip(
        media_dir / "hevc_open_gop.mp4",
        codec="libx265",
        n_frames=60,
        fps=24,
        gop=24,
        bframes=3,
        options={"x265-params": params},
    )


@pytest.fixture(scope="session")
def clip_vp9(media_dir: Path) -> ClipTruth:
    """VP9 in WebM, odd size 193x109 yuv420p, 30 fps, 60 frames, GOP 30 (keyframes 0, 30).
    WebM stores ms timestamps: 0, 33, 67, 100, ... (rounded 1/30 s steps)."""
    return make_clip(
        media_dir / "vp9.webm",
        codec="libvpx-vp9",
        n_frames=60,
        fps=30,
        gop=30,
        size=(193, 109),
    )


@pytest.fixture(scope="session")
def clip_mpeg4(media_dir: Path) -> ClipTruth:
    """MPEG-4 Part 2 in MP4, 192x108, 25 fps, 60 frames, GOP 12, 2 B-frames. The encoder also
    makes the last frame an I-frame; ``keyframes`` in the truth is what the decoder flags."""
    return make_clip(media_dir / "mpeg4.mp4", codec="mpeg4", n_frames=60, fps=25, gop=12, bframes=2)


@pytest.fixture(scope="session")
def clip_mpeg4_avi(media_dir: Path) -> ClipTruth:
    """MPEG-4 Part 2 in AVI, 192x108, 25 fps, 50 frames, GOP 10, no B-frames; AVI time base
    1/25 (pts = frame number)."""
    return make_clip(
        media_dir / "mpeg4.avi",
        codec="mpeg4",
        container="avi",
        n_frames=50,
        fps=25,
        gop=10,
        bframes=0,
    )


@pytest.fixture(scope="session")
def clip_vfr(media_dir: Path) -> ClipTruth:
    """Variable frame rate: H.264 in Matroska, 192x108, 40 frames, time base 1/1000, frame
    durations cycling 10, 50, 33, 17, 100 ms (pts 0, 10, 60, 93, 110, 210, 220, ...), GOP 20
    (keyframes 0, 20), 2 B-frames. Nominal rate 30 fps is only a label."""
    pts = [0]
    for i in range(39):
        pts.append(pts[-1] + VFR_STEPS_MS[i % len(VFR_STEPS_MS)])
    return make_clip(
        media_dir / "vfr.mkv",
        container="matroska",
        n_frames=40,
        fps=30,
        gop=20,
        bframes=2,
        vfr_pts=pts,
        time_base=Fraction(1, 1000),
    )


@pytest.fixture(scope="session")
def clip_ts_offset(media_dir: Path) -> ClipTruth:
    """H.264 in MPEG-TS whose first timestamp is 1.4 s (pts 126000 in 1/90000), 192x108,
    25 fps (3600 ticks a frame), 60 frames, GOP 25 (keyframes 0, 25, 50), 2 B-frames.
    Times are measured from the first frame, so frame i is at i * 40 ms."""
    return make_clip(
        media_dir / "offset.ts",
        container="mpegts",
        n_frames=60,
        fps=25,
        gop=25,
        bframes=2,
        time_base=Fraction(1, 90000),
        start_pts=126000,
    )


@pytest.fixture(scope="session")
def clip_odd444(media_dir: Path) -> ClipTruth:
    """H.264 High 4:4:4 in MP4, odd size 321x241, yuv444p, 30 fps, 30 frames, GOP 15
    (keyframes 0, 15), 2 B-frames."""
    return make_clip(
        media_dir / "odd444.mp4",
        n_frames=30,
        fps=30,
        gop=15,
        bframes=2,
        size=(321, 241),
        pix_fmt="yuv444p",
    )


@pytest.fixture(scope="session")
def clip_odd420(media_dir: Path) -> ClipTruth:
    """H.264 in MP4, 318x178 yuv420p (not a multiple of 16: cropped macroblocks), 30 fps,
    30 frames, GOP 15, 2 B-frames."""
    return make_clip(
        media_dir / "odd420.mp4", n_frames=30, fps=30, gop=15, bframes=2, size=(318, 178)
    )


def _rotated(media_dir: Path, angle: int) -> ClipTruth:
    return make_clip(
        media_dir / f"rot{angle % 360}.mp4",
        n_frames=30,
        fps=30,
        gop=15,
        bframes=2,
        size=(192, 108),
        rotation=angle,
    )


@pytest.fixture(scope="session")
def clip_rot270(media_dir: Path) -> ClipTruth:
    """H.264 in MP4, stored 192x108, 30 frames, GOP 15, display matrix angle -90 (ffprobe
    ``rotation=-90``, the old ``rotate=90`` tag of a phone held upright): displayed 108x192,
    turned 90 degrees clockwise, i.e. ``np.rot90(frame, -1)``."""
    return _rotated(media_dir, -90)


@pytest.fixture(scope="session")
def clip_rot90(media_dir: Path) -> ClipTruth:
    """As ``clip_rot270`` but display matrix angle +90: displayed turned 90 degrees
    counter-clockwise, ``np.rot90(frame, 1)``."""
    return _rotated(media_dir, 90)


@pytest.fixture(scope="session")
def clip_rot180(media_dir: Path) -> ClipTruth:
    """As ``clip_rot270`` but display matrix angle 180: displayed upside down, 192x108."""
    return _rotated(media_dir, 180)


@pytest.fixture(scope="session")
def clip_cuts(media_dir: Path) -> ClipTruth:
    """H.264 in MP4, 192x108, 30 fps, 72 frames, GOP 36 (keyframes 0, 36), 2 B-frames, hard
    cuts at frames 12, 24, 36, 48, 60 (six scenes with very different luma layouts: waves,
    ramps left/right, stripes, checker, vertical ramp). Within a scene the dhash score of
    consecutive frames stays below ~30 %, across a cut it is ~40 % or more."""
    return make_clip(
        media_dir / "cuts.mp4",
        n_frames=72,
        fps=30,
        gop=36,
        bframes=2,
        scene_cuts=(12, 24, 36, 48, 60),
    )


@pytest.fixture(scope="session")
def clip_two_videos(media_dir: Path) -> Path:
    """MP4 with two H.264 video streams, 30 fps, 30 frames, GOP 10: stream 0 is 320x180 and
    shows the numbers 0..29, stream 1 is 480x270 and shows 1000..1029. FFmpeg's choice
    (``av_find_best_stream``, as ``ffmpeg -i file out.png``) is stream 1."""
    path = media_dir / "two_videos.mp4"
    make_two_video_streams(path)
    return path


@pytest.fixture(scope="session")
def clip_video_with_cover(media_dir: Path) -> Path:
    """MP4: a 192x108 H.264 video (30 frames, frame i shows i) and a 640x480 JPEG cover
    picture (attached picture)."""
    path = media_dir / "video_with_cover.mp4"
    make_video_with_cover(path)
    return path


@pytest.fixture(scope="session")
def clip_smooth(media_dir: Path) -> ClipTruth:
    """H.264 in MP4, 320x180, 25 fps, 25 frames, GOP 25, no noise (smooth waves, a moving
    square and the number blocks): resizes compare cleanly with an OpenCV reference."""
    return make_clip(
        media_dir / "smooth.mp4", n_frames=25, fps=25, gop=25, bframes=2, size=(320, 180), noise=0
    )


@pytest.fixture(scope="session")
def clip_long(media_dir: Path) -> ClipTruth:
    """H.264 in MP4, 160x96, 30 fps, 1500 frames (50 s), GOP 60, 2 B-frames, light noise: for
    the memory test (every frame through ``frames``/``snapshots``)."""
    return make_clip(
        media_dir / "long.mp4",
        n_frames=1500,
        fps=30,
        gop=60,
        bframes=2,
        size=(160, 96),
        noise=4,
    )


# Every frame-exactness clip; test modules parametrise over these names.
VIDEO_CLIPS = (
    "clip_h264_b",
    "clip_h264_long_gop",
    "clip_hevc",
    "clip_hevc_open_gop",
    "clip_vp9",
    "clip_mpeg4",
    "clip_mpeg4_avi",
    "clip_vfr",
    "clip_ts_offset",
    "clip_odd444",
    "clip_odd420",
    "clip_rot270",
    "clip_cuts",
)

ROTATED_CLIPS = ("clip_rot270", "clip_rot90", "clip_rot180")


@pytest.fixture(params=VIDEO_CLIPS)
def any_clip(request: pytest.FixtureRequest) -> ClipTruth:
    """Each frame-exactness clip in turn."""
    return request.getfixturevalue(request.param)


@pytest.fixture(params=ROTATED_CLIPS)
def rotated_clip(request: pytest.FixtureRequest) -> ClipTruth:
    """Each rotation-metadata clip in turn."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def sample_mp4() -> Path:
    """The shipped ``examples/sample.mp4`` (made by ``examples/make_sample.py``, used by the
    README): H.264 640x360, 25 fps, 250 frames (10 s), keyframes every 50 frames."""
    return Path(__file__).resolve().parent.parent / "examples" / "sample.mp4"


# --------------------------------------------------------------------------------------------
# Audio files


@pytest.fixture(scope="session")
def cover_rgb() -> np.ndarray:
    """The 120x90 cover picture embedded in the audio fixtures; it shows the number 7."""
    return make_cover((120, 90), number=7)


@pytest.fixture(scope="session")
def audio_flac_cover(media_dir: Path, cover_rgb: np.ndarray) -> Path:
    """1 s mono FLAC with a METADATA_BLOCK_PICTURE: PNG front cover 120x90 (number 7)."""
    path = media_dir / "cover.flac"
    make_audio_with_cover(path, "flac", cover_rgb, image_format="png")
    return path


@pytest.fixture(scope="session")
def audio_mp3_cover(media_dir: Path, cover_rgb: np.ndarray) -> Path:
    """1 s mono MP3 behind an ID3v2.3 tag with an APIC frame: JPEG front cover 120x90."""
    path = media_dir / "cover.mp3"
    make_audio_with_cover(path, "mp3", cover_rgb, image_format="jpg")
    return path


@pytest.fixture(scope="session")
def audio_m4a_cover(media_dir: Path, cover_rgb: np.ndarray) -> Path:
    """1 s mono AAC in MP4 (.m4a) with an attached_pic PNG stream (``covr``), 120x90."""
    path = media_dir / "cover.m4a"
    make_audio_with_cover(path, "m4a", cover_rgb, image_format="png")
    return path


COVER_FILES = ("audio_flac_cover", "audio_mp3_cover", "audio_m4a_cover")


@pytest.fixture(params=COVER_FILES)
def cover_file(request: pytest.FixtureRequest) -> Path:
    """Each audio file with cover art in turn."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def audio_plain(media_dir: Path) -> Path:
    """1 s mono FLAC without any picture: no video stream at all."""
    path = media_dir / "plain.flac"
    make_audio(path, "flac")
    return path


@pytest.fixture(scope="session")
def audio_plain_mp3(media_dir: Path) -> Path:
    """1 s mono MP3 without any picture."""
    path = media_dir / "plain.mp3"
    make_audio(path, "mp3")
    return path


# --------------------------------------------------------------------------------------------
# Bad media


@pytest.fixture(scope="session")
def empty_file(media_dir: Path) -> Path:
    """A zero-byte file named .mp4."""
    path = media_dir / "empty.mp4"
    path.write_bytes(b"")
    return path


@pytest.fixture(scope="session")
def random_file(media_dir: Path) -> Path:
    """64 KiB of random bytes named .mp4 (seeded)."""
    path = media_dir / "random.mp4"
    path.write_bytes(np.random.default_rng(1234).integers(0, 256, 65536, np.uint8).tobytes())
    return path


@pytest.fixture(scope="session")
def truncated_file(media_dir: Path, clip_h264_b: ClipTruth) -> Path:
    """The first 60 % of ``clip_h264_b``: the MP4 index (``moov``, written last) is missing."""
    data = clip_h264_b.path.read_bytes()
    path = media_dir / "truncated.mp4"
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


@pytest.fixture(scope="session")
def truncated_faststart(media_dir: Path) -> tuple[Path, ClipTruth]:
    """An MP4 with ``moov`` first (faststart), 60 frames 30 fps GOP 15, cut at 50 % of its
    bytes: the index lists every frame but the data of the later ones is missing (a partial
    download). Returns (truncated path, truth of the complete clip)."""
    truth = make_clip(
        media_dir / "faststart_full.mp4",
        n_frames=60,
        fps=30,
        gop=15,
        bframes=2,
        container_options={"movflags": "faststart"},
    )
    data = truth.path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "faststart did not move moov first"
    path = media_dir / "faststart_cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path, truth


@pytest.fixture(scope="session")
def corrupt_middle(media_dir: Path) -> tuple[Path, ClipTruth, int]:
    """MPEG-TS, H.264 without B-frames, 192x108, 25 fps, 90 frames, GOP 30 (keyframes 0, 30,
    60), first pts 1 s. 60 TS packets (11280 bytes) starting at the packet that carries frame
    45 are overwritten with random bytes. Frames 0..44 are intact; FFmpeg's sequential decode
    then resumes at keyframe 60. Returns (damaged path, truth of the intact clip, 45)."""
    import av

    truth = make_clip(
        media_dir / "corrupt_src.ts",
        container="mpegts",
        n_frames=90,
        fps=25,
        gop=30,
        bframes=0,
        time_base=Fraction(1, 90000),
        start_pts=90000,
    )
    with av.open(str(truth.path)) as c:
        positions = [p.pos for p in c.demux(video=0) if p.size]
    first_bad = 45
    start = positions[first_bad] - positions[first_bad] % 188
    data = bytearray(truth.path.read_bytes())
    garbage = np.random.default_rng(5).integers(0, 256, 188 * 60, np.uint8).tobytes()
    data[start : start + len(garbage)] = garbage
    path = media_dir / "corrupt_middle.ts"
    path.write_bytes(bytes(data))
    return path, truth, first_bad


# --------------------------------------------------------------------------------------------
# CUDA: one switch for every test marked ``cuda`` (torchcodec's conftest does the same)


def _cuda_missing() -> str | None:
    """Why CUDA tests cannot run here, or None when they can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False"
    return None


# The modules of the package's optional extras, for ``pytest.mark.needs("server")`` and the like.
EXTRA_MODULES = {
    "server": ("starlette", "anyio", "uvicorn", "httptools", "anycrc"),
    "ray": ("ray",),
    "torch": ("torch",),
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``needs(name, ...)`` (an extra of :data:`EXTRA_MODULES`, or a module) skips,
    with the reason, where one of those optional modules is not installed: each such test is
    one skip (a module-level ``importorskip`` would count a whole file as one).

    A test marked ``cuda`` (``@pytest.mark.cuda`` or a ``pytest.param(..., marks=...)``)
    skips where there is no CUDA device, and fails instead when ``OSSFRAME_REQUIRE_CUDA=1``, so
    a GPU run cannot pass by skipping its GPU tests."""
    for mark in item.iter_markers("needs"):
        modules = [m for name in mark.args for m in EXTRA_MODULES.get(name, (name,))]
        missing = [name for name in modules if importlib.util.find_spec(name) is None]
        if missing:
            pytest.skip(
                f"needs {', '.join(missing)}, not installed (the README's test command installs "
                "every package the tests use)"
            )
    if item.get_closest_marker("cuda") is None:
        return
    why = _cuda_missing()
    if why is None:
        return
    if os.environ.get("OSSFRAME_REQUIRE_CUDA") == "1":
        pytest.fail(f"OSSFRAME_REQUIRE_CUDA=1 but {why}", pytrace=False)
    pytest.skip(f"no CUDA device: {why} (set OSSFRAME_REQUIRE_CUDA=1 to make this a failure)")


# --------------------------------------------------------------------------------------------
# Child processes


@pytest.fixture(scope="session")
def child_env() -> dict[str, str]:
    """Environment for a child Python that imports the same ossframe_native as this one."""
    import ossframe_native

    package_parent = str(Path(ossframe_native.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return env


# --------------------------------------------------------------------------------------------
# Misc


@pytest.fixture(scope="session")
def ofn():
    """The package under test (imported lazily so media tests run without it)."""
    import ossframe_native

    return ossframe_native


def pytest_report_header(config: pytest.Config) -> list[str]:
    import av

    return [f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}, cpus {os.cpu_count()}"]
