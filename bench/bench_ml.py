"""ML loading benchmark: 20 clips -> one [16, 3, 224, 224] uint8 tensor each, on the CPU.

The question: how fast does ``frames_batch(m="avg", num=16, w=224, h=224,
scaletype="crop", output="torch")`` turn clips into model input, against

* decord: ``VideoReader.get_batch`` of the same 16 frame indices, then torch resize + centre
  crop (``F.interpolate``, bilinear with antialias: torchvision's ``Resize(224)`` +
  ``CenterCrop(224)`` on a tensor);
* plain PyAV, the obvious way: decode sequentially (``thread_type="AUTO"``) until the last
  wanted frame, ``to_ndarray("rgb24")`` the wanted ones, ``cv2.resize`` (INTER_AREA) to cover
  224x224 and crop the centre.

Before timing, every competitor must return the same 16 frame indices per clip and pictures
that agree with ours (PSNR >= 30 dB: the resize filters differ, the frames must not). Then each
run times all 20 clips per competitor, competitors alternating (the order rotates every run);
the tables report medians over the runs.

    python bench/bench_ml.py                 # makes bench/media/ml/ on first use, then runs
    python bench/bench_ml.py --runs 7 --profile
    python bench/bench_ml.py --gpu --size 3840x2160 --clips 5   # GPU machine: + ours and
                                             # torchcodec on CUDA -> bench/out/RESULTS_ML_GPU.md
    python bench/bench_ml.py --gpu --ours-only --size 3840x2160 --clips 3 --runs 5
                                             # ours on CUDA vs ours on the CPU only

Competitors whose library is not installed (decord, torchcodec) are left out with a note.

Media (git-ignored, made with PyAV): 20 clips of 1280x720 H.264 (libx264 preset fast,
CRF 23, keyframe every 2 s, 3 B-frames), 30 fps, 10 s, each a different camera pan over
textured content with moving objects and light noise.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from harness import OUT, Results, add_results_flags

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / "bench" / "media" / "ml"
RESULTS = ROOT / "bench" / "RESULTS_ML.md"
CLIPS, WIDTH, HEIGHT, FPS, SECONDS, GOP = 20, 1280, 720, 30, 10, 60
NUM, SIZE = 16, 224

sys.path.insert(0, str(ROOT))

# ---------------------------------------------------------------------------------------------
# Media


def make_media(
    gop: int = GOP, clips: int = CLIPS, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> list[Path]:
    """Writes the clips that are missing into bench/media/ml/; returns all paths."""
    MEDIA.mkdir(parents=True, exist_ok=True)
    width, height = size
    stem = "clip" if size == (WIDTH, HEIGHT) else f"clip{height}p"
    paths = [MEDIA / f"{stem}_{k:02d}_gop{gop}.mp4" for k in range(clips)]
    missing = [(k, path) for k, path in enumerate(paths) if not path.exists()]
    # Frame synthesis is single-threaded NumPy: several clips at once use the cores (x264
    # threads itself within each).
    workers = max(1, min(len(missing), (os.cpu_count() or 1) // 4))
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            list(
                pool.map(
                    make_clip,
                    [p for _, p in missing],
                    [k for k, _ in missing],
                    [gop] * len(missing),
                    [size] * len(missing),
                )
            )
    else:
        for k, path in missing:
            make_clip(path, k, gop, size)
    return paths


def make_clip(path: Path, k: int, gop: int, size: tuple[int, int]) -> None:
    """Writes clip ``k`` (its own camera pan, seeded by ``k``) to ``path``."""
    import av

    width, height = size
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp.mp4")
    rng = np.random.default_rng(k)
    # A textured world twice the frame size; the camera pans across it.
    wh, ww = height * 2, width * 2
    yy, xx = np.mgrid[0:wh, 0:ww].astype(np.float32)
    phase = rng.uniform(0, 6.3, 6).astype(np.float32)
    world = np.stack(
        [
            128
            + 60 * np.sin(xx / (23 + 5 * c) + phase[c]) * np.cos(yy / (31 + 7 * c) + phase[c + 3])
            + 40 * np.sin((xx + yy) / (97 + 11 * c))
            for c in range(3)
        ],
        axis=-1,
    )
    for _ in range(40):  # blobs of colour
        cy, cx, r = rng.integers(0, wh), rng.integers(0, ww), rng.integers(20, 160)
        colour = rng.integers(0, 256, 3)
        y0, y1, x0, x1 = max(cy - r, 0), min(cy + r, wh), max(cx - r, 0), min(cx + r, ww)
        world[y0:y1, x0:x1] = 0.4 * world[y0:y1, x0:x1] + 0.6 * colour
    world = np.clip(world, 0, 255).astype(np.uint8)
    noise = [rng.integers(-6, 7, (height, width, 3), dtype=np.int16) for _ in range(7)]
    vx, vy = rng.uniform(-3, 3, 2)
    with av.open(str(tmp), "w", format="mp4") as out:
        params = f"keyint={gop}:min-keyint={min(gop, 25)}:bframes=3:log-level=error"
        stream = out.add_stream(
            "libx264", rate=FPS, options={"preset": "fast", "crf": "23", "x264-params": params}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(FPS * SECONDS):
            x = int(width / 2 + vx * i) % (ww - width)
            y = int(height / 2 + vy * i) % (wh - height)
            rgb = world[y : y + height, x : x + width].astype(np.int16) + noise[i % 7]
            bx, by = (40 + 9 * i) % (width - 120), (80 + 4 * i) % (height - 120)
            rgb[by : by + 120, bx : bx + 120] = (230, 40 + i % 200, 40)
            frame = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), "rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    tmp.rename(path)
    print(f"made {path.name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Competitors: path -> (uint8 tensor [16, 3, 224, 224], frame indices)


def avg_indices(n_frames: int) -> list[int]:
    """m=avg on a constant-rate clip: the frames shown at k * D / 16, k = 0..15."""
    return [k * n_frames // NUM for k in range(NUM)]


def ours(path: Path):
    import ossframe_native.ml as ml

    batch = ml.frames_batch(
        path, m="avg", num=NUM, w=SIZE, h=SIZE, scaletype="crop", output="torch"
    )
    return batch.data, list(batch.indices)


def decord_get_batch(path: Path):
    import decord
    import torch
    import torch.nn.functional as F

    vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
    indices = avg_indices(len(vr))
    frames = torch.from_numpy(vr.get_batch(indices).asnumpy()).permute(0, 3, 1, 2)  # N,3,H,W
    h, w = frames.shape[-2:]
    scale = SIZE / min(h, w)
    size = (max(SIZE, round(h * scale)), max(SIZE, round(w * scale)))
    resized = F.interpolate(frames.float(), size=size, mode="bilinear", antialias=True)
    top, left = (size[0] - SIZE) // 2, (size[1] - SIZE) // 2
    crop = resized[:, :, top : top + SIZE, left : left + SIZE]
    return crop.round_().clamp_(0, 255).to(torch.uint8), indices


def decord_scaled(path: Path):
    """decord's best case: it scales while converting (FFmpeg's swscale), then a centre crop."""
    import decord
    import torch

    probe = decord.VideoReader(str(path), ctx=decord.cpu(0), width=-1, height=-1)
    h, w = probe[0].shape[:2]
    del probe
    scale = SIZE / min(h, w)
    size = (max(SIZE, round(w * scale)), max(SIZE, round(h * scale)))
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), width=size[0], height=size[1])
    indices = avg_indices(len(vr))
    frames = vr.get_batch(indices).asnumpy()  # N, H, W, 3
    top, left = (size[1] - SIZE) // 2, (size[0] - SIZE) // 2
    crop = frames[:, top : top + SIZE, left : left + SIZE].transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(crop)), indices


def pyav_decode_resize(path: Path):
    import av
    import cv2
    import torch

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        indices = avg_indices(stream.frames)
        wanted = set(indices)
        out = []
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                rgb = frame.to_ndarray(format="rgb24")
                h, w = rgb.shape[:2]
                scale = SIZE / min(h, w)
                size = (max(SIZE, round(w * scale)), max(SIZE, round(h * scale)))
                small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
                top, left = (size[1] - SIZE) // 2, (size[0] - SIZE) // 2
                out.append(small[top : top + SIZE, left : left + SIZE])
            if i >= indices[-1]:
                break
    data = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()
    return data, indices


def ours_cuda(path: Path):
    """Ours on the GPU: NVDEC where hwdecode allows, conversion and resize in torch_ops."""
    import ossframe_native.ml as ml

    batch = ml.frames_batch(
        path, m="avg", num=NUM, w=SIZE, h=SIZE, scaletype="crop", output="torch", device="cuda"
    )
    return batch.data, list(batch.indices)


def torchcodec_cuda(path: Path):
    """torchcodec on the GPU (NVDEC), then torch resize + centre crop on the GPU."""
    import torch
    import torch.nn.functional as F
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), device="cuda")
    indices = avg_indices(decoder.metadata.num_frames)
    frames = decoder.get_frames_at(indices=indices).data  # N, 3, H, W uint8 on cuda
    h, w = frames.shape[-2:]
    scale = SIZE / min(h, w)
    size = (max(SIZE, round(h * scale)), max(SIZE, round(w * scale)))
    resized = F.interpolate(frames.float(), size=size, mode="bilinear", antialias=True)
    top, left = (size[0] - SIZE) // 2, (size[1] - SIZE) // 2
    crop = resized[:, :, top : top + SIZE, left : left + SIZE]
    return crop.round_().clamp_(0, 255).to(torch.uint8), indices


COMPETITORS: dict[str, Callable] = {
    "ossframe_native": ours,
    "decord get_batch + torch resize": decord_get_batch,
    "decord get_batch, scaled by decord": decord_scaled,
    "PyAV decode + cv2.resize": pyav_decode_resize,
}
# The library each competitor needs beyond ours (left out, with a note, where it is missing).
NEEDS = {
    "decord get_batch + torch resize": "decord",
    "decord get_batch, scaled by decord": "decord",
}


def choose_competitors(ours_only: bool) -> None:
    """Drops the competitors that are not wanted (``--ours-only``) or cannot import."""
    import importlib.util

    for name in list(COMPETITORS):
        if name == "ossframe_native":
            continue
        if ours_only:
            del COMPETITORS[name]
        elif NEEDS.get(name) and importlib.util.find_spec(NEEDS[name]) is None:
            print(f"{NEEDS[name]} is not installed: leaving out {name!r}", file=sys.stderr)
            del COMPETITORS[name]


# ---------------------------------------------------------------------------------------------
# Verification, timing, report


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def add_gpu_competitors(ours_only: bool) -> None:
    """--gpu: ours on CUDA, and torchcodec on CUDA where it imports (not run on CPU machines)."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--gpu: torch.cuda.is_available() is False")
    COMPETITORS["ossframe_native cuda"] = ours_cuda
    if ours_only:
        return
    try:
        import torchcodec  # noqa: F401
    except ImportError as exc:
        print(f"torchcodec not available ({exc}); comparing without it", file=sys.stderr)
    else:
        COMPETITORS["torchcodec cuda"] = torchcodec_cuda


def verify(paths: list[Path]) -> dict[str, float]:
    """All competitors: same indices, [16, 3, 224, 224] uint8, pictures that agree with ours.
    Returns each competitor's lowest PSNR against ours (dB, over all clips and frames)."""
    lowest = {name: float("inf") for name in COMPETITORS}
    for path in paths:
        results = {name: fn(path) for name, fn in COMPETITORS.items()}
        ref_data, ref_indices = results["ossframe_native"]
        for name, (data, indices) in results.items():
            assert indices == ref_indices, f"{path.name}: {name} took {indices}, ours {ref_indices}"
            assert tuple(data.shape) == (NUM, 3, SIZE, SIZE), (name, tuple(data.shape))
            assert str(data.dtype) == "torch.uint8", (name, data.dtype)
            data = data.cpu()
            for k in range(NUM):
                value = psnr(data[k].numpy(), ref_data[k].numpy())
                assert value >= 30, f"{path.name}: {name} frame {indices[k]}: {value:.1f} dB"
                lowest[name] = min(lowest[name], value)
    print(f"verified: {len(COMPETITORS)} competitors agree on {len(paths)} clips", file=sys.stderr)
    return lowest


def time_all(paths: list[Path], runs: int) -> dict[str, list[float]]:
    names = list(COMPETITORS)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        order = names[run % len(names) :] + names[: run % len(names)]
        for name in order:
            fn = COMPETITORS[name]
            started = time.perf_counter()
            for path in paths:
                data, _ = fn(path)
            if data.is_cuda:  # GPU work is asynchronous: count it in
                import torch

                torch.cuda.synchronize()
            seconds[name].append(time.perf_counter() - started)
        line = ", ".join(f"{n}: {seconds[n][-1]:.2f} s" for n in names)
        print(f"run {run + 1}/{runs}: {line}", file=sys.stderr)
    return seconds


def table(seconds: dict[str, list[float]], n_clips: int) -> str:
    base = statistics.median(seconds["ossframe_native"])
    rows = [
        f"| competitor | clips/s | frames/s | median s ({n_clips} clips) | min .. max s | "
        "ours is |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, values in seconds.items():
        median = statistics.median(values)
        if name == "ossframe_native":
            ratio = "-"
        elif name == "ossframe_native cuda":
            ratio = f"CUDA: {base / median:.2f}x ours on the CPU"
        else:
            ratio = f"{median / base:.2f}x faster"
        rows.append(
            f"| {name} | {n_clips / median:.2f} | {n_clips * NUM / median:.1f} | {median:.2f} | "
            f"{min(values):.2f} .. {max(values):.2f} | {ratio} |"
        )
    return "\n".join(rows)


def profile_ours(paths: list[Path], fn: Callable = ours) -> str:
    # bench/profile.py (first on sys.path when this file runs) would shadow the standard
    # library's profile module, which cProfile imports.
    bench = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != bench]
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for path in paths:
        fn(path)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    return text.getvalue()


def environment() -> list[str]:
    """What the stamp does not say: decord's version and the GPU torch sees."""
    import torch

    try:
        import decord

        decord_version = decord.__version__
    except ImportError:
        decord_version = "not installed"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return [f"* decord {decord_version}; CUDA device seen by torch: {gpu}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per competitor (>= 5)")
    parser.add_argument("--gop", type=int, default=GOP, help="keyframe interval of the clips")
    parser.add_argument("--clips", type=int, default=CLIPS, help="number of clips")
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}", help="clip size, e.g. 3840x2160")
    parser.add_argument("--gpu", action="store_true", help="add ours and torchcodec on CUDA")
    parser.add_argument("--profile", action="store_true", help="cProfile ours over the clips")
    parser.add_argument("--ours-only", action="store_true", help="ours (CPU, and CUDA) only")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS_ML.md")
    parser.add_argument("--results", type=Path, help="write the results here instead")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    parser.add_argument("--media-only", action="store_true", help="make the clips, then stop")
    add_results_flags(parser)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    # GPU runs go to bench/out (RESULTS_ML_GPU.md is bench/gpu_report.py's), not over the CPU ones.
    target = args.results or (OUT / "RESULTS_ML_GPU.md" if args.gpu else RESULTS)
    results = None
    if not (args.no_write or args.media_only):
        results = Results(target, allow_dirty=args.allow_dirty, uses=("decord", "torchcodec"))
    paths = make_media(args.gop, args.clips, (width, height))
    if args.media_only:
        print("\n".join(str(p) for p in paths))
        return
    choose_competitors(args.ours_only)
    if args.gpu:
        add_gpu_competitors(args.ours_only)
    lowest = verify(paths)
    seconds = time_all(paths, args.runs)
    if args.json:
        raw = dict(clips=len(paths), size=args.size, runs=args.runs, seconds=seconds)
        args.json.write_text(json.dumps({**raw, "lowest_psnr_vs_ours_cpu": lowest}, indent=1))
    report = table(seconds, len(paths))
    lines = [
        f"{len(paths)} clips of {width}x{height} H.264 (libx264 preset fast, CRF 23, keyframe "
        f"every {args.gop} frames, 3 B-frames), {FPS} fps, {SECONDS} s -> one [16, 3, 224, 224] "
        "uint8 tensor per clip (`m_avg,num_16,w_224,h_224,scaletype_crop`)"
        f"{', GPU and CPU' if args.gpu else ', CPU only'}. "
        f"Medians of {args.runs} runs, competitors alternating; every competitor was first "
        "checked to return the same 16 frame indices per clip and pictures within 30 dB PSNR "
        "of ours.",
        "",
        report,
        "",
        *environment(),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.profile:
        print(profile_ours(paths[:5]))
        if args.gpu:
            print("ours on CUDA:\n" + profile_ours(paths[:5], ours_cuda))
    if results is not None:
        print(f"wrote {results.write('ML loading benchmark', text)}")


if __name__ == "__main__":
    main()
