"""GPU throughput over many sources: ours on a GPU vs ours on all the CPU's cores, same machine.

The question: with several NVDEC decoders in flight across sources (``ml.frames_batches``,
``decoders`` sources at once), how many clips per second does a GPU turn into model input,
against the CPU path on every core? Tasks, each over the same clips (H.264 and HEVC, 4K):

* ``avg``: ``m_avg,num_16,w_224,h_224,scaletype_crop`` -> one [16, 3, 224, 224] uint8 tensor
  per clip; the CPU's frames are the reference: the same frame numbers, each GPU frame within
  40 dB PSNR of the CPU's (targets: GPU >= 3x the CPU's clips/s, goal 5x);
* ``dhash``: ``m_dhash,thr_15,w_224,h_224,scaletype_crop`` (every frame decoded and hashed,
  on the GPU where it decodes): the same outputs and scores as the CPU (target >= 2x).

Each side is run with several decoder counts (CPU: one source on every core, and sources side by
side sharing the cores; GPU: one source, the device default, more); the best CPU figure is the
baseline. The GPU's memory peak is sampled (NVML: everything on the device, NVDEC surfaces
included; and torch's allocator peak).

    python bench/bench_gpu.py --json OUT.json                       # GPU machine: 16 4K clips
    python bench/bench_gpu.py --device cpu --size 320x180 --clips 4 --seconds 2 --runs 1 \\
        --json OUT.json      # a dry run on a CPU machine: the scheduler with CPU decoders

The clips (git-ignored, made with PyAV in bench/media/gpu/, several at once): a camera pan over
textured content with a moving block and light noise, 30 fps, a keyframe every second.
``bench/gpu_report.py`` turns the JSON into bench/RESULTS_ML_GPU.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "bench" / "media" / "gpu"
sys.path.insert(0, str(ROOT))

FPS, GOP = 30, 30
CODECS = {"h264": ("libx264", "veryfast"), "hevc": ("libx265", "ultrafast")}
TASKS = {
    "avg": dict(m="avg", num=16, w=224, h=224, scaletype="crop"),
    "dhash": dict(m="dhash", thr=15, w=224, h=224, scaletype="crop"),
}
SPECS = {
    "avg": "m_avg,num_16,w_224,h_224,scaletype_crop",
    "dhash": "m_dhash,thr_15,w_224,h_224,scaletype_crop",
}
TARGETS = {"avg": 3.0, "dhash": 2.0}
MIN_PSNR = 40.0


# ---------------------------------------------------------------------------------------------
# Media


def make_media(codec: str, clips: int, size: tuple[int, int], seconds: int) -> list[Path]:
    """The clips of ``codec`` that are missing, made several at once; returns all paths."""
    width, height = size
    paths = [MEDIA / f"{codec}_{width}x{height}_{seconds}s_{k:02d}.mp4" for k in range(clips)]
    missing = [(k, p) for k, p in enumerate(paths) if not p.exists()]
    MEDIA.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(len(missing), (os.cpu_count() or 1) // 2))
    with ProcessPoolExecutor(workers) as pool:
        for path in pool.map(_make_clip, [(codec, k, p, size, seconds) for k, p in missing]):
            print(f"made {path.name}", file=sys.stderr, flush=True)
    return paths


def _make_clip(args: tuple[str, int, Path, tuple[int, int], int]) -> Path:
    import av

    codec, k, path, (width, height), seconds = args
    encoder, preset = CODECS[codec]
    rng = np.random.default_rng(k)
    yy, xx = np.mgrid[0 : height * 2, 0 : width * 2].astype(np.float32)
    phase = rng.uniform(0, 6.3, 3).astype(np.float32)
    world = np.stack(
        [
            128 + 60 * np.sin(xx / (23 + 5 * c) + phase[c]) * np.cos(yy / (31 + 7 * c))
            for c in range(3)
        ],
        axis=-1,
    ).astype(np.uint8)
    noise = [rng.integers(0, 12, (height, width, 3), dtype=np.uint8) for _ in range(5)]
    vx, vy = rng.uniform(-6, 6, 2)
    tmp = path.with_suffix(".tmp.mp4")
    options = {"preset": preset, "crf": "23"}
    if encoder == "libx264":
        options["x264-params"] = (
            f"keyint={GOP}:min-keyint={GOP}:scenecut=0:threads=2:log-level=error"
        )
    else:
        options["x265-params"] = f"keyint={GOP}:min-keyint={GOP}:scenecut=0:pools=2:log-level=error"
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream(encoder, rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(FPS * seconds):
            x, y = int(width / 2 + vx * i) % width, int(height / 2 + vy * i) % height
            rgb = world[y : y + height, x : x + width] + noise[i % 5]  # wraps: texture
            side = max(8, height // 6)
            bx, by = (9 * i) % (width - side), (4 * i) % (height - side)
            rgb[by : by + side, bx : bx + side] = (230, 40 + i % 200, 40)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    tmp.rename(path)
    return path


# ---------------------------------------------------------------------------------------------
# Timing


class MemorySampler:
    """The device's used memory (NVML, every process and NVDEC's surfaces too) sampled every
    10 ms while running; ``peak_mib`` is the peak above the level at start."""

    def __init__(self, device: str) -> None:
        self.handle: Any = None
        if device != "cpu":
            try:
                import pynvml

                pynvml.nvmlInit()
                index = int(device.partition(":")[2] or 0)
                self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                print(f"NVML unavailable ({exc}): no device memory figure", file=sys.stderr)
        self.peak_mib: float | None = None

    def used(self) -> float:
        import pynvml

        return pynvml.nvmlDeviceGetMemoryInfo(self.handle).used / 2**20

    def __enter__(self) -> MemorySampler:
        if self.handle is None:
            return self
        self.stop = threading.Event()
        self.start = self.used()
        self.peak = self.start

        def sample() -> None:
            while not self.stop.wait(0.01):
                self.peak = max(self.peak, self.used())

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is None:
            return
        self.stop.set()
        self.thread.join()
        self.peak_mib = self.peak - self.start


def run_once(paths: list[Path], task: str, device: str, decoders: int | None) -> tuple[float, list]:
    """Seconds for every clip's batch (GPU work synchronized), and the batches on the CPU."""
    import torch

    from ossframe_native import ml

    started = time.perf_counter()
    batches = list(
        ml.frames_batches(paths, **TASKS[task], output="torch", device=device, decoders=decoders)
    )
    if device != "cpu":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    return elapsed, batches


def measure(
    paths: list[Path], task: str, device: str, decoders: int | None, runs: int
) -> tuple[dict[str, Any], list]:
    """One configuration: ``runs`` timed runs after a warm-up on two clips."""
    import torch

    from ossframe_native import loader

    run_once(paths[:2], task, device, decoders)
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    with MemorySampler(device) as memory:
        for _ in range(runs):
            elapsed, batches = run_once(paths, task, device, decoders)
            seconds.append(elapsed)
    count = decoders or loader.decoders_for(device)
    figure: dict[str, Any] = {
        "decoders": count,
        "default": decoders is None,
        "threads_per_source": None if count == 1 else loader.threads_per_source(count),
        "seconds": seconds,
        "clips_per_s": len(paths) / statistics.median(seconds),
    }
    if device != "cpu":
        figure["device_memory_peak_mib"] = memory.peak_mib
        figure["torch_memory_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(f"  {task} {device} decoders={count}: {figure['clips_per_s']:.2f} clips/s", flush=True)
    return figure, batches


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def compare(gpu: list, cpu: list) -> dict[str, Any]:
    """Frame numbers, scores and pixels of the device's batches against the CPU's."""
    same_frames = sum(g.indices == c.indices for g, c in zip(gpu, cpu, strict=True))
    same_scores = sum(g.scores == c.scores for g, c in zip(gpu, cpu, strict=True))
    lowest = float("inf")
    for g, c in zip(gpu, cpu, strict=True):
        if g.indices == c.indices:
            for a, b in zip(g.data.cpu().numpy(), c.data.numpy(), strict=True):
                lowest = min(lowest, psnr(a, b))
    return {
        "clips": len(cpu),
        "same_frames": same_frames,
        "same_scores": same_scores,
        "frames": sum(len(c) for c in cpu),
        "lowest_psnr": lowest,
    }


def bench_task(
    codec: str,
    task: str,
    paths: list[Path],
    device: str,
    cpu_decoders: list[int],
    device_decoders: list[int | None],
    runs: int,
    cpu_runs: int,
) -> dict[str, Any]:
    cpu_figures, cpu_batches = [], None
    for count in cpu_decoders:
        figure, batches = measure(paths, task, "cpu", count, cpu_runs)
        cpu_figures.append(figure)
        cpu_batches = cpu_batches or batches
    device_figures, checks = [], []
    for count in device_decoders:
        figure, batches = measure(paths, task, device, count, runs)
        device_figures.append(figure)
        checks.append(compare(batches, cpu_batches or []))
    best_cpu = max(f["clips_per_s"] for f in cpu_figures)
    best_device = max(f["clips_per_s"] for f in device_figures)
    default = next(f for f in device_figures if f["default"])
    return {
        "codec": codec,
        "task": task,
        "spec": SPECS[task],
        "cpu": cpu_figures,
        "device": device_figures,
        "checks": checks,
        "best_cpu_clips_per_s": best_cpu,
        "best_device_clips_per_s": best_device,
        "default_ratio": default["clips_per_s"] / best_cpu,
        "best_ratio": best_device / best_cpu,
        "target": TARGETS[task],
    }


def machine(device: str) -> dict[str, Any]:
    import av
    import torch

    info = {
        "cpus": len(os.sched_getaffinity(0)),
        "load_before": os.getloadavg()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "pyav": av.__version__,
        "ffmpeg": str(av.ffmpeg_version_info),
        "numpy": np.__version__,
    }
    if device != "cpu":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (dry)")
    parser.add_argument("--size", default="3840x2160", help="clip size (default 3840x2160)")
    parser.add_argument("--clips", type=int, default=16, help="clips per codec (default 16)")
    parser.add_argument("--seconds", type=int, default=4, help="clip length (default 4 s)")
    parser.add_argument("--codecs", default="h264,hevc")
    parser.add_argument("--tasks", default="avg,dhash")
    parser.add_argument("--runs", type=int, default=2, help="timed runs on the device")
    parser.add_argument("--cpu-runs", type=int, default=1, help="timed runs on the CPU")
    parser.add_argument("--cpu-decoders", default="1,4", help="CPU decoder counts to try")
    parser.add_argument(
        "--device-decoders", default="1,default,14", help="device decoder counts to try"
    )
    parser.add_argument("--media-only", action="store_true", help="make the clips, then stop")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    codecs = args.codecs.split(",")
    started = time.perf_counter()
    media = {c: make_media(c, args.clips, (width, height), args.seconds) for c in codecs}
    print(f"media ready in {time.perf_counter() - started:.0f} s", flush=True)
    if args.media_only:
        return
    from ossframe_native.devices import device_of

    device = device_of(args.device)
    cpu_decoders = [int(v) for v in args.cpu_decoders.split(",")]
    device_decoders: list[int | None] = [
        None if v == "default" else int(v) for v in args.device_decoders.split(",")
    ]
    if None not in device_decoders:
        device_decoders.append(None)
    figures: dict[str, Any] = {
        "machine": machine(device),
        "device": device,
        "size": args.size,
        "clips": args.clips,
        "seconds": args.seconds,
        "runs": args.runs,
        "cpu_runs": args.cpu_runs,
        "results": [],
    }
    for codec in codecs:
        for task in args.tasks.split(","):
            print(f"{codec} {task}:", flush=True)
            result = bench_task(
                codec,
                task,
                media[codec],
                device,
                cpu_decoders,
                device_decoders,
                args.runs,
                args.cpu_runs,
            )
            figures["results"].append(result)
            print(
                f"  best {device} / best CPU: {result['best_ratio']:.2f}x (target "
                f"{result['target']}x); checks {result['checks']}",
                flush=True,
            )
            if args.json:  # after every task: a run cut short keeps what it measured
                args.json.write_text(json.dumps(figures, indent=1))
    figures["elapsed_s"] = time.perf_counter() - started
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
