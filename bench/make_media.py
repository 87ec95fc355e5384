"""Generates the benchmark clips with the FFmpeg CLI (idempotent: existing files stay).

``python bench/make_media.py`` writes into ``bench/media/`` (git-ignored):

* ``main_1080p_h264.mp4``: 1920x1080, 30 fps, 60 s, H.264 (x264 defaults: preset medium,
  CRF 23, B-frames), ``-g 60`` (a keyframe at least every 2 s) and a keyframe forced at every
  cut, made of the 7 very different segments of :data:`SEGMENTS` joined by hard cuts at frames
  that fall between whole seconds, with light temporal noise over everything
  (``noise=alls=8:allf=t``) so it is not trivially compressible.
* ``main_720p_hevc.mp4``: the same content scaled to 1280x720, HEVC (x265 preset veryfast),
  ``keyint=250:min-keyint=250``.
* ``uhd_2160p_h264.mp4``: 3840x2160, 30 fps, 10 s H.264 (x264 preset veryfast, ``-g 60``).
* ``batch/clip_NN.mp4``: 20 clips, 640x360, 30 fps, 5 s H.264, a different source each.
* ``cuts.json``: the truth: segments with their start times and frame numbers, the cut times.

Generation time on the idle 2-core machine: about 4 minutes (the 1080p clip 2.3, its HEVC
copy 0.7); several times that when other jobs share the cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

MEDIA = Path(__file__).resolve().parent / "media"
FPS = 30
NOISE = "noise=alls=8:allf=t"


def _over_blocks(texture: str, a: int, b: int, c: int) -> str:
    """A churning full-frame texture averaged with a static 9x8 grid of grey blocks.

    A texture alone (random cells) looks the same everywhere, so the left/right comparisons of
    a 9x8 dhash flip at random from second to second; over blocks whose neighbours always
    differ (by >= 79 levels: luma 40 + ((a*col + b*row) * c mod 180)) the coarse picture stays
    put while the fine texture keeps the segment heavy to encode and decode, which is how real
    footage behaves.
    """
    blocks = (
        f"color=c=black:s=9x8:r=30,format=gray,geq=lum='40+mod((X*{a}+Y*{b})*{c}\\,180)',"
        "scale=1920:1080:flags=neighbor,format=yuv420p"
    )
    return f"{texture},format=yuv420p[tex];{blocks}[blocks];[tex][blocks]blend=all_mode=average"


# (name, lavfi source at 1920x1080 30 fps, frames). Each segment looks nothing like the others.
# Every cut is a keyframe (forced, where x264's scene-cut detection might not place one) and
# restarts the 2 s GOP grid. The cut frames are chosen so that the benchmark targets fall where
# the benchmark's reference clip had them: t=37.3 s is 37 frames after its keyframe, and the six
# interval targets (0, 10, ..., 50 s) need about 120 frames decoded.
SEGMENTS: list[tuple[str, str, int]] = [
    ("testsrc2", "testsrc2=s=1920x1080:r=30", 276),
    ("mandelbrot, slow zoom", "mandelbrot=s=960x540:r=30:end_pts=3000,scale=1920:1080", 252),
    (
        "smptehdbars + moving box",
        "smptehdbars=s=1920x1080:r=30[bars];testsrc=s=320x240:r=30[box];"
        "[bars][box]overlay=x='mod(t*300,1600)':y='200+150*sin(t*2)'",
        224,
    ),
    ("colour spectrum, rotating hue", "colorspectrum=s=1920x1080:r=30,hue=H=0.3*t", 271),
    # The heaviest segment (random cells: ~3x the bitrate of the others); holds t=37.3 s.
    (
        "game of life over blocks",
        _over_blocks(
            "life=s=1920x1080:r=30:mold=10:ratio=0.1:life_color=#00ff00:death_color=#aa2020",
            a=7,
            b=3,
            c=37,
        ),
        157,
    ),
    (
        "cellular automaton over blocks",
        _over_blocks("cellauto=s=1920x1080:r=30:rule=110", a=5, b=4, c=53),
        290,
    ),
    ("sierpinski", "sierpinski=s=1920x1080:r=30:jump=1", 330),
]

MAIN = MEDIA / "main_1080p_h264.mp4"
HEVC = MEDIA / "main_720p_hevc.mp4"
UHD = MEDIA / "uhd_2160p_h264.mp4"
BATCH_DIR = MEDIA / "batch"
CUTS = MEDIA / "cuts.json"
BATCH_COUNT = 20

BATCH_SOURCES = [
    "testsrc2",
    "testsrc",
    "smptebars",
    "smptehdbars",
    "rgbtestsrc",
    "yuvtestsrc",
    "mandelbrot",
    "life=mold=10:ratio=0.2",
    "cellauto=rule=30",
    "cellauto=rule=110",
    "gradients=speed=0.05",
    "sierpinski",
    "testsrc2,edgedetect=mode=colormix",
    "pal75bars",
    "pal100bars",
    "testsrc2,hue=h=120",
    "smptebars,hflip,negate",
    "life=mold=25:ratio=0.5:life_color=#ffcc00",
    "cellauto=rule=90",
    "gradients=speed=0.2:c0=red:c1=blue",
]


def ffmpeg(*args: str) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True)


def _atomic(path: Path, build, quiet: bool = False) -> None:  # noqa: ANN001 - build(tmp)
    """Builds ``path`` through a temporary name, so an interrupted run leaves nothing half done."""
    if path.exists():
        if not quiet:
            print(f"exists: {path.relative_to(MEDIA.parent)}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    started = time.perf_counter()
    build(tmp)
    tmp.replace(path)
    print(f"made:   {path.relative_to(MEDIA.parent)} in {time.perf_counter() - started:.1f} s")


def segment_graph() -> str:
    """The filter graph: each segment from its lavfi source, trimmed, then concatenated + noise."""
    parts = []
    for i, (_, source, frames) in enumerate(SEGMENTS):
        chain = source
        for label in ("[box]", "[bars]", "[tex]", "[blocks]"):  # labels unique per segment
            chain = chain.replace(label, f"{label[:-1]}{i}]")
        parts.append(
            f"{chain},trim=end_frame={frames},setpts=PTS-STARTPTS,format=yuv420p,setsar=1[s{i}]"
        )
    inputs = "".join(f"[s{i}]" for i in range(len(SEGMENTS)))
    parts.append(f"{inputs}concat=n={len(SEGMENTS)}:v=1:a=0,{NOISE}[out]")
    return ";".join(parts)


def make_main(tmp: Path) -> None:
    ffmpeg(
        "-filter_complex",
        segment_graph(),
        "-map",
        "[out]",
        "-c:v",
        "libx264",
        "-g",
        str(2 * FPS),
        "-force_key_frames",
        "expr:" + "+".join(f"eq(n,{frame})" for frame in cut_frames()),
        "-pix_fmt",
        "yuv420p",
        "-r",
        str(FPS),
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(tmp),
    )


def make_hevc(tmp: Path) -> None:
    ffmpeg(
        "-i",
        str(MAIN),
        "-vf",
        "scale=1280:720",
        "-c:v",
        "libx265",
        "-preset",
        "veryfast",
        "-x265-params",
        "keyint=250:min-keyint=250:log-level=error",
        "-tag:v",
        "hvc1",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mp4",
        str(tmp),
    )


def make_uhd(tmp: Path) -> None:
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=3840x2160:r=30",
        "-t",
        "10",
        "-vf",
        f"format=yuv420p,{NOISE}",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        str(2 * FPS),
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mp4",
        str(tmp),
    )


def make_batch_clip(number: int, tmp: Path) -> None:
    head, _, tail = BATCH_SOURCES[number].partition(",")  # the source, then its filters
    sep = ":" if "=" in head else "="
    source = f"{head}{sep}s=640x360:r=30" + (f",{tail}" if tail else "")
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        source,
        "-t",
        "5",
        "-vf",
        f"scale=640:360,setsar=1,format=yuv420p,{NOISE}",
        "-r",
        str(FPS),
        "-c:v",
        "libx264",
        "-g",
        str(2 * FPS),
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mp4",
        str(tmp),
    )


def cut_frames() -> list[int]:
    """The first frame of every segment after the first."""
    starts = [0]
    for _, _, frames in SEGMENTS:
        starts.append(starts[-1] + frames)
    return starts[1:-1]


def truth() -> dict:
    """What ``cuts.json`` records: segment boundaries in frame numbers and in seconds."""
    segments, start = [], 0
    for name, source, frames in SEGMENTS:
        segments.append(
            {
                "name": name,
                "source": source,
                "first_frame": start,
                "frames": frames,
                "start_s": round(start / FPS, 6),
                "end_s": round((start + frames) / FPS, 6),
            }
        )
        start += frames
    cut_frames = [s["first_frame"] for s in segments[1:]]
    return {
        "clip": MAIN.name,
        "fps": FPS,
        "frames": start,
        "duration_s": start / FPS,
        "gop": 2 * FPS,
        "noise": NOISE,
        "segments": segments,
        "cut_frames": cut_frames,
        "cuts_s": [round(f / FPS, 6) for f in cut_frames],
        "hevc_clip": HEVC.name,
        "uhd_clip": UHD.name,
        "batch_clips": [f"batch/clip_{i:02d}.mp4" for i in range(BATCH_COUNT)],
    }


# -- joined recordings for bench/bench_remote.py (made on demand, not by main) ------------------

REMOTE_DIR = MEDIA / "remote"
REMOTE_FORMATS = {"mkv": "matroska", "ts": "mpegts"}


def remote_base(seconds: int, size: str) -> Path:
    """The clip the joined recordings are copied from: ``main_1080p_h264.mp4`` where it exists
    (60 s, 1080p), else testsrc2 with temporal noise, x264 veryfast, ``-g 60``, 2 B-frames."""
    if (seconds, size) == (60, "1920x1080") and MAIN.exists():
        return MAIN
    path = REMOTE_DIR / f"base_{size}_{seconds}s.mp4"

    def build(tmp: Path) -> None:
        ffmpeg(
            "-f", "lavfi", "-i", f"testsrc2=s={size}:r={FPS},{NOISE}", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-bf", "2",
            "-pix_fmt", "yuv420p", "-f", "mp4", str(tmp),
        )  # fmt: skip

    _atomic(path, build, quiet=True)
    return path


def remote_vfr_base(seconds: int, size: str) -> Path:
    """A variable-frame-rate clip, as phones record: the base's frames with an irregular
    pattern of them dropped (every 5th and every 7th), timestamps kept (Matroska)."""
    path = REMOTE_DIR / f"vfr_{size}_{seconds}s.mkv"

    def build(tmp: Path) -> None:
        ffmpeg(
            "-i", str(remote_base(seconds, size)), "-vf",
            "select='not(eq(mod(n\\,5)\\,2))*not(eq(mod(n\\,7)\\,3))'",
            "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "veryfast", "-g", "60",
            "-bf", "2", "-f", "matroska", str(tmp),
        )  # fmt: skip

    _atomic(path, build, quiet=True)
    return path


def joined(base: Path, copies: int, ext: str) -> Path:
    """``base`` stream-copied ``copies`` times into one file (the concat demuxer, ``-c copy``):
    a long recording joined the way recordings commonly are."""
    path = REMOTE_DIR / f"{base.stem}_x{copies}.{ext}"

    def build(tmp: Path) -> None:
        listing = tmp.with_suffix(".txt")
        listing.write_text(f"file '{base.resolve()}'\n" * copies)
        try:
            ffmpeg(
                "-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:v", "-c", "copy",
                "-f", REMOTE_FORMATS[ext], str(tmp),
            )  # fmt: skip
        finally:
            listing.unlink()

    _atomic(path, build, quiet=True)
    return path


def main(quiet: bool = False) -> int:
    """Makes every missing clip; ``quiet`` leaves out the lines for clips that exist."""
    if shutil.which("ffmpeg") is None:
        print("make_media: the ffmpeg CLI is not on PATH", file=sys.stderr)
        return 1
    MEDIA.mkdir(parents=True, exist_ok=True)
    _atomic(MAIN, make_main, quiet)
    _atomic(HEVC, make_hevc, quiet)
    _atomic(UHD, make_uhd, quiet)
    for i in range(BATCH_COUNT):
        build = lambda tmp, i=i: make_batch_clip(i, tmp)  # noqa: E731
        _atomic(BATCH_DIR / f"clip_{i:02d}.mp4", build, quiet)
    CUTS.write_text(json.dumps(truth(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
