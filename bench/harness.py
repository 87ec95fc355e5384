"""The benchmark harness: timing, verification, floors, competitors and ``RESULTS.md``.

Each question is one script beside this file (``bench_snapshot.py``, ``bench_cli.py``,
``bench_interval.py``, ``bench_key.py``, ``bench_dhash.py``, ``bench_kernels.py``,
``bench_memory.py``, ``bench_batch.py``, ``bench_uhd.py``); ``run.py`` runs them all::

    python bench/run.py --runs 5          # every question to bench/RESULTS.md (~13 min, 2 cores)
    python bench/run.py --quick           # 1 run each, slowest competitors left out
    python bench/run.py --only snapshot interval --runs 3   # some questions only
    python bench/bench_dhash.py --runs 3  # one question

A single script, ``--quick`` and ``--only`` write ``bench/out/RESULTS-partial.md`` instead, so a
partial run never replaces the committed results.

How it measures (verify, then time):

* The media comes from ``bench/make_media.py`` (run first if missing); ``bench/media/cuts.json``
  is the truth about the main clip (segments, cut frames).
* Every task first runs each side once, untimed, and checks the outputs: the frame numbers
  (ours from ``Image.index``, checked against the frame docs/BEHAVIOUR.md defines; every output
  image, ours and the competitor's, is matched by mean squared error against reference renderings of
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
* Frames decoded by the engine: :func:`frames_decoded`, the engine's public statistic
  (``DecodeStats``) summed over the captures a call opens, read during the untimed verification
  run only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import types
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
W, H = 800, 600  # the output size of the snapshot and interval questions
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
        """The frame shown at t (greatest time <= t), as docs/BEHAVIOUR.md defines it."""
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


def frames_decoded(fn: Callable[[], Any]) -> tuple[Any, int | None]:
    """Runs ``fn``; returns its result and the frames the engine's decoders returned meanwhile,
    from the engine's public statistic (``pipeline.collect_stats``, untimed runs only)."""
    from ossframe_native.pipeline import collect_stats

    with collect_stats() as stats:
        result = fn()
        if isinstance(result, types.GeneratorType):
            result = list(result)
    return result, sum(s.frames_decoded for s in stats) if stats else None


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
    i.e. the frames at 4.97 s, 14.97 s, ... (verified: not the documented frames); rounding up
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
        "# Benchmark results",
        "",
        "Generated by `bench/run.py` (one script per question, `bench/bench_*.py`); do not edit "
        "by hand. Re-run with the command below.",
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
        "numbers (ours from `Image.index` against the documented frame; every image, ours and "
        "theirs, "
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
        "* Frames our decoder returned: the engine's public statistic `DecodeStats.frames_decoded` "
        "(frames skipped by `skip_frame` are not returned, so not counted), summed over the "
        "captures a call opens (`pipeline.collect_stats`), read during the untimed verification "
        "run.",
        "* The machine is shared with other engineers' test runs while this runs: the load "
        "average before→after each task is in its notes; treat rows with a high load as noisy. "
        "Both sides of a row are measured under the same conditions (alternated).",
    ]
    path.write_text("\n".join(lines) + "\n")


Task = Callable[[Context], None]


def main(
    tasks: dict[str, tuple[Task, set[str]]],
    argv: list[str] | None = None,
    *,
    script: str,
    description: str | None = None,
    complete: bool = False,
) -> int:
    """Runs ``tasks`` (name -> (function, clips it needs measured)) and writes their rows.

    ``complete``: these are all the questions (``run.py``), so a full run writes
    ``bench/RESULTS.md``; otherwise, and with ``--quick`` or ``--only``, the rows go to
    ``bench/out/RESULTS-partial.md``.
    """
    parser = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 run, slowest competitors left out")
    parser.add_argument("--only", nargs="+", choices=list(tasks), help="run only these tasks")
    args = parser.parse_args(argv)
    if make_media.main(quiet=True) != 0:
        return 1
    started = time.perf_counter()
    runs = 1 if args.quick else args.runs
    ctx = Context(runs=runs, quick=args.quick, truth=json.loads(make_media.CUTS.read_text()))
    names = args.only or list(tasks)
    env = environment()
    prepare(ctx, set().union(*(tasks[name][1] for name in names)))
    partial = args.quick or bool(args.only) or not complete
    target = OUT / "RESULTS-partial.md" if partial else BENCH / "RESULTS.md"
    command = f"python bench/{Path(script).name} " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    for name in names:
        print(f"[task] {name} ...", flush=True)
        task_started = time.perf_counter()
        tasks[name][0](ctx)
        print(f"[task] {name} done in {time.perf_counter() - task_started:.0f} s", flush=True)
        OUT.mkdir(exist_ok=True)
        write_results(ctx, env, command.strip(), target, time.perf_counter() - started)
    print(f"wrote {target}")
    for row in ctx.rows:
        print(fmt_row(row))
    return 0


# ----------------------------------------------------------------------------------------------
# Stamped results files (any bench script)


def commit_stamp(commit: str | None = None) -> str:
    """``git describe --always --dirty --abbrev=12`` of the checkout, or ``commit`` where the
    tree travelled without its git folder (a GPU machine: the stamp made before it left)."""
    if commit:
        return commit
    described = git("describe", "--always", "--dirty", "--abbrev=12")
    return "unknown (no git here and no commit given)" if described == "?" else described


def stamp(commit: str, versions: dict[str, str]) -> list[str]:
    """The lines every results file starts with: commit, date, machine (CPUs, load), versions."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    cpus = len(os.sched_getaffinity(0))
    return [
        f"* commit: {commit}",
        f"* date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"* machine: {cpus} CPUs ({platform.processor() or platform.machine()}), load {load} "
        f"(1, 5, 15 min) when written; {platform.platform()}",
        "* versions: Python "
        + platform.python_version()
        + "".join(f", {name} {version}" for name, version in versions.items()),
    ]


def write_stamped(
    path: Path,
    title: str,
    body: list[str],
    *,
    command: str,
    versions: dict[str, str],
    commit: str | None = None,
    force: bool = False,
) -> None:
    """Writes a results file: ``title``, the stamp, the command that made it, then ``body``.

    A commit with uncommitted changes (``-dirty``) is refused unless ``force``: then it is
    written, marked so in the stamp.
    """
    described = commit_stamp(commit)
    if described.endswith("-dirty") and not force:
        raise SystemExit(
            f"{path.name}: the tree has uncommitted changes ({described}); commit first, or "
            "force (the file is then marked dirty)"
        )
    if described.endswith("-dirty"):
        described += " (uncommitted changes: forced)"
    lines = [
        f"# {title}",
        "",
        f"Generated by `{command}`; do not edit by hand.",
        "",
        *stamp(described, versions),
        "",
        *body,
    ]
    path.write_text("\n".join(lines) + "\n")
