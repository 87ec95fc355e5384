"""How fast is ``video/sprite`` (seek-bar sheets) against the FFmpeg CLI, and how much memory?

``python bench/bench_sprite.py [--runs 3] [--lengths 10,60]`` writes ``bench/RESULTS_SPRITE.md``
through the harness's writer, with its stamp (a checkout with uncommitted changes needs
``--allow-dirty``); other lengths, ``--quick`` or ``--runs 1`` write
``bench/out/RESULTS_SPRITE-partial.md`` (``--lengths 1 --runs 1`` checks the script in minutes).

Media (``bench/media/long/``, shared with ``bench_long.py``): a 1-minute 1080p H.264 clip
(``bench/media/main_1080p_h264.mp4`` from ``make_media.py`` where it exists, else testsrc2
with temporal noise, x264 veryfast, ``-g 60``), stream-copied into MP4 files of each length.

Per length L, one sheet of 10 x 10 tiles of 160x90 every 6 s (100 tiles in 10 minutes, 600 in
60), each side a fresh process as users run it, alternated, medians of ``--runs``:

* ours: ``ossframe process SRC 'video/sprite,f_jpg,sw_160,sh_90,inter_6000,tw_10,th_10,pad_0,
  margin_0' -o sheet.jpg``;
* the FFmpeg filter chain: ``ffmpeg -i SRC -vf fps=1/6:round=up,scale=160:90,tile=10x10``
  (``round=up`` makes tick k the frame shown at 6k s, the frames ours and the ``-ss`` loop give;
  plain ``fps=1/6`` picks the frames 3 s later at the same cost);
* a ``-ss`` loop: one ``ffmpeg -ss T -i SRC -frames:v 1 -vf scale=160:90`` per tile, then one
  ``ffmpeg -i tile%04d.png -vf tile=10x10`` run.

Targets: ours at least 4x faster than the filter chain and 1.5x faster than the ``-ss`` loop,
peak RSS under 300 MB. On lengths of 60 minutes and more the filter chain (which decodes every
frame) runs once. A last row puts 100 tiles over the 60-minute file (``inter_36000``) beside
100 tiles over the 10-minute one: the cost follows the tiles, not the file.

Checks before timing (a failed check marks the row not met): our tiles' frame numbers are the
frames shown at 0, 6, 12, ... s (from the file's packets); every tile of every side (cropped
from its sheet) is identified, by least mean squared error, as the expected frame among its
neighbours (references decoded from the 1-minute clip, which every minute of the long file
copies); sheet counts and sizes. Peak RSS: the kernel's ``VmHWM`` of each process, sampled every
10 ms while it runs (the highest of the ``-ss`` loop's processes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import bench_long  # beside this script (bench/ is on sys.path)
import numpy as np
from harness import (
    BENCH,
    FFMPEG_JPG_Q,
    OUT,
    ROOT,
    Checks,
    Clip,
    Context,
    Results,
    Row,
    Stats,
    add_results_flags,
    ffmpeg,
    fmt_row,
    fresh,
    identify,
    load_text,
    ours_cli_command,
    read_jpg,
    reference_frames,
)

MEDIA = BENCH / "media"
LONG = MEDIA / "long"
TILE = (160, 90)
GRID = 10  # tiles per row and per column
EVERY_MS = 6000
SPEC = (
    f"video/sprite,f_jpg,sw_{TILE[0]},sh_{TILE[1]},inter_{{inter}},tw_{GRID},th_{GRID},"
    "pad_0,margin_0"
)
RSS_LIMIT_MB = 300
NEIGHBOURS = (-2, -1, 1, 2)


# -- media ---------------------------------------------------------------------------------------


def base_clip() -> Path:
    """The 1-minute 1080p H.264 clip every long file copies (as bench_long.py makes it)."""
    main = MEDIA / "main_1080p_h264.mp4"
    if main.exists():
        return main
    base = LONG / "base_1080p_h264.mp4"
    if not base.exists():
        LONG.mkdir(parents=True, exist_ok=True)
        ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30,noise=alls=8:allf=t", "-t", "60",
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-bf", "2",
            "-pix_fmt", "yuv420p", str(base),
        )  # fmt: skip
    return base


def long_file(base: Path, minutes: int) -> Path:
    """``base`` stream-copied ``minutes`` times into one MP4 (shared with bench_long.py)."""
    LONG.mkdir(parents=True, exist_ok=True)
    return bench_long.long_file(base, minutes, "mp4")


# -- the three sides -----------------------------------------------------------------------------


def ours_command(src: Path, inter: int, folder: Path) -> list[str]:
    spec = SPEC.format(inter=inter)
    return [*ours_cli_command(), "process", str(src), spec, "-o", str(folder / "sheet.jpg"), "-q"]


def fps_chain_command(src: Path, inter: int, folder: Path) -> list[str]:
    every = f"{inter // 1000}" if inter % 1000 == 0 else f"{inter / 1000}"
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(src),
        "-vf", f"fps=1/{every}:round=up,scale={TILE[0]}:{TILE[1]},tile={GRID}x{GRID}",
        "-q:v", FFMPEG_JPG_Q, str(folder / "sheet_%03d.jpg"),
    ]  # fmt: skip


def ss_loop_commands(src: Path, times_ms: list[int], folder: Path) -> list[list[str]]:
    quiet = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    commands = [
        [*quiet, "-ss", f"{t / 1000:.3f}", "-i", str(src), "-frames:v", "1",
         "-vf", f"scale={TILE[0]}:{TILE[1]}", str(folder / f"tile_{k:04d}.png")]
        for k, t in enumerate(times_ms)
    ]  # fmt: skip
    commands.append(
        [*quiet, "-i", str(folder / "tile_%04d.png"), "-vf", f"tile={GRID}x{GRID}",
         "-q:v", FFMPEG_JPG_Q, str(folder / "sheet_%03d.jpg")]
    )  # fmt: skip
    return commands


def run_all(commands: list[list[str]], env: dict[str, str] | None = None) -> None:
    for command in commands:
        subprocess.run(command, check=True, env=env)


def peak_rss_mb(commands: list[list[str]], env: dict[str, str] | None = None) -> float:
    """The highest ``VmHWM`` of the commands' processes, sampled every 10 ms while each runs."""
    peak = 0.0
    for command in commands:
        process = subprocess.Popen(command, env=env)
        status = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            try:
                text = status.read_text()
            except OSError:
                break
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
            time.sleep(0.01)
        if process.wait() != 0:
            raise subprocess.CalledProcessError(process.returncode, command)
    return peak


def timed(cases: dict[str, tuple[list[list[str]], int]], env: dict[str, str]) -> dict[str, Stats]:
    """Each case (commands, runs) timed ``runs`` times, the cases alternated."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for rep in range(max(runs for _, runs in cases.values())):
        names = [name for name, (_, runs) in cases.items() if rep < runs]
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            run_all(cases[name][0], env)
            times[name].append(time.perf_counter() - started)
    return {name: Stats(values) for name, values in times.items()}


# -- checks --------------------------------------------------------------------------------------


def references(base: Path, long: Clip, frames: list[int]) -> dict[int, np.ndarray]:
    """Gray 160x90 renderings (INTER_AREA) of each expected frame of the long file and its
    neighbours, decoded from the 1-minute clip that the long file repeats."""
    clip = Clip.load(base)
    wanted = {n + d for n in frames for d in (0, *NEIGHBOURS) if 0 <= n + d < len(long)}
    decoded = reference_frames(clip, {n % len(clip) for n in wanted}, TILE)
    return {n: decoded[n % len(clip)] for n in wanted}


def cells(sheets: list[np.ndarray], count: int) -> list[np.ndarray]:
    """The first ``count`` cells of 10 x 10 sheets without padding, in order."""
    out = []
    for k in range(count):
        sheet = sheets[k // (GRID * GRID)]
        row, column = divmod(k % (GRID * GRID), GRID)
        x, y = column * TILE[0], row * TILE[1]
        out.append(sheet[y : y + TILE[1], x : x + TILE[0]])
    return out


def check_side(
    checks: Checks, who: str, folder: Path, expected: list[int], refs: dict[int, np.ndarray]
) -> None:
    sheets = [read_jpg(p) for p in sorted(folder.glob("sheet*.jpg"), key=_sheet_number)]
    want = -(-len(expected) // (GRID * GRID))
    checks.check(len(sheets) >= want, f"{who}: {len(sheets)} sheets (at least {want} expected)")
    size = (TILE[1] * GRID, TILE[0] * GRID, 3)
    checks.check(
        all(s.shape == size for s in sheets), f"{who}: sheets of {TILE[0] * GRID}x{TILE[1] * GRID}"
    )
    if len(sheets) < want:
        return
    shown = [
        identify(cell, refs, n)[0]
        for cell, n in zip(cells(sheets, len(expected)), expected, strict=True)
    ]
    wrong = [(n, s) for n, s in zip(expected, shown, strict=True) if n != s]
    checks.check(
        not wrong,
        f"{who}: every tile shows its frame" if not wrong else f"{who}: tiles show {wrong[:5]}",
    )


def _sheet_number(path: Path) -> int:
    digits = "".join(c for c in path.stem if c.isdigit())
    return int(digits or 0)


# -- rows ----------------------------------------------------------------------------------------


def length_rows(ctx: Context, base: Path, minutes: int, inter: int, env: dict[str, str]) -> float:
    """The rows of one length; returns our median seconds."""
    import ossframe_native as ofn
    from ossframe_native.pipeline import collect_stats

    load = os.getloadavg()
    src = long_file(base, minutes)
    clip = Clip.load(src)
    duration_ms = int(clip.time_s(len(clip) - 1) * 1000)
    times_ms = list(range(0, duration_ms + 1, inter))
    expected = [clip.frame_at(t) for t in times_ms]
    label = f"{minutes}-minute 1080p H.264, {len(expected)} tiles of 160x90"
    folders = {
        name: fresh(OUT / f"sprite_{minutes}_{inter}" / name) for name in ("ours", "fps", "ss")
    }
    commands = {
        "ours": [ours_command(src, inter, folders["ours"])],
        "fps": [fps_chain_command(src, inter, folders["fps"])],
        "ss": ss_loop_commands(src, times_ms, folders["ss"]),
    }
    print(f"[sprite] {minutes} min: checking", flush=True)
    checks = Checks()
    with collect_stats() as stats:
        tiles = [
            t
            for sheet in ofn.sprite(
                str(src), sw=TILE[0], sh=TILE[1], inter=inter, tw=GRID, th=GRID, pad=0, margin=0
            )
            for t in sheet.tiles
        ]
    decoded = sum(s.frames_decoded for s in stats)
    checks.check([t.frame for t in tiles] == expected, f"ours: tiles are frames {expected[:4]}...")
    refs = references(base, clip, expected)
    rss = {name: peak_rss_mb(cmds, env) for name, cmds in commands.items()}
    for name in commands:
        check_side(checks, name, folders[name], expected, refs)
    slow = 1 if minutes >= 60 else ctx.runs
    stats_by_side = timed(
        {
            "ours": (commands["ours"], ctx.runs),
            "fps": (commands["fps"], slow),
            "ss": (commands["ss"], ctx.runs),
        },
        env,
    )
    notes = load_text(load)
    spec = SPEC.format(inter=inter)
    for name, competitor, at_least in (
        ("fps", f"`ffmpeg -vf fps=1/{inter // 1000}:round=up,scale=160:90,tile=10x10`", 4.0),
        (
            "ss",
            f"{len(expected)} `ffmpeg -ss T -frames:v 1 -vf scale=160:90` runs + a `tile` run",
            1.5,
        ),
    ):
        row = Row(
            task=f"`{spec}`, {label}",
            competitor=competitor,
            ours=stats_by_side["ours"],
            theirs=stats_by_side[name],
            target=f"≥ {at_least}× faster",
            met=None,
            frames=f"{decoded} / {len(tiles)}",
            verified=checks.text(),
            notes=notes
            + (
                " (filter chain timed once: it decodes every frame)"
                if name == "fps" and minutes >= 60
                else ""
            ),
        )
        row.met = row.speedup is not None and row.speedup >= at_least and not checks.failed
        ctx.rows.append(row)
    ctx.rows.append(
        Row(
            task=f"peak RSS of `ossframe process`, {label}",
            competitor=f"filter chain {rss['fps']:.0f} MB, `-ss` loop {rss['ss']:.0f} MB (its "
            "highest process)",
            ours=None,
            theirs=None,
            target=f"< {RSS_LIMIT_MB} MB",
            met=rss["ours"] < RSS_LIMIT_MB and not checks.failed,
            verified=checks.text(),
            notes="VmHWM sampled every 10 ms",
            ours_text=f"{rss['ours']:.0f} MB",
        )
    )
    return stats_by_side["ours"].median


def same_tiles_row(ctx: Context, base: Path, env: dict[str, str], long: int, short: int) -> None:
    """100 tiles over the long file against 100 tiles over the short one."""
    load = os.getloadavg()
    inter = EVERY_MS * long // short
    folders = {m: fresh(OUT / f"sprite_same_{m}") for m in (long, short)}
    cases = {
        f"{long}": ([ours_command(long_file(base, long), inter, folders[long])], ctx.runs),
        f"{short}": ([ours_command(long_file(base, short), EVERY_MS, folders[short])], ctx.runs),
    }
    stats = timed(cases, env)
    ratio = stats[f"{long}"].median / stats[f"{short}"].median
    ctx.rows.append(
        Row(
            task=f"`{SPEC.format(inter=inter)}` on the {long}-minute file (100 tiles)",
            competitor=f"ours, `inter_{EVERY_MS}` on the {short}-minute file (100 tiles)",
            ours=stats[f"{long}"],
            theirs=stats[f"{short}"],
            target="(cost follows the tiles)",
            met=None,
            notes=f"{load_text(load)}; ratio {ratio:.2f}",
        )
    )


def report(ctx: Context) -> str:
    """The body of the results file: the rows, then each row's checks and notes."""
    lines = [
        f"{ctx.runs} timed runs per side (the filter chain once on files of 60 minutes or more), "
        "sides alternated. Times are wall-clock medians [min–max] of whole processes; **ratio** "
        "= ours / theirs (below 1: we are faster); **frames**: frames our decoder returned / "
        "tiles.",
        "",
        "| task | ours | competitor | theirs | ratio | target | met | floor (ours ×) | frames |",
        "|---|---|---|---|---|---|---|---|---|",
        *(fmt_row(row) for row in ctx.rows),
        "",
        "## Checks and notes per row",
        "",
    ]
    lines += [f"{i}. {row.verified or '—'}. {row.notes}" for i, row in enumerate(ctx.rows, 1)]
    lines += ["", "## Method", "", *(__doc__ or "").split("\n\n", 1)[1].splitlines()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument(
        "--lengths", default="10,60", help="file lengths in minutes (default 10,60)"
    )
    parser.add_argument("--quick", action="store_true", help="1 run per side")
    add_results_flags(parser)
    args = parser.parse_args(argv)
    lengths = sorted({int(x) for x in args.lengths.split(",")})
    ctx = Context(runs=1 if args.quick else args.runs, quick=args.quick, truth={})
    complete = lengths == [10, 60] and ctx.runs >= 3
    target = BENCH / "RESULTS_SPRITE.md" if complete else OUT / "RESULTS_SPRITE-partial.md"
    results = Results(target, allow_dirty=args.allow_dirty, uses=("ffmpeg",))  # before measuring
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = base_clip()
    for minutes in lengths:
        print(f"[sprite] {minutes}-minute file ...", flush=True)
        length_rows(ctx, base, minutes, EVERY_MS, env)
    if len(lengths) > 1:
        same_tiles_row(ctx, base, env, lengths[-1], lengths[0])
    print(f"wrote {results.write('video/sprite: sheets against the FFmpeg CLI', report(ctx))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
