"""The benchmark harness: timing, verification, floors, competitors and the results writer.

Results files (every ``bench/RESULTS*.md``) are written by their script, through
:class:`Results` and nothing else; no one edits them by hand. What the figures mean (targets
met or not, explanations) goes in ``bench/SUMMARY.md``, which cites each file's stamp. A script::

    parser = argparse.ArgumentParser(...)
    add_results_flags(parser)                    # --allow-dirty
    args = parser.parse_args()
    results = Results(BENCH / "RESULTS_X.md", allow_dirty=args.allow_dirty, uses=("ffmpeg",))
    ...                                          # measure
    results.write("Title", markdown_body)        # "# Title", the stamp, the body

``Results(...)``, made before measuring, refuses (:class:`DirtyTree`: the script exits with
the list of changes) a checkout with uncommitted changes unless ``--allow-dirty`` was given;
``write`` checks again, then writes in one atomic replace. The stamp under the title::

    Written by `python bench/bench_x.py --runs 5` through `bench/harness.py`; do not edit: ...

    * commit: `46a7092`     (git describe --always; -dirty added where --allow-dirty let it write)
    * date: 2026-12-04T17:10:46Z to 2026-12-04T17:19:02Z (8.3 min)
    * machine: CPU model, logical CPUs (usable here), RAM, system; GPU: nvidia-smi's list
    * load average (1, 5, 15 min): ... at the start; ... at the end
    * versions: Python, ossframe_native, PyAV (FFmpeg), NumPy, OpenCV, torch, then ``uses``
      (distribution names; ``ffmpeg`` is the FFmpeg command line's version)

Changes to the results files themselves, ``bench/SUMMARY.md`` and ``bench/*.png`` do not make a
checkout dirty (:data:`OUTPUTS`); untracked files do. Without git (a copy on a GPU machine)
the commit is ``OSSFRAME_COMMIT``, recorded where the tree was copied (``bench/GPU_RUN.md``).
:func:`read_stamp` reads a stamp back.

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
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

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
    from the engine's public statistic (``ossframe_native.collect_stats``, untimed runs only)."""
    from ossframe_native import collect_stats

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
# Results files: the one writer of bench/RESULTS*.md (how to use it: this module's docstring)

# What benchmark scripts and their commentary write: a change there is not a change of the code
# measured, so it does not make a checkout dirty (git pathspecs, relative to the root).
OUTPUTS = ("bench/RESULTS*.md", "bench/SUMMARY.md", "bench/*.png")


class DirtyTree(SystemExit):
    """Refusal to write results from a checkout with uncommitted changes (a ``SystemExit``: the
    script stops with the message and exit status 1)."""


class TreeState(NamedTuple):
    """Which code a run measures: ``commit`` as ``git describe --always --dirty`` writes it."""

    commit: str
    changes: list[str]  # git status lines that make it dirty

    @property
    def clean(self) -> bool:
        """Results may be written without ``--allow-dirty``: a known commit, no changes."""
        return not self.commit.endswith("-dirty") and self.commit != "unknown"


def _git(root: Path, *args: str) -> str | None:
    """The output of a git command run in ``root``, or None where git or the checkout is absent."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.rstrip() if done.returncode == 0 else None


def tree_state(root: Path = ROOT) -> TreeState:
    """The checkout's commit (``git describe --always``) and ``-dirty`` if ``git status`` shows any
    change but the :data:`OUTPUTS` (untracked files count). A copy without git (a GPU machine) is
    described by ``OSSFRAME_COMMIT``, which ``bench/gpu_check.sh`` takes from ``.whl/COMMIT``
    (written by ``bench/gpu_prepare.sh`` before the copy); with neither, the commit is
    ``unknown``."""
    describe = _git(root, "describe", "--always")
    if describe is None:
        commit = os.environ.get("OSSFRAME_COMMIT", "").strip()
        if commit:
            return TreeState(
                commit, [f"OSSFRAME_COMMIT={commit}"] if commit.endswith("-dirty") else []
            )
        return TreeState("unknown", ["no git checkout and no OSSFRAME_COMMIT"])
    excluded = [f":(exclude,glob){pattern}" for pattern in OUTPUTS]
    status = _git(root, "status", "--porcelain", "--", ".", *excluded) or ""
    changes = status.splitlines()
    return TreeState(describe + ("-dirty" if changes else ""), changes)


def add_results_flags(parser: argparse.ArgumentParser) -> None:
    """Adds ``--allow-dirty`` to the command line of a script that writes a results file."""
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="write the results although the checkout has uncommitted changes (the stamp's "
        "commit then ends in -dirty)",
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _gpus() -> str:
    if shutil.which("nvidia-smi") is None:
        return "none"
    names = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return "; ".join(names.splitlines()) or "nvidia-smi lists none"


def machine_text() -> str:
    """CPU model, cores (all, and those this process may use), memory, system and GPUs."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{_cpu_model()}, {os.cpu_count()} logical CPUs ({len(os.sched_getaffinity(0))} usable "
        f"here), {memory:.0f} GiB RAM, {platform.platform()}; GPU: {_gpus()}"
    )


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def ffmpeg_cli_version() -> str:
    """The version the ``ffmpeg`` command line reports (``ffmpeg -version``), or why none."""
    if shutil.which("ffmpeg") is None:
        return "not installed"
    first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    words = first.split()  # "ffmpeg version 5.1.9-0+deb12u1 Copyright ..."
    return words[2] if len(words) > 2 else "?"


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions_text(uses: Iterable[str] = ()) -> str:
    """Python, the engine and the libraries every script loads (torch where installed), then
    ``uses``: distribution names, and ``ffmpeg`` for the FFmpeg command line."""
    import ossframe_native

    torch = sys.modules.get("torch")
    torch_version = getattr(torch, "__version__", None) or _installed("torch")
    parts = [
        f"Python {platform.python_version()}",
        f"ossframe_native {ossframe_native.__version__}",
        f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})",
        f"NumPy {np.__version__}",
        f"OpenCV {cv2.__version__}",
        f"torch {torch_version or 'not installed'}",
    ]
    for name in uses:
        if name == "ffmpeg":
            parts.append(f"ffmpeg CLI {ffmpeg_cli_version()}")
        else:
            parts.append(f"{name} {_installed(name) or 'not installed'}")
    return ", ".join(parts)


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _iso(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Results:
    """The one writer of a results file (``bench/RESULTS*.md``): every file starts with a stamp.

    Made when the run starts: the checkout is checked then (a :class:`DirtyTree` unless
    ``allow_dirty``: no minutes spent on figures that could not be kept) and the date and load
    average are noted. :meth:`write` checks the checkout again and writes ``# title``, the stamp
    (command, commit, start and end dates, machine, load average at the start and at the end,
    versions) and ``body`` in one atomic replace. ``uses``: see :func:`versions_text`.
    """

    def __init__(
        self,
        path: Path,
        *,
        allow_dirty: bool = False,
        uses: Iterable[str] = (),
        command: str | None = None,
        root: Path = ROOT,
    ) -> None:
        self.path = Path(path)
        self.allow_dirty = allow_dirty
        self.uses = tuple(uses)
        self.root = Path(root)
        self.command = command or shlex.join(
            ["python", os.path.relpath(Path(sys.argv[0]).resolve(), self.root), *sys.argv[1:]]
        )
        self.state = self._checked("at the start")
        self.started = _utc_now()
        self.load_at_start = _load()

    def _checked(self, when: str) -> TreeState:
        state = tree_state(self.root)
        if not state.clean and not self.allow_dirty:
            shown = "\n  ".join(state.changes[:10]) + ("\n  ..." if len(state.changes) > 10 else "")
            raise DirtyTree(
                f"{self.path.name} not written: the checkout has uncommitted changes {when} "
                f"({state.commit}):\n  {shown}\nCommit first (results must name the code they "
                "measured), or run again with --allow-dirty to write them marked -dirty."
            )
        return state

    def stamp(self) -> str:
        """The stamp as it would be written now (the end date and load are those of now)."""
        state = self._checked("at the end")
        commit = f"`{state.commit}`"
        if state.commit != self.state.commit:  # committed or changed during the run
            commit += f" (`{self.state.commit}` when the run started)"
        ended = _utc_now()
        minutes = (ended - self.started).total_seconds() / 60
        return "\n".join(
            [
                f"Written by `{self.command}` through `bench/harness.py`; do not edit: run the "
                "command again. What the figures mean: `bench/SUMMARY.md`.",
                "",
                f"* commit: {commit}",
                f"* date: {_iso(self.started)} to {_iso(ended)} ({minutes:.1f} min)",
                f"* machine: {machine_text()}",
                f"* load average (1, 5, 15 min): {self.load_at_start} at the start; "
                f"{_load()} at the end",
                f"* versions: {versions_text(self.uses)}",
            ]
        )

    def write(self, title: str, body: str) -> Path:
        """Writes ``# title``, the stamp and ``body`` (Markdown) to the file; returns its path."""
        text = f"# {title}\n\n{self.stamp()}\n\n{body.strip()}\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.partial")
        scratch.write_text(text, encoding="utf-8")
        os.replace(scratch, self.path)
        return self.path


def read_stamp(path: Path) -> dict[str, str] | None:
    """The stamp of a results file (``command`` and each ``* key: value`` line), or None."""
    lines = path.read_text(encoding="utf-8").splitlines()
    written = next((i for i, line in enumerate(lines[:5]) if line.startswith("Written by `")), None)
    if written is None:
        return None
    stamp = {"command": lines[written].split("`")[1]}
    for line in lines[written + 2 :]:
        if not line.startswith("* "):
            break
        key, _, value = line[2:].partition(": ")
        stamp[key] = value
    return stamp


def env_torchcodec() -> str:
    try:
        import torchcodec  # noqa: F401

        return "imports here (not benchmarked yet)"
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        return f"not usable here ({type(exc).__name__}: {str(exc)[:100]})"


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


def write_results(ctx: Context, results: Results) -> None:
    """The rows so far, through the one writer (after each task: a stopped run keeps them)."""
    lines = [
        "One script per question (`bench/bench_*.py`, `bench/run.py` runs them all); "
        "`python bench/make_media.py` makes the media first (the scripts run it if needed). "
        f"{ctx.runs} timed runs per side, sides alternated.",
        "",
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
        "captures a call opens (`ossframe_native.collect_stats`), read during the untimed "
        "verification run.",
        "* The machine is shared with other engineers' test runs while this runs: the load "
        "average before→after each task is in its notes; treat rows with a high load as noisy. "
        "Both sides of a row are measured under the same conditions (alternated).",
    ]
    results.write("Benchmark results", "\n".join(lines))


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
    add_results_flags(parser)
    args = parser.parse_args(argv)
    partial = args.quick or bool(args.only) or not complete
    target = OUT / "RESULTS-partial.md" if partial else BENCH / "RESULTS.md"
    command = shlex.join(
        ["python", f"bench/{Path(script).name}", *(sys.argv[1:] if argv is None else argv)]
    )
    results = Results(
        target, allow_dirty=args.allow_dirty, uses=("ffmpeg", "scenedetect"), command=command
    )
    if make_media.main(quiet=True) != 0:
        return 1
    runs = 1 if args.quick else args.runs
    ctx = Context(runs=runs, quick=args.quick, truth=json.loads(make_media.CUTS.read_text()))
    names = args.only or list(tasks)
    prepare(ctx, set().union(*(tasks[name][1] for name in names)))
    for name in names:
        print(f"[task] {name} ...", flush=True)
        task_started = time.perf_counter()
        tasks[name][0](ctx)
        print(f"[task] {name} done in {time.perf_counter() - task_started:.0f} s", flush=True)
        write_results(ctx, results)
    print(f"wrote {target}")
    for row in ctx.rows:
        print(fmt_row(row))
    return 0


if __name__ == "__main__":
    # `python bench/harness.py`: the commit a results file written now would carry; exit status 1
    # where it would be refused without --allow-dirty (a GPU run checks this before it starts).
    state = tree_state()
    print("\n  ".join([state.commit, *state.changes]))
    sys.exit(0 if state.clean else 1)
