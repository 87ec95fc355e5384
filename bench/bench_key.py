"""How fast is ``m_key`` (every keyframe) against the ffmpeg CLI and PyAV?

``python bench/bench_key.py [--runs N] [--quick]`` answers it alone and writes
``bench/out/RESULTS-partial.md``; ``python bench/run.py`` runs every question and writes
``bench/RESULTS.md``. How it measures: ``bench/harness.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from harness import (
    MAIN,
    Checks,
    Context,
    H,
    Row,
    W,
    alternate,
    ffmpeg_keyframes,
    frames_decoded,
    frames_text,
    jpgs,
    load_text,
    main,
    read_jpg,
    speed_target,
    verified_or_failed,
)


def task_key(ctx: Context) -> None:
    """m_key 800x600 jpg vs ffmpeg -skip_frame nokey."""
    import ossframe_native as ofn

    load = os.getloadavg()
    clip, floor, refs = ctx.clips["main"], ctx.floors["main"], ctx.refs["main"]
    expected = clip.keyframes()
    out = ctx.out("key")

    def ours() -> list:
        return list(ofn.snapshots(str(MAIN), f="jpg", m="key", w=W, h=H))

    def theirs() -> None:
        ffmpeg_keyframes(MAIN, out)

    checks = Checks()
    images, decoded = frames_decoded(ours)
    theirs()
    checks.check(
        [im.index for im in images] == expected,
        f"ours: {len(images)} keyframes, the frame numbers "
        + ("match" if [im.index for im in images] == expected else "DIFFER"),
    )
    mine, their = [read_jpg(im.data) for im in images], jpgs(out)
    checks.frames("ours", mine, expected, refs)
    checks.frames("ffmpeg", their, expected, refs)
    checks.similar("ffmpeg", mine, their)
    stats = alternate({"ours": ours, "ffmpeg": theirs}, ctx.runs)
    # Keyframes decode independently: the floor is their decode work (one single-threaded
    # decoder each) plus the outputs' work, spread over every core.
    assert floor.keyframes_serial_s is not None
    work_s = floor.keyframes_serial_s + len(expected) * floor.output_ms[(W, H)] / 1e3
    floor_s = work_s / len(os.sched_getaffinity(0))
    row = Row(
        task="`video/snapshots,m_key,w_800,h_600,f_jpg`",
        competitor="`ffmpeg -skip_frame nokey -i SRC -vsync 0 -s 800x600 out%03d.jpg`",
        ours=stats["ours"],
        theirs=stats["ffmpeg"],
        target="≥ 2× faster",
        met=None,
        floor_s=floor_s,
        frames=frames_text(decoded, len(images), len(expected)),
        verified=checks.text(),
        notes=f"{len(expected)} keyframes; {load_text(load)}",
    )
    row.met = verified_or_failed(speed_target(row, 2.0), checks)
    ctx.rows.append(row)


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "key": (task_key, {"main"}),
}


if __name__ == "__main__":
    sys.exit(main(TASKS, script=__file__, description=__doc__))
