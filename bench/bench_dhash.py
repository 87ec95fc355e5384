"""How fast and how right is ``m_dhash`` scene detection against PySceneDetect and ffmpeg?

``python bench/bench_dhash.py [--runs N] [--quick]`` answers it alone and writes
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
    Row,
    alternate,
    frames_decoded,
    frames_text,
    load_text,
    main,
    pyav_full_decode,
    ratio_target,
    scenedetect_cuts,
    speed_target,
    verified_or_failed,
)


def cut_report(times_s: list[float], cuts_s: list[float]) -> tuple[int, int]:
    """(cuts found within +-1 s, false captures); a capture at t < 1 s is the clip's start."""
    found = sum(any(abs(t - c) <= 1.0 for t in times_s) for c in cuts_s)
    false = sum(1 for t in times_s if t >= 1.0 and not any(abs(t - c) <= 1.0 for c in cuts_s))
    return found, false


def task_dhash(ctx: Context) -> None:
    """m_dhash,inter_1000,thr_15 and m_dhash,inter_0 vs PySceneDetect and a PyAV full decode."""
    import ossframe_native as ofn

    clip, floor = ctx.clips["main"], ctx.floors["main"]
    cuts = ctx.truth["cuts_s"]
    full = (clip.width, clip.height)

    def ours_1000() -> list:
        return list(ofn.snapshots(str(MAIN), f="jpg", m="dhash", inter=1000, thr=15))

    def ours_0() -> list:
        return list(ofn.snapshots(str(MAIN), f="jpg", m="dhash", inter=0, thr=15))

    def hash_detector() -> list[float]:
        return scenedetect_cuts(MAIN, "HashDetector")

    def content_detector() -> list[float]:
        return scenedetect_cuts(MAIN, "ContentDetector")

    def pyav_all() -> int:
        return pyav_full_decode(MAIN)

    # Verify: cuts found and false captures on every side, and the full decode's frame count.
    load = os.getloadavg()
    results: dict[str, tuple[int, int, int]] = {}  # name -> (found, false, captures)
    decoded: dict[str, int | None] = {}
    outputs: dict[str, int] = {}
    for name, fn in (("ours_1000", ours_1000), ("ours_0", ours_0)):
        images, decoded[name] = frames_decoded(fn)
        outputs[name] = len(images)
        times = [im.time_ms / 1000 for im in images]
        results[name] = (*cut_report(times, cuts), len(images))
    detectors = (
        {"hash": hash_detector}
        if ctx.quick
        else {
            "hash": hash_detector,
            "content": content_detector,
        }
    )
    for name, fn in detectors.items():
        times = fn()
        results[name] = (*cut_report(times, cuts), len(times))
    frame_count = pyav_all()

    def quality(name: str) -> str:
        found, false, captures = results[name]
        return f"{name}: {found}/{len(cuts)} cuts ±1 s, {false} false ({captures} captures)"

    checks = Checks()
    for name in results:
        checks.lines.append(quality(name))
    checks.check(frame_count == len(clip), f"PyAV full decode: {frame_count} frames")
    stats = alternate(
        {"ours_1000": ours_1000, "ours_0": ours_0, "pyav": pyav_all, **detectors}, ctx.runs
    )
    found, false, _ = results["ours_1000"]
    targets_1000 = [
        clip.frame_at(t) for t in range(0, int(clip.time_s(len(clip) - 1) * 1000) + 1, 1000)
    ]
    floor_1000 = floor.task_s(clip, targets_1000, outputs["ours_1000"], full)
    floor_0 = floor.full_decode_s + outputs["ours_0"] * floor.output_ms[full] / 1e3
    must_1000 = len(clip.needed(targets_1000))
    common = dict(verified=checks.text(), notes=load_text(load))
    row = Row(
        task="`video/snapshots,m_dhash,inter_1000,thr_15,f_jpg`",
        competitor="PySceneDetect `detect(SRC, HashDetector())` (defaults, OpenCV backend)",
        ours=stats["ours_1000"],
        theirs=stats["hash"],
        target=f"≥ 1.7× faster; all {len(cuts)} cuts; ≤ 3 false",
        met=None,
        floor_s=floor_1000,
        frames=frames_text(decoded["ours_1000"], outputs["ours_1000"], must_1000),
        **common,
    )
    row.met = verified_or_failed(
        speed_target(row, 1.7) and found == len(cuts) and false <= 3, checks
    )
    ctx.rows.append(row)
    if "content" in stats:
        ctx.rows.append(
            Row(
                task="`video/snapshots,m_dhash,inter_1000,thr_15,f_jpg`",
                competitor="PySceneDetect `detect(SRC, ContentDetector())` (defaults, OpenCV)",
                ours=stats["ours_1000"],
                theirs=stats["content"],
                target="(reference)",
                met=None,
                floor_s=floor_1000,
                frames=frames_text(decoded["ours_1000"], outputs["ours_1000"], must_1000),
                **common,
            )
        )
    found0, false0, _ = results["ours_0"]
    frames_0 = frames_text(decoded["ours_0"], outputs["ours_0"], len(clip))
    row = Row(
        task="`video/snapshots,m_dhash,inter_0,thr_15,f_jpg` (every frame)",
        competitor="plain threaded PyAV decode of all frames (`thread_type='AUTO'`)",
        ours=stats["ours_0"],
        theirs=stats["pyav"],
        target="ratio ≤ 1.1",
        met=None,
        floor_s=floor_0,
        frames=frames_0,
        **common,
    )
    row.met = verified_or_failed(ratio_target(row, 1.1), checks)
    ctx.rows.append(row)
    row = Row(
        task="`video/snapshots,m_dhash,inter_0,thr_15,f_jpg` (every frame)",
        competitor="PySceneDetect `detect(SRC, HashDetector())`",
        ours=stats["ours_0"],
        theirs=stats["hash"],
        target="≥ 1.1× faster",
        met=None,
        floor_s=floor_0,
        frames=frames_0,
        **common,
    )
    row.met = verified_or_failed(speed_target(row, 1.1), checks)
    ctx.rows.append(row)
    ctx.extra["dhash"] = {name: quality(name) for name in results}
    ctx.extra["dhash_cut_counts"] = {"ours_inter_0": (found0, false0)}


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "dhash": (task_dhash, {"main"}),
}


if __name__ == "__main__":
    sys.exit(main(TASKS, script=__file__, description=__doc__))
