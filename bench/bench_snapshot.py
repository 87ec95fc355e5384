"""How long does one exact ``video/snapshot`` take in-process, against the ffmpeg CLI?

``python bench/bench_snapshot.py [--runs N] [--quick]`` answers it alone and writes
``bench/out/RESULTS-partial.md``; ``python bench/run.py`` runs every question and writes
``bench/RESULTS.md``. How it measures: ``bench/harness.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from harness import (
    MAIN,
    Checks,
    Context,
    H,
    Row,
    W,
    alternate,
    ffmpeg_snapshot,
    frames_decoded,
    frames_text,
    load_text,
    main,
    read_jpg,
    speed_target,
    verified_or_failed,
)


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
    image, decoded = frames_decoded(ours)
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


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "snapshot": (task_snapshot, {"main"}),
}


if __name__ == "__main__":
    sys.exit(main(TASKS, script=__file__, description=__doc__))
