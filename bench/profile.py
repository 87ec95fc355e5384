"""Where the engine's time goes in one benchmark task: py-spy samples of every thread.

    python bench/profile.py interval          # or snapshot, hevc, key, dhash1000, dhash0, cli
    python bench/profile.py dhash0 --repeat 1

Runs the task ``--repeat`` times in a child process under ``py-spy record`` (all threads, 200
samples/s) and prints the share of samples per innermost ``ossframe_native`` frame (time inside
FFmpeg, OpenCV or the native kernels is charged to the engine line that called it) and per
innermost frame of any code. Needs ``pip install py-spy`` and the clips of ``make_media.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MAIN = BENCH / "media" / "main_1080p_h264.mp4"
HEVC = BENCH / "media" / "main_720p_hevc.mp4"

TASKS = {
    "snapshot": f"ofn.snapshot({str(MAIN)!r}, t=37300, w=800, h=600, f='jpg')",
    "interval": f"list(ofn.snapshots({str(MAIN)!r}, f='jpg', inter=10000, w=800, h=600))",
    "hevc": f"list(ofn.snapshots({str(HEVC)!r}, f='jpg', inter=10000, w=800, h=600))",
    "key": f"list(ofn.snapshots({str(MAIN)!r}, f='jpg', m='key', w=800, h=600))",
    "dhash1000": f"list(ofn.snapshots({str(MAIN)!r}, f='jpg', m='dhash', inter=1000, thr=15))",
    "dhash0": f"list(ofn.snapshots({str(MAIN)!r}, f='jpg', m='dhash', inter=0, thr=15))",
}
CLI_SPEC = "video/snapshot,t_37300,f_jpg,w_800,h_600"


def child_command(task: str, repeat: int, out: str) -> list[str]:
    if task == "cli":
        return [sys.executable, "-m", "ossframe_native.cli", "process", str(MAIN), CLI_SPEC,
                "-o", out]  # fmt: skip
    code = f"import ossframe_native as ofn\nfor _ in range({repeat}):\n    {TASKS[task]}\n"
    return [sys.executable, "-c", code]


def shares(raw: Path, top: int) -> None:
    engine: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        total += n
        leaf[frames[-1]] += n
        ours = [f for f in frames if "ossframe_native/" in f]
        engine[ours[-1] if ours else "(outside ossframe_native: start-up, imports, idle)"] += n
    print(f"{total} samples")
    for title, counter in (("innermost engine frame", engine), ("innermost frame", leaf)):
        print(f"\n{title}:")
        for name, n in counter.most_common(top):
            print(f"  {100 * n / total:5.1f}%  {name[:140]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=[*TASKS, "cli"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "samples.txt"
        command = ["py-spy", "record", "--format", "raw", "-r", "200", "-o", str(raw), "--"]
        command += child_command(args.task, args.repeat, str(Path(tmp) / "out.jpg"))
        subprocess.run(command, check=True, env=env, capture_output=True)
        shares(raw, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
