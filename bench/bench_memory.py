"""How much memory does capturing every frame of a 1080p clip take, and does it stay flat?

``python bench/bench_memory.py [--runs N] [--quick]`` answers it alone and writes
``bench/out/RESULTS-partial.md``; ``python bench/run.py`` runs every question and writes
``bench/RESULTS.md``. How it measures: ``bench/harness.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from harness import (
    MAIN,
    ROOT,
    Checks,
    Context,
    Row,
    Stats,
    load_text,
    main,
)


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


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "memory": (task_memory, set()),
}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory-child"]:  # started by task_memory
        memory_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        sys.exit(0)
    sys.exit(main(TASKS, script=__file__, description=__doc__))
