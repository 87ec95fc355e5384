"""How fast is a snapshot of a 4K clip?

``python bench/bench_uhd.py [--runs N] [--quick]`` answers it alone and writes
``bench/out/RESULTS-partial.md``; ``python bench/run.py`` runs every question and writes
``bench/RESULTS.md``. How it measures: ``bench/harness.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from harness import (
    UHD,
    Checks,
    Context,
    H,
    Row,
    W,
    alternate,
    around,
    ffmpeg_snapshot,
    frames_decoded,
    frames_text,
    load_text,
    main,
    read_jpg,
    reference_frames,
)


def task_uhd(ctx: Context) -> None:
    """Informational: one exact snapshot on the 4K clip."""
    import ossframe_native as ofn

    load = os.getloadavg()
    clip = ctx.clips["uhd"]
    n = clip.frame_at(7300)
    out = ctx.out("uhd")
    refs = reference_frames(clip, around([n]), (W, H))

    def ours() -> Any:
        return ofn.snapshot(str(UHD), t=7300, w=W, h=H, f="jpg")

    def theirs() -> None:
        ffmpeg_snapshot(UHD, "7.3", out / "ffmpeg.jpg")

    checks = Checks()
    image, decoded = frames_decoded(ours)
    theirs()
    mine, their = [read_jpg(image.data)], [read_jpg(out / "ffmpeg.jpg")]
    checks.check(image.index == n, f"ours: frame {image.index} (expected {n})")
    checks.frames("ours", mine, [n], refs)
    checks.frames("ffmpeg", their, [n], refs)
    stats = alternate({"ours": ours, "ffmpeg": theirs}, ctx.runs)
    ctx.rows.append(
        Row(
            task="`video/snapshot,t_7300,w_800,h_600,f_jpg` on the 3840x2160 H.264 clip",
            competitor="`ffmpeg -ss 7.3 -i SRC -frames:v 1 -s 800x600 out.jpg`",
            ours=stats["ours"],
            theirs=stats["ffmpeg"],
            target="(reference)",
            met=None,
            frames=frames_text(decoded, 1, len(clip.needed([n]))),
            verified=checks.text(),
            notes=load_text(load),
        )
    )


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "uhd": (task_uhd, set()),
}


if __name__ == "__main__":
    sys.exit(main(TASKS, script=__file__, description=__doc__))
