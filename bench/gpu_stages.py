"""Where one clip's time goes, CPU vs CUDA: open + index, decode of the wanted frames, render.

    python bench/gpu_stages.py CLIP [--runs 3] [--json OUT.json]

For ``m_avg,num_16,w_224,h_224,scaletype_crop`` on one clip, each figure the median of
``--runs``: opening the source (and, on CUDA, the NVDEC session), opening plus decoding the 16
frames (``api.select``, nothing rendered), and the whole ``frames_batch``. Differences give the
decode and the render (conversion, resize, stacking) alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = dict(m="avg", num=16, w=224, h=224, scaletype="crop")


def median_s(fn, runs: int) -> float:
    import torch

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    from ossframe_native import ml
    from ossframe_native.api import select
    from ossframe_native.decode import VideoSource
    from ossframe_native.params import SnapshotsRequest

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    request = SnapshotsRequest.from_kwargs(SPEC)

    def opened(hw: str | None) -> None:
        with VideoSource(args.clip, hw=hw):
            pass

    def decoded(hw: str | None) -> None:
        with VideoSource(args.clip, hw=hw) as src:
            assert len(list(select(src, request))) == 16

    def batch(device: str) -> None:
        ml.frames_batch(args.clip, **SPEC, output="torch", device=device)

    batch("cuda")  # warm-up: CUDA context, kernels, tables
    figures = {}
    for label, hw, device in (("CPU", None, "cpu"), ("CUDA", "cuda", "cuda")):
        figures[label] = {
            "open": median_s(lambda hw=hw: opened(hw), args.runs),
            "open+decode": median_s(lambda hw=hw: decoded(hw), args.runs),
            "frames_batch": median_s(lambda device=device: batch(device), args.runs),
        }
    rows = [
        f"| {args.clip.name} | open s | decode s | render s | frames_batch s |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, f in figures.items():
        decode = f["open+decode"] - f["open"]
        render = f["frames_batch"] - f["open+decode"]
        rows.append(
            f"| {label} | {f['open']:.3f} | {decode:.3f} | {render:.3f} | {f['frames_batch']:.3f} |"
        )
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
