"""How long does the same snapshot take through ``ossframe process`` as a whole process?

``python bench/bench_cli.py [--runs N] [--quick]`` answers it alone and writes
``bench/out/RESULTS-partial.md``; ``python bench/run.py`` runs every question and writes
``bench/RESULTS.md``. How it measures: ``bench/harness.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import (
    MAIN,
    ROOT,
    Checks,
    Context,
    H,
    Row,
    W,
    alternate,
    ffmpeg_snapshot,
    load_text,
    main,
    ours_cli_command,
    ratio_target,
    read_jpg,
    run_ours_cli,
    verified_or_failed,
)


def task_cli(ctx: Context) -> None:
    """The same snapshot through ``ossframe process`` as a whole process."""
    load = os.getloadavg()
    refs = ctx.refs["main"]
    n = ctx.clips["main"].frame_at(37300)
    out = ctx.out("cli")
    spec = f"video/snapshot,t_37300,f_jpg,w_{W},h_{H}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def ours() -> None:
        run_ours_cli(MAIN, spec, out / "ours.jpg")

    def theirs() -> None:
        ffmpeg_snapshot(MAIN, "37.3", out / "ffmpeg.jpg")

    def python_only() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    def import_only() -> None:  # what `process` imports before it decodes (numpy, av, cv2, ...)
        subprocess.run([sys.executable, "-c", "import ossframe_native.api"], check=True, env=env)

    checks = Checks()
    ours()
    theirs()
    mine, their = [read_jpg(out / "ours.jpg")], [read_jpg(out / "ffmpeg.jpg")]
    checks.frames("ours", mine, [n], refs)
    checks.frames("ffmpeg", their, [n], refs)
    checks.similar("ffmpeg", mine, their)
    stats = alternate(
        {"ours": ours, "ffmpeg": theirs, "python": python_only, "import": import_only}, ctx.runs
    )
    command = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(ours_cli_command()))
    row = Row(
        task=f"`{command} process SRC '{spec}' -o out.jpg` (whole process)",
        competitor="the same `ffmpeg -ss 37.3` command",
        ours=stats["ours"],
        theirs=stats["ffmpeg"],
        target="no slower (ratio ≤ 1.0)",
        met=None,
        verified=checks.text(),
        notes=(
            f"for scale: `python -c pass` {stats['python'].text()}, `python -c 'import "
            f"ossframe_native.api'` {stats['import'].text()}; {load_text(load)}"
        ),
    )
    row.met = verified_or_failed(ratio_target(row, 1.0), checks)
    ctx.rows.append(row)


TASKS: dict[str, tuple[Callable[[Context], None], set[str]]] = {
    # name -> (function, clips it needs measured: floors + references)
    "cli": (task_cli, {"main"}),
}


if __name__ == "__main__":
    sys.exit(main(TASKS, script=__file__, description=__doc__))
