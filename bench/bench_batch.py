"""How many sources per second does a batch (``process_many``) run?

``python bench/bench_batch.py [--runs N] [--quick]`` answers it alone and writes
``bench/out/RESULTS-partial.md``; ``python bench/run.py`` runs every question and writes
``bench/RESULTS.md``. How it measures: ``bench/harness.py``.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import (
    MEDIA,
    Checks,
    Context,
    Row,
    alternate,
    load_text,
    main,
    speed_target,
    verified_or_failed,
)


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


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "batch": (task_batch, set()),
}


if __name__ == "__main__":
    sys.exit(main(TASKS, script=__file__, description=__doc__))
