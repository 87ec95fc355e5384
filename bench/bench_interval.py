"""How fast is ``video/snapshots`` with an interval (H.264 1080p, HEVC 720p) against the ffmpeg
CLI and PyAV?

``python bench/bench_interval.py [--runs N] [--quick]`` answers it alone and writes
``bench/out/RESULTS-partial.md``; ``python bench/run.py`` runs every question and writes
``bench/RESULTS.md``. How it measures: ``bench/harness.py``.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable

from harness import (
    Checks,
    Context,
    H,
    Row,
    W,
    alternate,
    ffmpeg_fps,
    ffmpeg_ss_loop,
    frames_decoded,
    frames_text,
    fresh,
    jpgs,
    load_text,
    main,
    pyav_seek_each,
    read_jpg,
    speed_target,
    verified_or_failed,
)


def interval_rows(ctx: Context, key: str, label: str, competitors: list[str]) -> None:
    """video/snapshots inter_10000 (6 frames) 800x600 jpg on clip ``key``."""
    import ossframe_native as ofn

    load = os.getloadavg()
    clip, floor, refs = ctx.clips[key], ctx.floors[key], ctx.refs[key]
    src = clip.path
    times_ms = list(range(0, 60000, 10000))
    expected = [clip.frame_at(t) for t in times_ms]
    times_s = [str(t // 1000) for t in times_ms]
    out = ctx.out(f"interval_{key}")

    def ours() -> list:
        return list(ofn.snapshots(str(src), f="jpg", inter=10000, w=W, h=H))

    sides: dict[str, Callable[[], object]] = {"ours": ours}
    folders = {name: fresh(out / name.replace(" ", "_")) for name in competitors}
    if "fps" in competitors:
        sides["fps"] = lambda: ffmpeg_fps(src, 10, folders["fps"])
    if "ss" in competitors:
        sides["ss"] = lambda: ffmpeg_ss_loop(src, times_s, folders["ss"])
    if "pyav" in competitors:
        sides["pyav"] = lambda: pyav_seek_each(src, times_ms)

    ours_checks = Checks()
    images, decoded = frames_decoded(ours)
    ours_checks.check(
        [im.index for im in images] == expected,
        f"ours: frames {[im.index for im in images]} (expected: {expected})",
    )
    mine = [read_jpg(im.data) for im in images]
    ours_checks.frames("ours", mine, expected, refs)
    checks: dict[str, Checks] = {}  # per competitor, starting from ours
    for name in competitors:
        result = sides[name]()
        theirs = [read_jpg(b) for b in result] if name == "pyav" else jpgs(folders[name])
        checks[name] = copy.deepcopy(ours_checks)
        checks[name].frames(name, theirs, expected, refs)
        checks[name].similar(name, mine, theirs)
    stats = alternate(sides, ctx.runs)
    must = len(clip.needed(expected))
    floor_s = floor.task_s(clip, expected, len(expected), (W, H))
    frames = frames_text(decoded, len(images), must)
    names = {
        "fps": ("`ffmpeg -i SRC -vf fps=1/10:round=up -s 800x600 out%03d.jpg`", 12.0),
        "ss": (
            "six `ffmpeg -ss T -i SRC -frames:v 1 -s 800x600` runs",
            2.2 if key == "main" else 1.5,
        ),
        "pyav": ("plain PyAV: seek + decode to each target, cv2 resize + encode", None),
    }
    for name in competitors:
        text, at_least = names[name]
        row = Row(
            task=f"`video/snapshots,inter_10000,w_800,h_600,f_jpg` (6 frames), {label}",
            competitor=text,
            ours=stats["ours"],
            theirs=stats[name],
            target=f"≥ {at_least}× faster" if at_least else "(reference)",
            met=None,
            floor_s=floor_s,
            frames=frames,
            verified=checks[name].text(),
            notes=load_text(load),
        )
        if at_least:
            row.met = verified_or_failed(speed_target(row, at_least), checks[name])
        ctx.rows.append(row)


def task_interval(ctx: Context) -> None:
    competitors = ["ss", "pyav"] if ctx.quick else ["fps", "ss", "pyav"]
    interval_rows(ctx, "main", "1080p H.264", competitors)


def task_hevc(ctx: Context) -> None:
    interval_rows(ctx, "hevc", "720p HEVC GOP 250", ["ss", "pyav"])


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "interval": (task_interval, {"main"}),
    "hevc": (task_hevc, {"hevc"}),
}


if __name__ == "__main__":
    sys.exit(main(TASKS, script=__file__, description=__doc__))
