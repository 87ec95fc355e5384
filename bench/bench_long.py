"""Does a capture cost the same in a 60-minute file as in a 1-minute one, in every container?

``python bench/bench_long.py [--runs 3] [--lengths 1,10,60] [--before DIR]`` writes
``bench/RESULTS_LONG.md`` and ``bench/long_files.png`` (matplotlib, a bench-only dependency).

Media (``bench/media/long/``, git-ignored, made once with the FFmpeg CLI): a 1-minute 1080p
H.264 clip (``bench/media/main_1080p_h264.mp4`` from ``make_media.py`` where it exists, else
testsrc2 with temporal noise, x264 veryfast, ``-g 60``, 2 B-frames) and a 1-minute 854x480 VP9
clip, each stream-copied (concat demuxer, ``-c copy``, no re-encode) into files of every length
in MKV, MPEG-TS (which starts at 1.4 s, as the muxer writes it) and MP4, and the VP9 one in
WebM.

Questions, each as a whole process (``python -m ossframe_native.cli process``, imports
included) beside the FFmpeg CLI, alternating, medians of ``--runs``:

1. ``video/snapshot,t_T,f_jpg,w_800,h_600`` vs ``ffmpeg -ss T -i SRC -frames:v 1 -s 800x600``
   (640x360 for the VP9 clip),
   at T = 60 * (L // 2) + 37.3 s in an L-minute file (the same picture of the clip in every
   length, so times compare). Our JPEG must be byte-identical to the one from the 1-minute
   file (the same frame came out) and close to FFmpeg's (PSNR).
2. ``video/snapshots,inter_60000,f_jpg,w_800,h_600`` over the 10- and 60-minute MKV vs one
   ``ffmpeg -ss T`` run per minute.
3. Bytes read from the file by one snapshot (in-process, through a counting file object), with
   this tree's code and, with ``--before DIR``, the code in DIR (a copy of an older
   ``ossframe_native`` package, whose times are then measured too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from harness import Results, add_results_flags

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "bench" / "media"
LONG = MEDIA / "long"
SPEC = "video/snapshot,t_{ms},f_jpg,w_{w},h_{h}"
SIZES = {"h264": (800, 600), "vp9": (640, 360)}  # the VP9 clip is 854x480
CONTAINERS = {"mkv": "matroska", "ts": "mpegts", "mp4": "mp4", "webm": "webm"}


def ffmpeg(*args: str) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    subprocess.run(cmd, check=True)


def base_clips() -> dict[str, Path]:
    """The 1-minute clips every long file is copied from: {"h264": ..., "vp9": ...}."""
    LONG.mkdir(parents=True, exist_ok=True)
    h264 = MEDIA / "main_1080p_h264.mp4"
    if not h264.exists():
        h264 = LONG / "base_1080p_h264.mp4"
        if not h264.exists():
            ffmpeg(
                "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30,noise=alls=8:allf=t",
                "-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-bf", "2",
                "-pix_fmt", "yuv420p", str(h264),
            )  # fmt: skip
    vp9 = LONG / "base_480p_vp9.webm"
    if not vp9.exists():
        ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=s=854x480:r=30,noise=alls=8:allf=t", "-t", "60",
            "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "60",
            "-b:v", "1M", str(vp9),
        )  # fmt: skip
    return {"h264": h264, "vp9": vp9}


def long_file(base: Path, minutes: int, ext: str) -> Path:
    """``base`` stream-copied ``minutes`` times into one file of container ``ext``."""
    path = LONG / f"{base.stem}_{minutes}min.{ext}"
    if not path.exists():
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
            listing.write(f"file '{base}'\n" * minutes)
        try:
            ffmpeg(
                "-f", "concat", "-safe", "0", "-i", listing.name, "-map", "0:v", "-c", "copy",
                "-f", CONTAINERS[ext], str(path),
            )  # fmt: skip
        finally:
            os.unlink(listing.name)
    return path


def run_ours(package_root: Path, src: Path, spec: str, out: Path) -> None:
    """``ossframe process`` with the package found under ``package_root``, its bytecode
    compiled as an installed package's is (see :func:`compile_package`)."""
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, "-m", "ossframe_native.cli", "process", str(src), spec, "-o", str(out)]
    subprocess.run(cmd, check=True, env=env, cwd=package_root)  # cwd: first on sys.path


def compile_package(package_root: Path) -> None:
    """Writes the package's bytecode once, as ``pip install`` does: otherwise a process started
    with PYTHONDONTWRITEBYTECODE compiles every module on every run (~60 ms here)."""
    package = str(package_root / "ossframe_native")
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)


def ffmpeg_snapshot(src: Path, t_s: float, out: Path, size: tuple[int, int] = (800, 600)) -> None:
    ffmpeg("-ss", f"{t_s:.3f}", "-i", str(src), "-frames:v", "1", "-s", "{}x{}".format(*size),
           "-q:v", "2", str(out))  # fmt: skip


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(jobs: dict[str, object], runs: int) -> dict[str, float]:
    """Median seconds of each job, run in turns (a, b, c, a, b, c, ...)."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(runs):
        for name, fn in jobs.items():
            times[name].append(timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


BYTES_SCRIPT = """
import io, json, sys
from fractions import Fraction
from ossframe_native.decode import VideoSource
from ossframe_native.params import SnapshotRequest
from ossframe_native.modes import mode_for

class Counting(io.RawIOBase):
    def __init__(self, path):
        self.f = open(path, "rb"); self.n = 0
    def readable(self): return True
    def seekable(self): return True
    def readinto(self, b):
        k = self.f.readinto(b); self.n += k or 0; return k
    def seek(self, o, w=0): return self.f.seek(o, w)
    def tell(self): return self.f.tell()

path, ms = sys.argv[1], int(sys.argv[2])
reader = Counting(path)
request = SnapshotRequest.from_kwargs({"t": ms, "f": "jpg"})
with VideoSource(reader, around=Fraction(ms, 1000)) as src:
    frames = list(src.decode(mode_for(request).plan(src.index).runs))
print(json.dumps({"bytes": reader.n, "index": src.index.number(frames[0][0])}))
"""


WARM_SCRIPT = """
import statistics, sys, time
import ossframe_native as ofn

path, spec, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
request = ofn.parse_process(spec).action
list(ofn.capture(path, request))  # imports and first-use set-up, not timed
times = []
for _ in range(runs):
    start = time.perf_counter()
    list(ofn.capture(path, request))
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def warm_seconds(package_root: Path, src: Path, spec: str, runs: int) -> float:
    """Median seconds of the capture in one already started process (what a service or a
    batch worker pays per request: no interpreter start or imports)."""
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    cmd = [sys.executable, "-c", WARM_SCRIPT, str(src), spec, str(runs)]
    done = subprocess.run(cmd, check=True, env=env, cwd=package_root, capture_output=True)
    return float(done.stdout)


def bytes_read(package_root: Path, src: Path, ms: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    cmd = [sys.executable, "-c", BYTES_SCRIPT, str(src), str(ms)]
    done = subprocess.run(cmd, check=True, env=env, cwd=package_root, capture_output=True)
    return json.loads(done.stdout)


def psnr(a: Path, b: Path) -> float:
    import numpy as np
    from PIL import Image

    x = np.asarray(Image.open(a), dtype=np.float64)
    y = np.asarray(Image.open(b), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def snapshot_rows(args, bases, work: Path) -> list[dict]:
    rows = []
    for ext in ("mkv", "ts", "webm", "mp4"):
        codec = "vp9" if ext == "webm" else "h264"
        base, size = bases[codec], SIZES[codec]
        first_jpg = None
        for minutes in args.lengths:
            src = long_file(base, minutes, ext)
            t_s = 60 * (minutes // 2) + 37.3
            ms = round(t_s * 1000)
            spec = SPEC.format(ms=ms, w=size[0], h=size[1])
            outs = {name: work / f"{ext}_{minutes}_{name}.jpg" for name in ("ours", "ffmpeg")}
            jobs = {
                "ours": partial(run_ours, ROOT, src, spec, outs["ours"]),
                "ffmpeg": partial(ffmpeg_snapshot, src, t_s, outs["ffmpeg"], size),
            }
            if args.before:
                outs["before"] = work / f"{ext}_{minutes}_before.jpg"
                jobs["before"] = partial(run_ours, args.before, src, spec, outs["before"])
            before_load = load()
            stats = alternate(jobs, args.runs)
            jpg = outs["ours"].read_bytes()
            first_jpg = first_jpg or jpg
            row = {
                "container": ext,
                "minutes": minutes,
                "t": t_s,
                "size": src.stat().st_size,
                **{f"{name}_s": value for name, value in stats.items()},
                "same_as_1min": jpg == first_jpg,
                "psnr_vs_ffmpeg": psnr(outs["ours"], outs["ffmpeg"]),
                "warm_s": warm_seconds(ROOT, src, spec, args.runs),
                "bytes": bytes_read(ROOT, src, ms),
                "load": f"{before_load}→{load()}",
            }
            if args.before:
                row["bytes_before"] = bytes_read(args.before, src, ms)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def interval_row(args, bases, work: Path, minutes: int) -> dict:
    src = long_file(bases["h264"], minutes, "mkv")
    spec = "video/snapshots,inter_60000,f_jpg,w_800,h_600"
    folder = work / f"interval_{minutes}"
    folder.mkdir(exist_ok=True)

    def loop() -> None:
        for k in range(minutes):
            ffmpeg_snapshot(src, 60.0 * k, folder / f"ff_{k}.jpg")

    jobs = {"ours": partial(run_ours, ROOT, src, spec, folder / "ours.jpg"), "ffmpeg_loop": loop}
    if args.before:
        jobs["before"] = partial(run_ours, args.before, src, spec, folder / "before.jpg")
    before_load = load()
    stats = alternate(jobs, args.runs)
    outputs = sorted(folder.glob("ours_*.jpg"))
    row = {"minutes": minutes, "outputs": len(outputs), **stats, "load": f"{before_load}→{load()}"}
    print(json.dumps(row), flush=True)
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    names = [n for n in ("ours", "before", "ffmpeg") if f"{n}_s" in rows[0]]
    styles = {"ours": "-o", "before": ":x", "ffmpeg": "--s"}
    for ext in dict.fromkeys(r["container"] for r in rows):
        mine = [r for r in rows if r["container"] == ext]
        for name in names:
            ax.plot(
                [r["minutes"] for r in mine],
                [r[f"{name}_s"] for r in mine],
                styles[name],
                label=f"{ext} {name}",
            )
    ax.set_xscale("log")
    ax.set_xlabel("file length (minutes, stream copies of a 1-minute clip)")
    ax.set_ylabel("one snapshot, whole process (s, median)")
    ax.set_title("Snapshot cost against file length")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def report(rows: list[dict], intervals: list[dict], args) -> str:
    lines = [
        f"Medians of {args.runs} alternating runs, whole processes (imports included), on "
        f"{os.cpu_count()} cores; the load average before→after each row is in its last "
        "column. 1080p H.264 (MKV, TS, MP4) and 480p VP9 (WebM) stream-copied to each "
        "length; t = 60·(L//2) + 37.3 s. `ours in-process`: the same capture in an already "
        "started process (median of the runs after a first one; in parentheses, against the "
        "FFmpeg CLI), what a service or batch worker pays per request. `same` = our JPEG is "
        "byte-identical to the 1-minute "
        "file's (the same frame came out).",
        "",
        "| container | length | file | ours | vs FFmpeg | vs 1-min file | ours in-process | "
        + ("before | " if args.before else "")
        + "bytes read | "
        + ("bytes read before | " if args.before else "")
        + "same | PSNR vs FFmpeg | load |",
        "|---|---|---|---|---|---|---|" + ("---|" if args.before else "") + "---|"
        + ("---|" if args.before else "") + "---|---|---|",
    ]  # fmt: skip
    first = {}
    for r in rows:
        first.setdefault(r["container"], r["ours_s"])
        cells = [
            r["container"],
            f"{r['minutes']} min",
            mib(r["size"]),
            f"{r['ours_s']:.3f} s",
            f"{r['ours_s'] / r['ffmpeg_s']:.2f}× ({r['ffmpeg_s']:.3f} s)",
            f"{r['ours_s'] / first[r['container']]:.2f}×",
            f"{r['warm_s']:.3f} s ({r['warm_s'] / r['ffmpeg_s']:.2f}×)",
        ]
        if args.before:
            cells.append(f"{r['before_s']:.3f} s")
        cells.append(mib(r["bytes"]["bytes"]))
        if args.before:
            cells.append(mib(r["bytes_before"]["bytes"]))
        cells += [
            "yes" if r["same_as_1min"] else "NO",
            f"{r['psnr_vs_ffmpeg']:.1f} dB",
            r["load"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for interval in intervals:
        lines.append(
            "Interval `video/snapshots,inter_60000,f_jpg,w_800,h_600` over the "
            f"{interval['minutes']}-minute MKV ({interval['outputs']} images): ours "
            f"{interval['ours']:.2f} s, {interval['minutes']} `ffmpeg -ss T` runs "
            f"{interval['ffmpeg_loop']:.2f} s: "
            f"{interval['ffmpeg_loop'] / interval['ours']:.2f}× faster"
            + (f"; before {interval['before']:.2f} s" if "before" in interval else "")
            + f". load {interval['load']}"
        )
        lines.append("")
    lines += ["![snapshot cost against file length](long_files.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lengths", default="1,10,60")
    parser.add_argument("--before", type=Path, help="root holding an older ossframe_native")
    add_results_flags(parser)
    args = parser.parse_args()
    args.lengths = [int(x) for x in args.lengths.split(",")]
    if shutil.which("ffmpeg") is None:
        sys.exit("needs the ffmpeg command line")
    results = Results(
        ROOT / "bench" / "RESULTS_LONG.md", allow_dirty=args.allow_dirty, uses=("ffmpeg",)
    )
    bases = base_clips()
    compile_package(ROOT)
    if args.before:
        compile_package(args.before)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = snapshot_rows(args, bases, work)
        intervals = [interval_row(args, bases, work, m) for m in args.lengths if m >= 10]
    title = "Long files: snapshot cost against file length"
    print(f"wrote {results.write(title, report(rows, intervals, args))}")
    plot(rows, ROOT / "bench" / "long_files.png")  # after the write, which may refuse


if __name__ == "__main__":
    main()
