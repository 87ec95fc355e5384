"""Kernel benchmark at 4K: torch_ops on CUDA against the C++ kernels, one call each.

The question: how much faster are the GPU versions of the three kernels the ML path uses on a
3840x2160 frame than the native C++ (SIMD, one thread per call, as the CPU pipeline calls them)?

* resize: RGB 3840x2160 -> 224x224, the centre 2160x2160 square (area averaging: the
  ``scaletype=crop`` resize of ``m_avg,num_16,w_224,h_224``);
* YUV 4:2:0 -> RGB at 3840x2160 (conversion alone), and fused with the resize to 224x224 (what
  the pipeline runs per frame);
* dhash of a 3840x2160 luma plane (the hash returned to Python, so the GPU figure includes the
  copy of 64 bits back).

Inputs are textured noise (never zeros), resident where each kernel runs: the GPU times leave
out the upload, which is reported on its own line (4K YUV planes, pinned host -> device). Each
figure is the median of ``--reps`` calls after ``--warmup`` calls; the GPU is synchronized
around every call, so a figure is a kernel's latency, launches included. Before timing, each
GPU result is checked against the C++ one (within one level; dhash identical).

    python bench/bench_kernels_gpu.py                # needs CUDA
    python bench/bench_kernels_gpu.py --device cpu   # the same on CPU torch (dry run)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = 224


def textured(height: int, width: int, seed: int) -> np.ndarray:
    """Waves plus noise, uint8: structure for the filters, noise for the rounding."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 90 * np.sin(xx / 17.0 + seed) * np.cos(yy / 23.0)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def median_ms(fn: Callable[[], object], sync: Callable[[], None], warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    import torch

    from ossframe_native import kernels, torch_ops

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="torch device for torch_ops")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--size", default="3840x2160", help="frame size (smaller for dry runs)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    crop = ((width - height) / 2, 0.0, float(height), float(height))  # the centre square
    full_box = (0.0, 0.0, float(width), float(height))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def nothing() -> None:
        pass

    rgb = np.stack([textured(height, width, s) for s in range(3)], axis=-1)  # (H, W, 3)
    y = textured(height, width, 3)
    u, v = (textured(height // 2, width // 2, s) for s in (4, 5))
    rgb_chw = torch.from_numpy(rgb).permute(2, 0, 1).contiguous().to(device)
    planes = tuple(torch.from_numpy(p).to(device) for p in (y, u, v))
    host_planes = [torch.from_numpy(p) for p in (y, u, v)]
    if device.type == "cuda":
        host_planes = [p.pin_memory() for p in host_planes]
    small = np.empty((OUT, OUT, 3), np.uint8)
    full = np.empty((height, width, 3), np.uint8)

    # The GPU results must be the C++ ones (one level; dhash exact) before anything is timed.
    kernels.resize_into(rgb, crop, small)
    got = torch_ops.resize(rgb_chw, crop, (OUT, OUT), layout="CHW").permute(1, 2, 0).cpu()
    checks = {"resize": int(np.abs(got.numpy().astype(int) - small).max())}
    kernels.yuv420_to_rgb_into((y, u, v), full_box, full)
    got = torch_ops.yuv420_to_rgb(planes, full_box, (width, height), layout="HWC").cpu().numpy()
    checks["yuv420_to_rgb"] = int(np.abs(got.astype(int) - full).max())
    kernels.yuv420_to_rgb_into((y, u, v), crop, small)
    got = torch_ops.yuv420_to_rgb(planes, crop, (OUT, OUT), layout="HWC").cpu().numpy()
    checks["yuv420_to_rgb 224"] = int(np.abs(got.astype(int) - small).max())
    assert all(d <= 1 for d in checks.values()), f"GPU results differ from C++ by >1: {checks}"
    assert torch_ops.dhash(planes[0]) == kernels.dhash(y), "dhash differs"
    print(f"checked: max level difference to C++ {checks}; dhash identical", file=sys.stderr)

    w, r = args.warmup, args.reps
    rows = [
        (
            f"resize RGB {args.size} -> 224x224 (centre square, area)",
            median_ms(lambda: kernels.resize_into(rgb, crop, small), nothing, w, r),
            median_ms(
                lambda: torch_ops.resize(rgb_chw, crop, (OUT, OUT), layout="CHW"), sync, w, r
            ),
        ),
        (
            f"YUV 4:2:0 -> RGB at {args.size}",
            median_ms(lambda: kernels.yuv420_to_rgb_into((y, u, v), full_box, full), nothing, w, r),
            median_ms(
                lambda: torch_ops.yuv420_to_rgb(planes, full_box, (width, height)), sync, w, r
            ),
        ),
        (
            f"YUV 4:2:0 {args.size} -> RGB 224x224 (fused, the pipeline's step)",
            median_ms(lambda: kernels.yuv420_to_rgb_into((y, u, v), crop, small), nothing, w, r),
            median_ms(lambda: torch_ops.yuv420_to_rgb(planes, crop, (OUT, OUT)), sync, w, r),
        ),
        (
            f"dhash of a {args.size} luma plane",
            median_ms(lambda: kernels.dhash(y), nothing, w, r),
            median_ms(lambda: torch_ops.dhash(planes[0]), sync, w, r),
        ),
    ]
    upload = median_ms(lambda: [p.to(device, non_blocking=True) for p in host_planes], sync, w, r)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU torch"
    lines = [
        f"| kernel (one call) | C++ ms | torch_ops on {args.device} ({name}) ms | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for label, cpp, gpu in rows:
        lines.append(f"| {label} | {cpp:.3f} | {gpu:.3f} | {cpp / gpu:.1f}x |")
    lines.append(
        f"| (upload of the {args.size} YUV planes, pinned host -> {args.device}) | - | "
        f"{upload:.3f} | - |"
    )
    print("\n".join(lines))
    print(f"medians of {r} calls after {w} warm-up calls; torch {torch.__version__}")
    if args.json:
        figures = {
            "device": name,
            "reps": r,
            "checks": checks,
            "rows": [{"kernel": k, "cpp_ms": c, "torch_ms": g} for k, c, g in rows],
            "upload_ms": upload,
        }
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
