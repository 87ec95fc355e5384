"""Which decoder really decodes each clip when ``device="cuda"`` is asked for.

For every clip: what the stream is, what ``hwdecode.choose`` picks, what ``open_capture(hw="cuda")``
opened and the pixel format of the first frame it decoded (``cuda``: NVDEC through the hwaccel,
frames in GPU memory; ``nv12``: a ``*_cuvid`` decoder; ``yuv420p`` and the like: FFmpeg's CPU
decoder). Then each FFmpeg route is tried on its own, without software fallback: the ``cuda``
hwaccel and the ``<codec>_cuvid`` decoder, with the error each one gave, so a CPU fallback comes
with its reason. FFmpeg's own warnings are collected too.

    python bench/gpu_probe.py --media DIR [--extra CLIP ...] [--json OUT.json] [--md OUT.md]

The clips are made in DIR (tests/media.py, the parameters of the test fixtures the GPU tests
use, plus two the GPU must refuse); ``--extra`` adds clips such as the 4K benchmark ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

VFR_STEPS_MS = (10, 50, 33, 17, 100)  # the variable-rate fixture's frame durations


def vfr_pts(count: int) -> list[int]:
    pts = [0]
    for i in range(count - 1):
        pts.append(pts[-1] + VFR_STEPS_MS[i % len(VFR_STEPS_MS)])
    return pts


# name -> make_clip keywords (as the test fixtures of the same name, see tests/conftest.py)
CLIPS = {
    "h264_b.mp4": dict(n_frames=90, fps=30, gop=30, bframes=2),
    "hevc_256x144.mp4": dict(
        codec="libx265", n_frames=48, fps=24, gop=24, bframes=3, size=(256, 144)
    ),
    "vfr.mkv": dict(
        container="matroska",
        n_frames=40,
        fps=30,
        gop=20,
        bframes=2,
        vfr_pts=vfr_pts(40),
        time_base=Fraction(1, 1000),
    ),
    "hevc_192x108.mp4": dict(codec="libx265", n_frames=60, fps=24, gop=24, bframes=3),
    "odd444.mp4": dict(n_frames=30, fps=30, gop=15, bframes=2, size=(321, 241), pix_fmt="yuv444p"),
}


def make_clips(media: Path) -> list[Path]:
    from media import make_clip

    media.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, spec in CLIPS.items():
        path = media / name
        if not path.exists():
            make_clip(path, **spec)
        paths.append(path)
    return paths


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname}: {record.getMessage()}")


def first_frame_kind(path: Path) -> tuple[str | None, str]:
    """(decoder open_capture(hw="cuda") opened or None, pixel format of its first frame)."""
    from ossframe_native.params import SnapshotsRequest
    from ossframe_native.pipeline import open_capture

    with open_capture(path, SnapshotsRequest.from_kwargs(dict(m="key")), hw="cuda") as run:
        frame = next(run.outputs()).frame
        kind = frame.format.name
        if kind == "cuda" and frame.sw_format is not None:
            kind += f" ({frame.sw_format.name})"
        hw = run.source.hw
        return None if hw is None else f"{hw.method} {hw.name}", kind


def try_hwaccel(path: Path) -> str:
    """The cuda hwaccel alone (no software fallback): the first frame's format, or the error."""
    import av
    from av.codec.hwaccel import HWAccel

    try:
        accel = HWAccel("cuda", allow_software_fallback=False, is_hw_owned=True)
        with av.open(str(path), hwaccel=accel) as container:
            frame = next(container.decode(video=0))
            return f"ok: {frame.format.name} frames ({frame.width}x{frame.height})"
    except Exception as exc:  # noqa: BLE001 - the error is the finding
        return f"failed: {type(exc).__name__}: {exc}"


def try_cuvid(path: Path) -> str:
    """The ``<codec>_cuvid`` decoder alone: the first frame's format, or the error."""
    import av

    from ossframe_native import hwdecode

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stem = hwdecode._CUVID.get(stream.codec_context.name)
        if stem is None or f"{stem}_cuvid" not in av.codecs_available:
            return f"no cuvid decoder for {stream.codec_context.name}"
        try:
            ctx = av.CodecContext.create(f"{stem}_cuvid", "r")
            ctx.extradata = stream.codec_context.extradata
            ctx.open()
            for packet in container.demux(stream):
                for frame in ctx.decode(packet if packet.size else None):
                    return f"ok: {frame.format.name} frames ({frame.width}x{frame.height})"
            return "opened, but returned no frame"
        except Exception as exc:  # noqa: BLE001 - the error is the finding
            return f"failed: {type(exc).__name__}: {exc}"


def probe(path: Path) -> dict[str, object]:
    import av

    from ossframe_native import hwdecode

    handler = Collect()
    for name in ("ossframe_native", "libav"):
        logging.getLogger(name).addHandler(handler)
    hwdecode._logged.clear()  # every clip logs its own reason at WARNING
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        stream = f"{ctx.name} {ctx.format.name if ctx.format else '?'} {ctx.width}x{ctx.height}"
    try:
        hw, kind = first_frame_kind(path)
    except Exception as exc:  # noqa: BLE001
        hw, kind = "error", f"{type(exc).__name__}: {exc}"
    result = {
        "clip": path.name,
        "stream": stream,
        "opened": hw,
        "first_frame": kind,
        "on_gpu": kind.startswith("cuda") or kind == "nv12",
        "hwaccel_alone": try_hwaccel(path),
        "cuvid_alone": try_cuvid(path),
    }
    for name in ("ossframe_native", "libav"):
        logging.getLogger(name).removeHandler(handler)
    result["log"] = handler.lines[:12]
    return result


def markdown(results: list[dict[str, object]]) -> str:
    rows = [
        "| clip | stream | opened with hw=cuda | first frame | "
        "cuda hwaccel alone | cuvid decoder alone |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['clip']} | {r['stream']} | {r['opened'] or 'CPU decoder'} | "
            f"{r['first_frame']} | {r['hwaccel_alone']} | {r['cuvid_alone']} |"
        )
    any_gpu = any(r["on_gpu"] for r in results)
    rows.append("")
    if any_gpu:
        rows.append("NVDEC decoded: " + ", ".join(str(r["clip"]) for r in results if r["on_gpu"]))
    else:
        rows.append(
            "**Neither the cuda hwaccel nor a cuvid decoder opened on any clip: on this machine "
            '`device="cuda"` means CPU decode + GPU kernels.**'
        )
    logs = [f"* {r['clip']}: {line}" for r in results for line in r["log"]]  # type: ignore[union-attr]
    if logs:
        rows += ["", "Log lines (ossframe_native and FFmpeg) while probing:", "", *logs]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--media", type=Path, required=True, help="where the clips are made")
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="more clips")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args()
    import av

    paths = [*make_clips(args.media), *args.extra]
    av.logging.set_level(av.logging.WARNING)  # FFmpeg's messages reach the logger "libav"
    results = [probe(path) for path in paths]
    text = markdown(results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.md:
        args.md.write_text(text + "\n")


if __name__ == "__main__":
    main()
