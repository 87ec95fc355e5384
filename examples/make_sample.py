"""Writes ``examples/sample.mp4``: the small clip the README's first command captures from.

H.264 in MP4, 640x360, 25 fps, 250 frames (10 s), a keyframe every 50 frames (2 s), 2 B-frames.
Frame ``i`` shows the number ``i`` twice: as the block pattern of ``tests/media.py`` (top left,
machine-readable with ``media.read_frame_number``) and in digits beside it; the background
waves and a red square move, so every frame differs from its neighbours.

    python examples/make_sample.py [OUTPUT]

Only PyAV, NumPy and OpenCV are needed (no ffmpeg command line). The output is deterministic
for a given encoder build and stays under 1 MB.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from media import make_clip  # noqa: E402

SIZE = (640, 360)
FPS = 25
FRAMES = 250
GOP = 50
MAX_BYTES = 1_000_000


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else HERE / "sample.mp4"
    truth = make_clip(
        out,
        codec="libx264",
        n_frames=FRAMES,
        fps=FPS,
        gop=GOP,
        bframes=2,
        size=SIZE,
        noise=0,
        label=True,
        options={"crf": "30", "preset": "slow"},
        container_options={"movflags": "faststart"},
    )
    size = out.stat().st_size
    print(
        f"{out}: {truth.width}x{truth.height}, {truth.n_frames} frames at {FPS} fps, "
        f"keyframes {list(truth.keyframes)}, {size} bytes"
    )
    if size >= MAX_BYTES:
        print(f"error: {out} is {size} bytes, over {MAX_BYTES}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
