"""Issue 4's benchmark: ossframe_native against the tools users would pick instead.

One command runs every comparison of the issue's target table and writes ``bench/RESULTS.md``::

    python bench/run.py --runs 5          # the full run (about 13 minutes on 2 cores)
    python bench/run.py --quick           # 1 run each, slowest competitors left out
    python bench/run.py --only snapshot interval --runs 3   # some tasks only

``--quick`` and ``--only`` write ``bench/out/RESULTS-partial.md`` instead, so a partial run never
replaces the committed results.

How it measures (STYLE habit 9: verify, then time):

* The media comes from ``bench/make_media.py`` (run first if missing); ``bench/media/cuts.json``
  is the truth about the main clip (segments, cut frames).
* Every task first runs each side once, untimed, and checks the outputs: the frame numbers
  (ours from ``Image.index``, checked against the frame the SPEC asks for; every output image,
  ours and the competitor's, is matched by mean squared error against reference renderings of
  the expected frame and its neighbours, which identifies the frame it shows), the sizes, and
  for scene detection the cuts found within +-1 s. PSNR ours vs theirs is reported, not
  checked (resize filters differ). A failed check marks the row "not met".
* Then each side runs ``--runs`` times, the order of the sides rotated every repetition
  (A B C, B C A, ...); a row shows the median and [min-max].
* The floor of a task: the frames that must be decoded (decode order, from the keyframe at or
  before each target up to the target; targets in one GOP share it) times the per-frame decode
  cost measured on this clip (one threaded PyAV decode of the whole clip, averaged per segment),
  plus converting + resizing + encoding each output (measured with the native fused kernel and
  OpenCV's JPEG encoder). Keyframes decode independently, so the ``m_key`` floor is their
  measured single-threaded decode work plus the outputs' work, divided by the cores.
* Frames decoded by the engine: its own counter ``VideoSource.decoded``, summed over the
  sources a call opens (found by wrapping ``VideoSource.__init__`` during the untimed
  verification run only).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MEDIA = BENCH / "media"
OUT = BENCH / "out"
sys.path.insert(0, str(ROOT))  # the engine from this checkout, installed or not

import make_media  # noqa: E402  (bench/ is on sys.path: this script's folder)

MAIN = make_media.MAIN
HEVC = make_media.HEVC
UHD = make_media.UHD
W, H = 800, 600  # the output size of the tasks
# An output image is identified among the expected frame's neighbours and some frames further
# off (catching a tool that returns another moment of the clip).
NEAR = (-2, -1, 1, 2)
FAR = (-150, -30, -10, 10, 30, 150)
FFMPEG_JPG_Q = "2"  # mjpeg qscale for the ffmpeg CLI (about our JPEG quality 90)

TORCHCODEC_NOTE = (
    "`pip install torchcodec` (0.17.0, the only wheel the index offers) installs next to the CPU "
    "build of torch 2.13 but cannot be imported: `from torchcodec.decoders import VideoDecoder` "
    "fails with `OSError: libnvrtc.so.13: cannot open shared object file` because "
    "`libtorchcodec_core*.so` link `libtorch_cuda.so`, `libc10_cuda.so` and `libnvrtc.so.13`. "
    "On a CPU-only machine torchcodec is therefore not a competitor; it was uninstalled again."
)


# ----------------------------------------------------------------------------------------------
# Timing


@dataclass
class Stats:
    """Wall-clock seconds of repeated runs."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def lo(self) -> float:
        return min(self.times)

    @property
    def hi(self) -> float:
        return max(self.times)

    def text(self, unit: str = "s") -> str:
        scale, fmt = {"s": (1.0, "{:.3f}"), "ms": (1e3, "{:.2f}"), "us": (1e6, "{:.1f}")}[unit]
        med, lo, hi = (fmt.format(v * scale) for v in (self.median, self.lo, self.hi))
        return f"{med} {unit} [{lo}–{hi}]"


def wall(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def alternate(cases: dict[str, Callable[[], object]], runs: int) -> dict[str, Stats]:
    """Runs every case ``runs`` times, rotating their order each repetition; medians + spread."""
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(runs):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(wall(cases[name]))
    return {name: Stats(values) for name, values in times.items()}


def per_call(fn: Callable[[], object], budget_s: float = 0.2) -> Callable[[], float]:
    """A case for :func:`alternate_per_call`: the mean seconds of one call over ~budget_s."""
    fn()
    calls = 1
    while True:
        spent = wall(lambda n=calls: [fn() for _ in range(n)])
        if spent >= budget_s / 4 or calls >= 1 << 20:
            break
        calls *= 4
    calls = max(1, int(calls * budget_s / max(spent, 1e-9)))

    def measure() -> float:
        return wall(lambda: [fn() for _ in range(calls)]) / calls

    return measure


def alternate_per_call(cases: dict[str, Callable[[], object]], runs: int) -> dict[str, Stats]:
    """Like :func:`alternate`, for kernels: each sample is the mean of many calls."""
    measures = {name: per_call(fn) for name, fn in cases.items()}
    names = list(measures)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(runs):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(measures[name]())
    return {name: Stats(values) for name, values in times.items()}


# ----------------------------------------------------------------------------------------------
# Clips: packets, keyframes and the frames a target needs (demuxing only, no decoding)


@dataclass
class Clip:
    """The packets of a clip's video stream; frames are numbered in presentation order."""

    path: Path
    fps: Fraction
    pts: np.ndarray  # presentation order
    decode_pos: np.ndarray  # presentation order -> decode position
    packet_pts: np.ndarray  # decode order
    packet_key: np.ndarray  # decode order
    time_base: Fraction
    width: int
    height: int
    segments: list[tuple[str, int, int]] = field(default_factory=list)  # (name, first, end)

    @classmethod
    def load(cls, path: Path) -> Clip:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            pts, keys = [], []
            for packet in container.demux(stream):
                if packet.size:
                    pts.append(packet.pts)
                    keys.append(bool(packet.is_keyframe))
            packet_pts = np.asarray(pts, dtype=np.int64)
            order = np.argsort(packet_pts, kind="stable")
            return cls(
                path=path,
                fps=Fraction(stream.average_rate),
                pts=packet_pts[order],
                decode_pos=order,
                packet_pts=packet_pts,
                packet_key=np.asarray(keys, dtype=bool),
                time_base=Fraction(stream.time_base),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
            )

    def __len__(self) -> int:
        return len(self.pts)

    def time_s(self, n: int) -> Fraction:
        return (int(self.pts[n]) - int(self.pts[0])) * self.time_base

    def frame_at(self, t_ms: int) -> int:
        """The frame shown at t (greatest time <= t), as the SPEC defines it."""
        limit = int(self.pts[0]) + Fraction(t_ms, 1000) / self.time_base
        return max(int(np.searchsorted(self.pts, int(limit // 1), side="right")) - 1, 0)

    def keyframes(self) -> list[int]:
        return [int(n) for n in np.flatnonzero(self.packet_key[self.decode_pos])]

    def needed(self, frames: list[int]) -> set[int]:
        """Decode positions from the keyframe at or before each frame up to that frame."""
        positions: set[int] = set()
        for n in frames:
            pos = int(self.decode_pos[n])
            start = pos
            while start > 0 and not (
                self.packet_key[start] and self.packet_pts[start] <= self.pts[n]
            ):
                start -= 1
            positions.update(range(start, pos + 1))
        return positions

    def segment_of(self, n: int) -> int:
        for i, (_, first, end) in enumerate(self.segments):
            if first <= n < end:
                return i
        return 0


def main_segments(truth: dict, clip: Clip) -> list[tuple[str, int, int]]:
    """Segments of cuts.json in this clip's frame numbers (same content, same frame count)."""
    assert len(clip) == truth["frames"], f"{clip.path.name}: {len(clip)} frames, not 1800"
    return [
        (s["name"], s["first_frame"], s["first_frame"] + s["frames"]) for s in truth["segments"]
    ]


# ----------------------------------------------------------------------------------------------
# Floors: measured decode costs and output costs


@dataclass
class Floor:
    """Measured costs the floors are made of."""

    segment_ms: list[float]  # threaded decode, ms per frame, per segment
    full_decode_s: float
    keyframe_ms: float | None = None  # per keyframe, only keyframe packets fed
    keyframes_s: float | None = None
    keyframes_serial_s: float | None = None  # each keyframe alone, single-threaded decoder
    output_ms: dict[tuple[int, int], float] = field(default_factory=dict)  # (w, h) -> ms

    def decode_s(self, clip: Clip, positions: set[int]) -> float:
        presentation = np.argsort(clip.decode_pos)  # decode position -> frame number
        return sum(self.segment_ms[clip.segment_of(int(presentation[p]))] for p in positions) / 1e3

    def task_s(self, clip: Clip, frames: list[int], outputs: int, size: tuple[int, int]) -> float:
        return self.decode_s(clip, clip.needed(frames)) + outputs * self.output_ms[size] / 1e3


def measure_decode(clip: Clip) -> Floor:
    """One threaded decode of the whole clip; per-segment ms/frame from frame arrival times."""
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        started = time.perf_counter()
        arrivals = [time.perf_counter() for _ in container.decode(stream)]
    arrivals_np = np.asarray(arrivals) - started
    segment_ms = []
    for _, first, end in clip.segments:
        before = arrivals_np[first - 1] if first else 0.0
        segment_ms.append(float((arrivals_np[end - 1] - before) / (end - first) * 1e3))
    return Floor(segment_ms=segment_ms, full_decode_s=float(arrivals_np[-1]))


def measure_keyframe_decode(clip: Clip) -> tuple[float, int]:
    """Seconds to decode every keyframe, feeding only keyframe packets to a threaded decoder."""
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        count = 0
        started = time.perf_counter()
        for packet in container.demux(stream):
            if packet.size and packet.is_keyframe:
                count += len(ctx.decode(packet))
        count += len(ctx.decode(None))
        return time.perf_counter() - started, count


def measure_keyframes_serial(clip: Clip) -> float:
    """Seconds to decode every keyframe alone on one single-threaded decoder (the CPU work)."""
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        ctx.thread_count = 1
        packets = [p for p in container.demux(stream) if p.size and p.is_keyframe]
        started = time.perf_counter()
        for packet in packets:
            ctx.decode(packet)
            ctx.decode(None)
            ctx.flush_buffers()
        return time.perf_counter() - started


def measure_output_ms(frame: av.VideoFrame, size: tuple[int, int]) -> float:
    """ms to convert + resize (our fused native kernel) and JPEG-encode one output."""
    from ossframe_native import _native

    y, u, v = planes(frame)
    dst = np.empty((size[1], size[0], 3), dtype=np.uint8)
    crop = (0.0, 0.0, float(frame.width), float(frame.height))

    def one() -> None:
        _native.yuv420_to_rgb(y, u, v, crop, dst, "bt601", False, True, "auto")
        cv2.imencode(".jpg", dst, [cv2.IMWRITE_JPEG_QUALITY, 90])

    return per_call(one, 0.3)() * 1e3


def planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-copy (H, W) views of the Y, U, V planes of a yuv420p frame."""
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        views.append(rows[:, : plane.width])
    return views[0], views[1], views[2]


def decode_frame(path: Path, number: int) -> av.VideoFrame:
    """Frame ``number`` (presentation order) by a plain sequential decode."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == number:
                return frame
    raise IndexError(number)


# ----------------------------------------------------------------------------------------------
# Verification: which frame does an output image show?


def reference_frames(clip: Clip, numbers: set[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Gray renderings at ``size`` (INTER_AREA) of the given frames, by one sequential decode."""
    refs: dict[int, np.ndarray] = {}
    last = max(numbers)
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in numbers:
                bgr = cv2.resize(
                    frame.to_ndarray(format="bgr24"), size, interpolation=cv2.INTER_AREA
                )
                refs[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            if i >= last:
                break
    return refs


def around(frames: list[int], far: bool = True) -> set[int]:
    """The frames to render references of: each frame, its neighbours and (far) further ones."""
    offsets = (0, *NEAR, *(FAR if far else ()))
    return {n + d for n in frames for d in offsets if n + d >= 0}


def read_jpg(data: bytes | Path) -> np.ndarray:
    raw = data.read_bytes() if isinstance(data, Path) else data
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image")
    return image


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))


def identify(image: np.ndarray, refs: dict[int, np.ndarray], expected: int) -> tuple[int, bool]:
    """Which frame the image shows, among the references around ``expected``; (frame, twin).

    The error of a rendering pipeline (resize filter, JPEG) is common to every candidate, so
    the frame-to-frame differences (motion, the clip's temporal noise) decide the closest
    reference. Where the encoder made another candidate a near copy of the expected frame
    (static content, skipped blocks), the image counts as the expected frame (a "twin") when
    its error to the expected reference is nearer the best one's than the best one's plus the
    distance between the two references (the midpoint rule), or when the two references differ
    by less than a tenth of the pipeline's error (no image could tell them apart).
    """
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    errors = {
        n: mse(gray, refs[n])
        for n in (expected + d for d in (0, *NEAR, *FAR))
        if n in refs and refs[n].shape == gray.shape
    }
    best = min(errors, key=errors.__getitem__)
    if best != expected and expected in errors:
        gap = mse(refs[expected], refs[best])
        if errors[expected] - errors[best] < gap / 2 or gap < errors[best] / 10:
            return expected, True
    return best, False


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class Checks:
    """Verification results of one task: every check is kept, failures make the row fail."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed: list[str] = []

    def check(self, ok: bool, text: str) -> bool:
        self.lines.append(("" if ok else "FAILED: ") + text)
        if not ok:
            self.failed.append(text)
        return ok

    def frames(
        self,
        who: str,
        images: list[np.ndarray],
        expected: list[int],
        refs: dict[int, np.ndarray],
        size: tuple[int, int] | None = (W, H),
    ) -> None:
        """Count, size and identity of a side's output images."""
        if not self.check(
            len(images) == len(expected), f"{who}: {len(images)} images, {len(expected)} expected"
        ):
            return
        if size is not None:
            sizes = {(im.shape[1], im.shape[0]) for im in images}
            self.check(sizes == {size}, f"{who}: sizes {sorted(sizes)}, expected {size}")
        shown = [identify(im, refs, n) for im, n in zip(images, expected, strict=True)]
        wrong = [(n, s) for n, (s, _) in zip(expected, shown, strict=True) if n != s]
        twins = sum(twin for _, twin in shown)
        self.check(
            not wrong,
            f"{who}: every image shows its expected frame"
            + (f" ({twins} matched a near-identical twin)" if twins else "")
            if not wrong
            else f"{who}: images show frames {wrong[:5]} (expected, shown)",
        )

    def similar(self, who: str, ours: list[np.ndarray], theirs: list[np.ndarray]) -> None:
        """PSNR between the two sides' images, for information: resize filters differ (and
        alias differently on one-pixel patterns), so the identity check decides."""
        values = [psnr(a, b) for a, b in zip(ours, theirs, strict=False) if a.shape == b.shape]
        if values:
            self.lines.append(f"PSNR ours vs {who} {min(values):.1f}–{max(values):.1f} dB")

    def text(self) -> str:
        return "; ".join(self.lines)


# ----------------------------------------------------------------------------------------------
# Counting the engine's decoded frames (documented monkeypatch)


def counted(fn: Callable[[], Any]) -> tuple[Any, int | None]:
    """Runs ``fn``; returns its result and the frames the engine's decoders returned meanwhile.

    The engine counts them itself, per source: ``VideoSource.decoded`` (frames the decoder was
    told to skip are not returned, so not counted). The harness keeps every ``VideoSource``
    made during the call by wrapping ``__init__`` (untimed runs only) and sums their counters;
    None when the engine has no such counter.
    """
    from ossframe_native.decode import VideoSource

    sources: list[Any] = []
    original = VideoSource.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        sources.append(self)

    VideoSource.__init__ = init  # type: ignore[method-assign]
    try:
        result = fn()
    finally:
        VideoSource.__init__ = original  # type: ignore[method-assign]
    if not sources or not all(hasattr(src, "decoded") for src in sources):
        return result, None
    return result, sum(src.decoded for src in sources)


# ----------------------------------------------------------------------------------------------
# Competitors: one small function per tool and task


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True
    )


def ffmpeg_snapshot(src: Path, t_s: str, out: Path) -> None:
    """One exact frame: ``-ss`` before ``-i`` seeks to the keyframe and decodes up to t."""
    ffmpeg(
        "-ss", t_s, "-i", str(src), "-frames:v", "1", "-s", f"{W}x{H}", "-q:v", FFMPEG_JPG_Q,
        str(out),
    )  # fmt: skip


def ffmpeg_fps(src: Path, every_s: int, folder: Path) -> None:
    """Interval capture with the fps filter (decodes every frame).

    ``round=up``: plain ``fps=1/10`` outputs, per 10 s tick, the last frame that rounds to it,
    i.e. the frames at 4.97 s, 14.97 s, ... (verified: not the SPEC's frames); rounding up
    makes tick k end on the frame at k * 10 s, the frame shown there.
    """
    ffmpeg(
        "-i", str(src), "-vf", f"fps=1/{every_s}:round=up", "-s", f"{W}x{H}", "-q:v", FFMPEG_JPG_Q,
        str(folder / "out%03d.jpg"),
    )  # fmt: skip


def ffmpeg_ss_loop(src: Path, times_s: list[str], folder: Path) -> None:
    """Interval capture as one ``ffmpeg -ss T`` process per target."""
    for i, t in enumerate(times_s, 1):
        ffmpeg_snapshot(src, t, folder / f"out{i:03d}.jpg")


def ffmpeg_keyframes(src: Path, folder: Path) -> None:
    """Every keyframe: ``-skip_frame nokey`` makes the decoder drop the other frames."""
    ffmpeg(
        "-skip_frame", "nokey", "-i", str(src), "-vsync", "0", "-s", f"{W}x{H}",
        "-q:v", FFMPEG_JPG_Q, str(folder / "out%03d.jpg"),
    )  # fmt: skip


def pyav_seek_each(src: Path, times_ms: list[int]) -> list[bytes]:
    """Plain PyAV the obvious way: per target seek, decode up to it, convert, resize, encode."""
    outputs = []
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base
        start = stream.start_time or 0
        for t in times_ms:
            target = start + int(Fraction(t, 1000) / tb)
            container.seek(target, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts >= target:
                    break
            bgr = cv2.resize(frame.to_ndarray(format="bgr24"), (W, H))
            outputs.append(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return outputs


def pyav_full_decode(src: Path) -> int:
    """Plain threaded PyAV: decode every frame, nothing else."""
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def scenedetect_cuts(src: Path, detector_name: str) -> list[float]:
    """PySceneDetect with default settings, OpenCV backend; the cut times in seconds."""
    import scenedetect

    detector = getattr(scenedetect, detector_name)()
    scenes = scenedetect.detect(str(src), detector, backend="opencv")
    return [float(start.seconds) for start, _ in scenes[1:]]


def ours_cli_command() -> list[str]:
    exe = shutil.which("ossframe")
    return [exe] if exe else [sys.executable, "-m", "ossframe_native.cli"]


def run_ours_cli(src: Path, spec: str, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(
        [*ours_cli_command(), "process", str(src), spec, "-o", str(out)], check=True, env=env
    )


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def jpgs(folder: Path) -> list[np.ndarray]:
    return [read_jpg(p) for p in sorted(folder.glob("*.jpg"))]


# ----------------------------------------------------------------------------------------------
# Rows of RESULTS.md


@dataclass
class Row:
    task: str
    competitor: str
    ours: Stats | None
    theirs: Stats | None
    target: str
    met: bool | None  # None: informational row, no target
    floor_s: float | None = None
    frames: str = ""  # "decoded / output (must decode)"
    verified: str = ""
    notes: str = ""
    unit: str = "s"
    ours_text: str = ""  # shown instead of the ours time (memory)

    @property
    def speedup(self) -> float | None:
        if self.ours is None or self.theirs is None:
            return None
        return self.theirs.median / self.ours.median


def speed_target(row: Row, at_least: float) -> bool:
    return row.speedup is not None and row.speedup >= at_least


def ratio_target(row: Row, at_most: float) -> bool:
    return row.speedup is not None and 1 / row.speedup <= at_most


@dataclass
class Context:
    runs: int
    quick: bool
    truth: dict
    clips: dict[str, Clip] = field(default_factory=dict)
    floors: dict[str, Floor] = field(default_factory=dict)
    refs: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def out(self, name: str) -> Path:
        return fresh(OUT / name)


def verified_or_failed(row_met: bool, checks: Checks) -> bool:
    return row_met and not checks.failed


def frames_text(decoded: int | None, outputs: int, must: int | None) -> str:
    d = "?" if decoded is None else str(decoded)
    return f"{d} / {outputs}" + (f" (must: {must})" if must is not None else "")


def load_text(before: tuple[float, ...]) -> str:
    return f"load {before[0]:.1f}→{os.getloadavg()[0]:.1f}"


# ----------------------------------------------------------------------------------------------
# Tasks


def task_snapshot(ctx: Context) -> None:
    """video/snapshot exact at t=37.3 s, 800x600 jpg, in-process vs the ffmpeg CLI."""
    import ossframe_native as ofn

    load = os.getloadavg()
    clip, floor, refs = ctx.clips["main"], ctx.floors["main"], ctx.refs["main"]
    n = clip.frame_at(37300)
    out = ctx.out("snapshot")

    def ours() -> Any:
        return ofn.snapshot(str(MAIN), t=37300, w=W, h=H, f="jpg")

    def theirs() -> None:
        ffmpeg_snapshot(MAIN, "37.3", out / "ffmpeg.jpg")

    checks = Checks()
    image, decoded = counted(ours)
    theirs()
    checks.check(image.index == n, f"ours: frame {image.index} (the frame shown at 37.3 s is {n})")
    mine, their = [read_jpg(image.data)], [read_jpg(out / "ffmpeg.jpg")]
    checks.frames("ours", mine, [n], refs)
    checks.frames("ffmpeg", their, [n], refs)
    checks.similar("ffmpeg", mine, their)
    stats = alternate({"ours": ours, "ffmpeg": theirs}, ctx.runs)
    must = len(clip.needed([n]))
    floor_s = floor.task_s(clip, [n], 1, (W, H))
    row = Row(
        task="`video/snapshot,t_37300,w_800,h_600,f_jpg` in-process",
        competitor="`ffmpeg -ss 37.3 -i SRC -frames:v 1 -s 800x600 out.jpg`",
        ours=stats["ours"],
        theirs=stats["ffmpeg"],
        target="≥ 1.6× faster; ≤ 1.15× floor",
        met=None,
        floor_s=floor_s,
        frames=frames_text(decoded, 1, must),
        verified=checks.text(),
        notes=load_text(load),
    )
    row.met = verified_or_failed(
        speed_target(row, 1.6) and row.ours.median <= 1.15 * floor_s, checks
    )
    ctx.rows.append(row)
    ctx.extra["snapshot_frame"] = n


def task_cli(ctx: Context) -> None:
    """The same snapshot through ``ossframe process`` as a whole process."""
    load = os.getloadavg()
    refs = ctx.refs["main"]
    n = ctx.clips["main"].frame_at(37300)
    out = ctx.out("cli")
    spec = f"video/snapshot,t_37300,f_jpg,w_{W},h_{H}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def ours() -> None:
        run_ours_cli(MAIN, spec, out / "ours.jpg")

    def theirs() -> None:
        ffmpeg_snapshot(MAIN, "37.3", out / "ffmpeg.jpg")

    def python_only() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    def import_only() -> None:  # what `process` imports before it decodes (numpy, av, cv2, ...)
        subprocess.run([sys.executable, "-c", "import ossframe_native.api"], check=True, env=env)

    checks = Checks()
    ours()
    theirs()
    mine, their = [read_jpg(out / "ours.jpg")], [read_jpg(out / "ffmpeg.jpg")]
    checks.frames("ours", mine, [n], refs)
    checks.frames("ffmpeg", their, [n], refs)
    checks.similar("ffmpeg", mine, their)
    stats = alternate(
        {"ours": ours, "ffmpeg": theirs, "python": python_only, "import": import_only}, ctx.runs
    )
    command = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(ours_cli_command()))
    row = Row(
        task=f"`{command} process SRC '{spec}' -o out.jpg` (whole process)",
        competitor="the same `ffmpeg -ss 37.3` command",
        ours=stats["ours"],
        theirs=stats["ffmpeg"],
        target="no slower (ratio ≤ 1.0)",
        met=None,
        verified=checks.text(),
        notes=(
            f"for scale: `python -c pass` {stats['python'].text()}, `python -c 'import "
            f"ossframe_native.api'` {stats['import'].text()}; {load_text(load)}"
        ),
    )
    row.met = verified_or_failed(ratio_target(row, 1.0), checks)
    ctx.rows.append(row)


def interval_rows(ctx: Context, key: str, label: str, competitors: list[str]) -> None:
    """video/snapshots inter_10000 (6 frames) 800x600 jpg on clip ``key``."""
    import ossframe_native as ofn

    load = os.getloadavg()
    clip, floor, refs = ctx.clips[key], ctx.floors[key], ctx.refs[key]
    src = clip.path
    times_ms = list(range(0, 60000, 10000))
    expected = [clip.frame_at(t) for t in times_ms]
    times_s = [str(t // 1000) for t in times_ms]
    out = ctx.out(f"interval_{key}")

    def ours() -> list:
        return list(ofn.snapshots(str(src), f="jpg", inter=10000, w=W, h=H))

    sides: dict[str, Callable[[], object]] = {"ours": ours}
    folders = {name: fresh(out / name.replace(" ", "_")) for name in competitors}
    if "fps" in competitors:
        sides["fps"] = lambda: ffmpeg_fps(src, 10, folders["fps"])
    if "ss" in competitors:
        sides["ss"] = lambda: ffmpeg_ss_loop(src, times_s, folders["ss"])
    if "pyav" in competitors:
        sides["pyav"] = lambda: pyav_seek_each(src, times_ms)

    ours_checks = Checks()
    images, decoded = counted(ours)
    ours_checks.check(
        [im.index for im in images] == expected,
        f"ours: frames {[im.index for im in images]} (SPEC: {expected})",
    )
    mine = [read_jpg(im.data) for im in images]
    ours_checks.frames("ours", mine, expected, refs)
    checks: dict[str, Checks] = {}  # per competitor, starting from ours
    for name in competitors:
        result = sides[name]()
        theirs = [read_jpg(b) for b in result] if name == "pyav" else jpgs(folders[name])
        checks[name] = copy.deepcopy(ours_checks)
        checks[name].frames(name, theirs, expected, refs)
        checks[name].similar(name, mine, theirs)
    stats = alternate(sides, ctx.runs)
    must = len(clip.needed(expected))
    floor_s = floor.task_s(clip, expected, len(expected), (W, H))
    frames = frames_text(decoded, len(images), must)
    names = {
        "fps": ("`ffmpeg -i SRC -vf fps=1/10:round=up -s 800x600 out%03d.jpg`", 12.0),
        "ss": (
            "six `ffmpeg -ss T -i SRC -frames:v 1 -s 800x600` runs",
            2.2 if key == "main" else 1.5,
        ),
        "pyav": ("plain PyAV: seek + decode to each target, cv2 resize + encode", None),
    }
    for name in competitors:
        text, at_least = names[name]
        row = Row(
            task=f"`video/snapshots,inter_10000,w_800,h_600,f_jpg` (6 frames), {label}",
            competitor=text,
            ours=stats["ours"],
            theirs=stats[name],
            target=f"≥ {at_least}× faster" if at_least else "(reference)",
            met=None,
            floor_s=floor_s,
            frames=frames,
            verified=checks[name].text(),
            notes=load_text(load),
        )
        if at_least:
            row.met = verified_or_failed(speed_target(row, at_least), checks[name])
        ctx.rows.append(row)


def task_interval(ctx: Context) -> None:
    competitors = ["ss", "pyav"] if ctx.quick else ["fps", "ss", "pyav"]
    interval_rows(ctx, "main", "1080p H.264", competitors)


def task_hevc(ctx: Context) -> None:
    interval_rows(ctx, "hevc", "720p HEVC GOP 250", ["ss", "pyav"])


def task_key(ctx: Context) -> None:
    """m_key 800x600 jpg vs ffmpeg -skip_frame nokey."""
    import ossframe_native as ofn

    load = os.getloadavg()
    clip, floor, refs = ctx.clips["main"], ctx.floors["main"], ctx.refs["main"]
    expected = clip.keyframes()
    out = ctx.out("key")

    def ours() -> list:
        return list(ofn.snapshots(str(MAIN), f="jpg", m="key", w=W, h=H))

    def theirs() -> None:
        ffmpeg_keyframes(MAIN, out)

    checks = Checks()
    images, decoded = counted(ours)
    theirs()
    checks.check(
        [im.index for im in images] == expected,
        f"ours: {len(images)} keyframes, the frame numbers "
        + ("match" if [im.index for im in images] == expected else "DIFFER"),
    )
    mine, their = [read_jpg(im.data) for im in images], jpgs(out)
    checks.frames("ours", mine, expected, refs)
    checks.frames("ffmpeg", their, expected, refs)
    checks.similar("ffmpeg", mine, their)
    stats = alternate({"ours": ours, "ffmpeg": theirs}, ctx.runs)
    # Keyframes decode independently: the floor is their decode work (one single-threaded
    # decoder each) plus the outputs' work, spread over every core.
    assert floor.keyframes_serial_s is not None
    work_s = floor.keyframes_serial_s + len(expected) * floor.output_ms[(W, H)] / 1e3
    floor_s = work_s / len(os.sched_getaffinity(0))
    row = Row(
        task="`video/snapshots,m_key,w_800,h_600,f_jpg`",
        competitor="`ffmpeg -skip_frame nokey -i SRC -vsync 0 -s 800x600 out%03d.jpg`",
        ours=stats["ours"],
        theirs=stats["ffmpeg"],
        target="≥ 2× faster",
        met=None,
        floor_s=floor_s,
        frames=frames_text(decoded, len(images), len(expected)),
        verified=checks.text(),
        notes=f"{len(expected)} keyframes; {load_text(load)}",
    )
    row.met = verified_or_failed(speed_target(row, 2.0), checks)
    ctx.rows.append(row)


def cut_report(times_s: list[float], cuts_s: list[float]) -> tuple[int, int]:
    """(cuts found within +-1 s, false captures); a capture at t < 1 s is the clip's start."""
    found = sum(any(abs(t - c) <= 1.0 for t in times_s) for c in cuts_s)
    false = sum(1 for t in times_s if t >= 1.0 and not any(abs(t - c) <= 1.0 for c in cuts_s))
    return found, false


def task_dhash(ctx: Context) -> None:
    """m_dhash,inter_1000,thr_15 and m_dhash,inter_0 vs PySceneDetect and a PyAV full decode."""
    import ossframe_native as ofn

    clip, floor = ctx.clips["main"], ctx.floors["main"]
    cuts = ctx.truth["cuts_s"]
    full = (clip.width, clip.height)

    def ours_1000() -> list:
        return list(ofn.snapshots(str(MAIN), f="jpg", m="dhash", inter=1000, thr=15))

    def ours_0() -> list:
        return list(ofn.snapshots(str(MAIN), f="jpg", m="dhash", inter=0, thr=15))

    def hash_detector() -> list[float]:
        return scenedetect_cuts(MAIN, "HashDetector")

    def content_detector() -> list[float]:
        return scenedetect_cuts(MAIN, "ContentDetector")

    def pyav_all() -> int:
        return pyav_full_decode(MAIN)

    # Verify: cuts found and false captures on every side, and the full decode's frame count.
    load = os.getloadavg()
    results: dict[str, tuple[int, int, int]] = {}  # name -> (found, false, captures)
    decoded: dict[str, int | None] = {}
    outputs: dict[str, int] = {}
    for name, fn in (("ours_1000", ours_1000), ("ours_0", ours_0)):
        images, decoded[name] = counted(fn)
        outputs[name] = len(images)
        times = [im.time_ms / 1000 for im in images]
        results[name] = (*cut_report(times, cuts), len(images))
    detectors = (
        {"hash": hash_detector}
        if ctx.quick
        else {
            "hash": hash_detector,
            "content": content_detector,
        }
    )
    for name, fn in detectors.items():
        times = fn()
        results[name] = (*cut_report(times, cuts), len(times))
    frame_count = pyav_all()

    def quality(name: str) -> str:
        found, false, captures = results[name]
        return f"{name}: {found}/{len(cuts)} cuts ±1 s, {false} false ({captures} captures)"

    checks = Checks()
    for name in results:
        checks.lines.append(quality(name))
    checks.check(frame_count == len(clip), f"PyAV full decode: {frame_count} frames")
    stats = alternate(
        {"ours_1000": ours_1000, "ours_0": ours_0, "pyav": pyav_all, **detectors}, ctx.runs
    )
    found, false, _ = results["ours_1000"]
    targets_1000 = [
        clip.frame_at(t) for t in range(0, int(clip.time_s(len(clip) - 1) * 1000) + 1, 1000)
    ]
    floor_1000 = floor.task_s(clip, targets_1000, outputs["ours_1000"], full)
    floor_0 = floor.full_decode_s + outputs["ours_0"] * floor.output_ms[full] / 1e3
    must_1000 = len(clip.needed(targets_1000))
    common = dict(verified=checks.text(), notes=load_text(load))
    row = Row(
        task="`video/snapshots,m_dhash,inter_1000,thr_15,f_jpg`",
        competitor="PySceneDetect `detect(SRC, HashDetector())` (defaults, OpenCV backend)",
        ours=stats["ours_1000"],
        theirs=stats["hash"],
        target=f"≥ 1.7× faster; all {len(cuts)} cuts; ≤ 3 false",
        met=None,
        floor_s=floor_1000,
        frames=frames_text(decoded["ours_1000"], outputs["ours_1000"], must_1000),
        **common,
    )
    row.met = verified_or_failed(
        speed_target(row, 1.7) and found == len(cuts) and false <= 3, checks
    )
    ctx.rows.append(row)
    if "content" in stats:
        ctx.rows.append(
            Row(
                task="`video/snapshots,m_dhash,inter_1000,thr_15,f_jpg`",
                competitor="PySceneDetect `detect(SRC, ContentDetector())` (defaults, OpenCV)",
                ours=stats["ours_1000"],
                theirs=stats["content"],
                target="(reference)",
                met=None,
                floor_s=floor_1000,
                frames=frames_text(decoded["ours_1000"], outputs["ours_1000"], must_1000),
                **common,
            )
        )
    found0, false0, _ = results["ours_0"]
    frames_0 = frames_text(decoded["ours_0"], outputs["ours_0"], len(clip))
    row = Row(
        task="`video/snapshots,m_dhash,inter_0,thr_15,f_jpg` (every frame)",
        competitor="plain threaded PyAV decode of all frames (`thread_type='AUTO'`)",
        ours=stats["ours_0"],
        theirs=stats["pyav"],
        target="ratio ≤ 1.1",
        met=None,
        floor_s=floor_0,
        frames=frames_0,
        **common,
    )
    row.met = verified_or_failed(ratio_target(row, 1.1), checks)
    ctx.rows.append(row)
    row = Row(
        task="`video/snapshots,m_dhash,inter_0,thr_15,f_jpg` (every frame)",
        competitor="PySceneDetect `detect(SRC, HashDetector())`",
        ours=stats["ours_0"],
        theirs=stats["hash"],
        target="≥ 1.1× faster",
        met=None,
        floor_s=floor_0,
        frames=frames_0,
        **common,
    )
    row.met = verified_or_failed(speed_target(row, 1.1), checks)
    ctx.rows.append(row)
    ctx.extra["dhash"] = {name: quality(name) for name in results}
    ctx.extra["dhash_cut_counts"] = {"ours_inter_0": (found0, false0)}


def numpy_dhash(plane: np.ndarray) -> int:
    """The SPEC dhash with the engine's integer cells: 9x8 block means, bit = left > right."""
    h, w = plane.shape
    xs = [i * w // 9 for i in range(10)]
    ys = [j * h // 8 for j in range(9)]
    sums = np.add.reduceat(
        np.add.reduceat(plane.astype(np.int64), ys[:-1], axis=0), xs[:-1], axis=1
    )
    means = sums / np.outer(np.diff(ys), np.diff(xs))
    bits = (means[:, :-1] > means[:, 1:]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def cv2_dhash(plane: np.ndarray) -> int:
    small = cv2.resize(plane, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, :-1] > small[:, 1:]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def task_kernels(ctx: Context) -> None:
    """The native kernels on a 1080p frame against the OpenCV routes (cv2 on one thread)."""
    from ossframe_native import _native

    load = os.getloadavg()
    frame = decode_frame(MAIN, ctx.clips["main"].frame_at(37300))
    y, u, v = planes(frame)
    i420 = frame.to_ndarray()  # (H * 3 / 2, W) planar I420, what cv2.cvtColor takes
    rgb = frame.to_ndarray(format="rgb24")
    crop = (0.0, 0.0, float(frame.width), float(frame.height))
    ours_out, theirs_out = np.empty((H, W, 3), np.uint8), np.empty((H, W, 3), np.uint8)

    def ours_resize() -> np.ndarray:
        _native.resize(rgb, crop, ours_out, "bilinear")
        return ours_out

    def cv2_resize() -> np.ndarray:
        return cv2.resize(rgb, (W, H), dst=theirs_out, interpolation=cv2.INTER_LINEAR)

    def ours_fused() -> np.ndarray:
        _native.yuv420_to_rgb(y, u, v, crop, ours_out, "bt601", False, False, "bilinear")
        return ours_out

    def cv2_fused() -> np.ndarray:
        rgb_full = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
        return cv2.resize(rgb_full, (W, H), dst=theirs_out, interpolation=cv2.INTER_LINEAR)

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        dhash_checks, resize_checks, fused_checks = Checks(), Checks(), Checks()
        ours_hash, cv_hash = _native.dhash(y), cv2_dhash(y)
        dhash_checks.check(
            ours_hash == numpy_dhash(np.array(y)), f"dhash {ours_hash:016x} == NumPy reference"
        )
        dhash_checks.lines.append(
            f"the cv2 INTER_AREA route's hash differs in {bin(ours_hash ^ cv_hash).count('1')} bits"
        )
        db = psnr(ours_resize().copy(), cv2_resize())
        resize_checks.check(db >= 35, f"PSNR vs cv2 {db:.1f} dB")
        db = psnr(ours_fused().copy(), cv2_fused())
        fused_checks.check(db >= 30, f"PSNR vs cv2 {db:.1f} dB")
        stats = alternate_per_call(
            {
                "dhash": lambda: _native.dhash(y),
                "cv2_dhash": lambda: cv2_dhash(y),
                "resize": ours_resize,
                "cv2_resize": cv2_resize,
                "fused": ours_fused,
                "cv2_fused": cv2_fused,
            },
            ctx.runs,
        )
    finally:
        cv2.setNumThreads(threads)
    rows = [
        ("dhash of the 1080p luma plane", "`cv2.resize(luma, (9, 8), INTER_AREA)` + compare",
         "dhash", "≤ 0.3 ms", lambda r: r.ours.median <= 0.3e-3, dhash_checks),
        ("bilinear RGB resize 1920x1080 → 800x600", "`cv2.resize` INTER_LINEAR",
         "resize", "ratio ≤ 1.0", lambda r: ratio_target(r, 1.0), resize_checks),
        ("YUV 4:2:0 → RGB fused with the resize to 800x600",
         "`cv2.cvtColor(I420→RGB)` + `cv2.resize` INTER_LINEAR",
         "fused", "ratio ≤ 0.6", lambda r: ratio_target(r, 0.6), fused_checks),
    ]  # fmt: skip
    for task, competitor, key, target, meets, checks in rows:
        row = Row(
            task=f"kernel: {task}",
            competitor=f"{competitor}, `cv2.setNumThreads(1)`",
            ours=stats[key],
            theirs=stats[f"cv2_{key}"],
            target=target,
            met=None,
            verified=checks.text(),
            notes=load_text(load),
            unit="ms",
        )
        row.met = verified_or_failed(meets(row), checks)
        ctx.rows.append(row)


def memory_child(path: str, width: int, height: int) -> None:
    """Runs in a subprocess: every-frame capture, RSS read after every frame; prints JSON.

    The peak is the kernel's high-water mark ``VmHWM`` of this process. ``ru_maxrss`` is not
    used: on Linux a child started by fork + exec inherits the parent's maximum (the harness
    holds reference frames, so it would report the harness, not the capture).
    """
    page = os.sysconf("SC_PAGE_SIZE")

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page / 2**20

    def hwm_mb() -> float:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    before_import = rss_mb()
    import ossframe_native as ofn

    samples = [(0, 0.0, round(rss_mb(), 1))]
    started = time.perf_counter()
    count = size = 0
    highest = 0.0
    for image in ofn.snapshots(path, m="default", inter=0, f="jpg", w=width, h=height):
        count += 1
        size += len(image.data)
        rss = rss_mb()
        highest = max(highest, rss)
        if count % 60 == 0:
            samples.append((count, round(time.perf_counter() - started, 2), round(rss, 1)))
    report = {
        "frames": count,
        "bytes": size,
        "seconds": time.perf_counter() - started,
        "before_import_mb": before_import,
        "after_import_mb": samples[0][2],
        "highest_sampled_mb": highest,
        "peak_mb": hwm_mb(),
        "samples": samples,
    }
    print(json.dumps(report))


def task_memory(ctx: Context) -> None:
    """Peak and sampled RSS of every-frame capture of the 1080p clip, in a subprocess."""
    load = os.getloadavg()
    width, height = 640, 360
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), "--memory-child", str(MAIN), str(width), str(height)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    samples = report["samples"]
    rss = [s[2] for s in samples]
    warm = rss[max(1, len(rss) // 10) :]  # after the first 10 % (imports, decoder start-up)
    half = len(warm) // 2
    growth = max(warm[half:]) - max(warm[:half]) if half else 0.0
    flat = growth <= max(25.0, 0.05 * max(warm))
    checks = Checks()
    checks.check(report["frames"] == len(ctx.clips["main"]), f"{report['frames']} frames captured")
    points = ", ".join(f"{rss[i]:.0f}" for i in np.linspace(0, len(rss) - 1, 10).astype(int))
    row = Row(
        task="memory: every frame of the 1080p clip, "
        f"`snapshots(m='default', inter=0, f='jpg', w={width}, h={height})`",
        competitor="—",
        ours=Stats([report["seconds"]]),
        ours_text=f"peak RSS {report['peak_mb']:.0f} MB (2nd half {growth:+.0f} MB vs 1st)",
        theirs=None,
        target="peak RSS ≤ 400 MB, flat",
        met=report["peak_mb"] <= 400 and flat and not checks.failed,
        verified=checks.text(),
        notes=(
            f"peak RSS (VmHWM) {report['peak_mb']:.0f} MB, highest read after a frame "
            f"{report['highest_sampled_mb']:.0f} MB, {report['after_import_mb']:.0f} MB after "
            f"the imports; RSS over time (MB, 10 of {len(rss)} samples): {points}; growth "
            f"second half vs first half {growth:+.0f} MB ({'flat' if flat else 'NOT flat'}); "
            f"{report['frames'] / report['seconds']:.0f} "
            f"frames/s; {load_text(load)}"
        ),
    )
    ctx.rows.append(row)
    ctx.extra["memory"] = report


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BATCH_SPEC = "video/snapshots,f_jpg,inter_500,w_320,h_180"


def task_batch(ctx: Context) -> None:
    """20 short clips through ``process_many``: 2 workers vs 1 (and vs 1 on one thread)."""
    from ossframe_native.batch import process_many

    load = os.getloadavg()
    clips = [str(MEDIA / name) for name in ctx.truth["batch_clips"]]
    base = ctx.out("batch")
    spec = f"{BATCH_SPEC}|sys/saveas,b_{b64('frames')},o_{b64('{barename}_{index}.{autoext}')}"
    counter = iter(range(1 << 30))

    def run(workers: int, threads: int | None = None) -> tuple[Any, Path]:
        store = base / f"{next(counter):03d}_w{workers}_t{threads}"
        summary = process_many(
            clips, spec, store=str(store), workers=workers, threads=threads, progress=False,
            resume=False,
        )  # fmt: skip
        return summary, store

    checks = Checks()
    summaries = [run(1), run(2), run(1, threads=1)]
    outputs = []
    for summary, folder in summaries:
        checks.check(
            summary.succeeded == len(clips) and summary.failed == 0,
            f"workers={summary.workers} threads={summary.threads}: "
            f"{summary.succeeded}/{len(clips)} succeeded, {summary.frames} outputs",
        )
        outputs.append({p.relative_to(folder): p.read_bytes() for p in folder.rglob("*.jpg")})
    checks.check(
        bool(outputs[0]) and all(o == outputs[0] for o in outputs),
        f"{len(outputs[0])} jpgs, the same bytes from every configuration",
    )
    stats = alternate(
        {"w2": lambda: run(2), "w1": lambda: run(1), "w1t1": lambda: run(1, threads=1)},
        ctx.runs,
    )
    threads = summaries[1][0].threads
    task = (
        f"batch: 20 clips 640x360 5 s, `{BATCH_SPEC}` + saveas, "
        f"`process_many(..., workers=2)` ({threads} decode thread each)"
    )
    row = Row(
        task=task,
        competitor="`workers=1` (the engine's default decode threads: one per core)",
        ours=stats["w2"],
        theirs=stats["w1"],
        target="≥ 1.8× the 1-worker throughput",
        met=None,
        verified=checks.text(),
        notes=(
            f"one worker with the default decode threads is already "
            f"{stats['w1t1'].median / stats['w1'].median:.2f}× faster than one worker on one "
            f"thread: it keeps both cores busy, so more workers can add at most "
            f"{2 * stats['w1'].median / stats['w1t1'].median:.2f}× (2 cores / that); "
            f"{load_text(load)}"
        ),
    )
    row.met = verified_or_failed(speed_target(row, 1.8), checks)
    ctx.rows.append(row)
    ctx.rows.append(
        Row(
            task=task,
            competitor="`workers=1, threads=1` (one worker on one core)",
            ours=stats["w2"],
            theirs=stats["w1t1"],
            target="(reference)",
            met=None,
            verified=checks.text(),
            notes=load_text(load),
        )
    )


def task_uhd(ctx: Context) -> None:
    """Informational: one exact snapshot on the 4K clip."""
    import ossframe_native as ofn

    load = os.getloadavg()
    clip = ctx.clips["uhd"]
    n = clip.frame_at(7300)
    out = ctx.out("uhd")
    refs = reference_frames(clip, around([n]), (W, H))

    def ours() -> Any:
        return ofn.snapshot(str(UHD), t=7300, w=W, h=H, f="jpg")

    def theirs() -> None:
        ffmpeg_snapshot(UHD, "7.3", out / "ffmpeg.jpg")

    checks = Checks()
    image, decoded = counted(ours)
    theirs()
    mine, their = [read_jpg(image.data)], [read_jpg(out / "ffmpeg.jpg")]
    checks.check(image.index == n, f"ours: frame {image.index} (expected {n})")
    checks.frames("ours", mine, [n], refs)
    checks.frames("ffmpeg", their, [n], refs)
    stats = alternate({"ours": ours, "ffmpeg": theirs}, ctx.runs)
    ctx.rows.append(
        Row(
            task="`video/snapshot,t_7300,w_800,h_600,f_jpg` on the 3840x2160 H.264 clip",
            competitor="`ffmpeg -ss 7.3 -i SRC -frames:v 1 -s 800x600 out.jpg`",
            ours=stats["ours"],
            theirs=stats["ffmpeg"],
            target="(reference)",
            met=None,
            frames=frames_text(decoded, 1, len(clip.needed([n]))),
            verified=checks.text(),
            notes=load_text(load),
        )
    )


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "snapshot": (task_snapshot, {"main"}),
    "cli": (task_cli, {"main"}),
    "interval": (task_interval, {"main"}),
    "hevc": (task_hevc, {"hevc"}),
    "key": (task_key, {"main"}),
    "dhash": (task_dhash, {"main"}),
    "kernels": (task_kernels, set()),
    "memory": (task_memory, set()),
    "batch": (task_batch, set()),
    "uhd": (task_uhd, set()),
}


# ----------------------------------------------------------------------------------------------
# Set-up: clips, floors, references


def prepare(ctx: Context, needed: set[str]) -> None:
    import ossframe_native as ofn

    for key, path in (("main", MAIN), ("hevc", HEVC), ("uhd", UHD)):
        clip = Clip.load(path)
        if key != "uhd":
            clip.segments = main_segments(ctx.truth, clip)
        probe = ofn.probe(str(path))
        ours_keys = probe["keyframes_ms"]
        mine = [int(-(-clip.time_s(n) * 1000 // 1)) for n in clip.keyframes()]
        assert ours_keys == mine, f"{path.name}: probe keyframes differ: {ours_keys} vs {mine}"
        ctx.clips[key] = clip
    for key in sorted(needed):
        clip = ctx.clips[key]
        print(f"[prepare] decode cost of {clip.path.name} ...", flush=True)
        floor = measure_decode(clip)
        frame = decode_frame(clip.path, clip.frame_at(37300))
        floor.output_ms[(W, H)] = measure_output_ms(frame, (W, H))
        floor.output_ms[(clip.width, clip.height)] = measure_output_ms(
            frame, (clip.width, clip.height)
        )
        if key == "main":
            floor.keyframes_s, count = measure_keyframe_decode(clip)
            floor.keyframe_ms = floor.keyframes_s / count * 1e3
            floor.keyframes_serial_s = measure_keyframes_serial(clip)
        ctx.floors[key] = floor
        targets = [clip.frame_at(37300)] + [clip.frame_at(t) for t in range(0, 60000, 10000)]
        numbers = around(targets) | around(clip.keyframes(), far=False)
        print(f"[prepare] reference frames of {clip.path.name} ...", flush=True)
        ctx.refs[key] = reference_frames(clip, numbers, (W, H))


# ----------------------------------------------------------------------------------------------
# RESULTS.md


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def env_torchcodec() -> str:
    try:
        import torchcodec  # noqa: F401

        return "imports here (not benchmarked yet)"
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        return f"not usable here ({type(exc).__name__}: {str(exc)[:100]})"


def environment() -> dict[str, str]:
    import ossframe_native as ofn

    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next(
            (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?"
        )
    ffmpeg_version = subprocess.run(
        ["ffmpeg", "-version"], capture_output=True, text=True
    ).stdout.splitlines()[0]
    try:
        import scenedetect

        sd = scenedetect.__version__
    except ImportError:
        sd = "not installed"
    dirty = git("status", "--porcelain", "--", "ossframe_native", "csrc", "setup.py")
    libav = av.library_versions.get("libavcodec", ("?",))
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs (`nproc` {len(os.sched_getaffinity(0))}), {model}, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
        f"{platform.platform()}",
        "python": platform.python_version(),
        "pyav": f"{av.__version__} (its libavcodec {'.'.join(map(str, libav))})",
        "ffmpeg cli": ffmpeg_version,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "scenedetect": sd,
        "ossframe_native": f"{ofn.__version__}",
        "commit": git("rev-parse", "--short=12", "HEAD")
        + (" + uncommitted engine changes" if dirty and dirty != "?" else ""),
    }


def fmt_row(row: Row) -> str:
    ours = row.ours_text or (row.ours.text(row.unit) if row.ours else "—")
    theirs = row.theirs.text(row.unit) if row.theirs else "—"
    if row.speedup is not None:
        ratio = (
            f"{1 / row.speedup:.2f} ({row.speedup:.2f}× faster)"
            if row.speedup >= 1
            else f"{1 / row.speedup:.2f} ({1 / row.speedup:.2f}× slower)"
        )
    else:
        ratio = "—"
    floor = (
        f"{row.floor_s:.3f} s ({row.ours.median / row.floor_s:.2f}×)"
        if row.floor_s and row.ours
        else "—"
    )
    met = {True: "**met**", False: "**NOT met**", None: "—"}[row.met]
    cells = [
        row.task,
        ours,
        row.competitor,
        theirs,
        ratio,
        row.target,
        met,
        floor,
        row.frames or "—",
    ]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def write_results(
    ctx: Context, env: dict[str, str], command: str, path: Path, elapsed: float
) -> None:
    lines = [
        "# Benchmark results (issue 4)",
        "",
        "Generated by `bench/run.py`; do not edit by hand. Re-run with the command below.",
        "",
        f"* command: `{command}` (after `python bench/make_media.py`, which it runs if needed)",
        f"* harness wall time: {elapsed / 60:.1f} min, {ctx.runs} timed runs per side, "
        "sides alternated",
    ]
    lines += [f"* {k}: {v}" for k, v in env.items()]
    lines += [
        f"* torchcodec: {env_torchcodec()}. {TORCHCODEC_NOTE}",
        "",
        "Times are wall-clock medians [min–max]. **ratio** = ours / theirs (below 1: we are "
        "faster). "
        "**floor**: the task's lower bound (frames that must be decoded × the measured per-frame "
        "decode cost of their segment + convert/resize/encode per output), with ours as a multiple "
        "of it. **frames**: frames our decoder returned / images output (must: frames the floor "
        "decodes).",
        "",
        "| task | ours | competitor | theirs | ratio | target | met | floor (ours ×) | frames |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [fmt_row(row) for row in ctx.rows]
    lines += ["", "## Verification and notes per row", ""]
    for i, row in enumerate(ctx.rows, 1):
        lines.append(f"{i}. {row.task} vs {row.competitor}: {row.verified or '—'}. {row.notes}")
    lines += ["", "## Floors: measured costs", ""]
    for key, floor in ctx.floors.items():
        clip = ctx.clips[key]
        segs = ", ".join(
            f"{name} {ms:.1f}"
            for (name, _, _), ms in zip(clip.segments, floor.segment_ms, strict=True)
        )
        lines.append(
            f"* {clip.path.name} ({clip.width}x{clip.height}, {len(clip)} frames, "
            f"{len(clip.keyframes())} keyframes): threaded PyAV full decode "
            f"{floor.full_decode_s:.2f} s; "
            f"ms/frame per segment: {segs}"
        )
        outs = ", ".join(f"{w}x{h} {ms:.2f} ms" for (w, h), ms in floor.output_ms.items())
        lines.append(f"  * convert + resize (native fused kernel) + JPEG q90 per output: {outs}")
        if floor.keyframe_ms is not None:
            lines.append(
                "  * keyframe packets only, fed to one threaded decoder: "
                f"{floor.keyframes_s:.2f} s ({floor.keyframe_ms:.1f} ms per keyframe); each "
                "keyframe alone on a single-threaded decoder: "
                f"{floor.keyframes_serial_s:.2f} s of CPU work (the m_key floor splits it, "
                "and the outputs' work, over the cores)"
            )
    lines += [
        "",
        "## Method",
        "",
        "* Every side is run once untimed and its outputs are checked before timing: frame "
        "numbers (ours from `Image.index` against the SPEC's frame; every image, ours and theirs, "
        "identified by the least mean squared error against reference renderings of the expected "
        f"frame, its neighbours ± {max(NEAR)} and frames {', '.join(map(str, FAR))} away; a "
        "candidate the encoder made a near copy of the frame (static content) counts as the frame "
        "itself), sizes, and for scene detection the cuts found within ±1 s of "
        "`bench/media/cuts.json` (a capture before 1 s is the clip's start, not a false one). "
        "PSNR ours vs theirs is reported, not checked: the resize filters differ (and alias "
        "differently on the one-pixel patterns of some segments). A row whose checks fail is not "
        "met, whatever its times.",
        f"* The ffmpeg CLI writes JPEGs with `-q:v {FFMPEG_JPG_Q}`, ours are quality 90; every "
        "ffmpeg run is a fresh process (that is how it is used); the CLI decodes with its default "
        "threads. `fps=1/10` is given `round=up`: without it the filter outputs the frames at "
        "4.97 s, 14.97 s, … (found by this harness's checks), not the frames shown at 0, 10, … s; "
        "the cost is the same.",
        "* Frames our decoder returned: the engine's own counter `VideoSource.decoded` (frames "
        "skipped by `skip_frame` are not returned, so not counted), summed over the sources a "
        "call opens, which the harness finds by wrapping `VideoSource.__init__` during the "
        "untimed verification run.",
        "* The machine is shared with other engineers' test runs while this runs: the load "
        "average before→after each task is in its notes; treat rows with a high load as noisy. "
        "Both sides of a row are measured under the same conditions (alternated).",
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 run, slowest competitors left out")
    parser.add_argument("--only", nargs="+", choices=list(TASKS), help="run only these tasks")
    parser.add_argument(
        "--memory-child", nargs=3, metavar=("PATH", "W", "H"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]), int(args.memory_child[2]))
        return 0
    if make_media.main(quiet=True) != 0:
        return 1
    started = time.perf_counter()
    runs = 1 if args.quick else args.runs
    ctx = Context(runs=runs, quick=args.quick, truth=json.loads(make_media.CUTS.read_text()))
    names = args.only or list(TASKS)
    env = environment()
    prepare(ctx, set().union(*(TASKS[name][1] for name in names)))
    partial = args.quick or bool(args.only)
    target = OUT / "RESULTS-partial.md" if partial else BENCH / "RESULTS.md"
    command = "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for name in names:
        print(f"[task] {name} ...", flush=True)
        task_started = time.perf_counter()
        TASKS[name][0](ctx)
        print(f"[task] {name} done in {time.perf_counter() - task_started:.0f} s", flush=True)
        OUT.mkdir(exist_ok=True)
        write_results(ctx, env, command.strip(), target, time.perf_counter() - started)
    print(f"wrote {target}")
    for row in ctx.rows:
        print(fmt_row(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
