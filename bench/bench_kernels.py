"""How fast are the native kernels (dhash, resize, colour conversion) against NumPy and OpenCV?

``python bench/bench_kernels.py [--runs N] [--quick]`` answers it alone and writes
``bench/out/RESULTS-partial.md``; ``python bench/run.py`` runs every question and writes
``bench/RESULTS.md``. How it measures: ``bench/harness.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import cv2
import numpy as np
from harness import (
    MAIN,
    Checks,
    Context,
    H,
    Row,
    W,
    alternate_per_call,
    decode_frame,
    load_text,
    main,
    planes,
    psnr,
    ratio_target,
    verified_or_failed,
)


def numpy_dhash(plane: np.ndarray) -> int:
    """The documented dhash with the engine's integer cells: 9x8 block means, bit = left > right."""
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


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "kernels": (task_kernels, set()),
}


if __name__ == "__main__":
    sys.exit(main(TASKS, script=__file__, description=__doc__))
