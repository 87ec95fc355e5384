"""Writes RESULTS_ML_GPU.md from what ``bench/gpu_check.sh`` left in its output folder.

    python bench/gpu_report.py OUTDIR      # reads pytest.xml, probe.json, kernels.json,
                                           # bench_ml.json there; writes OUTDIR/RESULTS_ML_GPU.md

Each target is stated beside its figure; a missing input (a step that failed or was cut off)
is reported as missing, not guessed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from harness import Results, add_results_flags

TESTS = "tests/test_ml.py tests/test_torch_ops.py"
COMMANDS = [
    "bash bench/gpu_check.sh OUTDIR   # all of the steps below, logs and figures into OUTDIR",
    "python3 setup.py build_ext --inplace",
    f"OSSFRAME_REQUIRE_CUDA=1 python3 -m pytest -m cuda {TESTS} --junitxml OUTDIR/pytest.xml",
    "python3 bench/gpu_probe.py --media /tmp/gpu_probe --extra <4K clip 0> --json "
    "OUTDIR/probe.json",
    "python3 bench/bench_kernels_gpu.py --json OUTDIR/kernels.json",
    "python3 bench/bench_ml.py --gpu --ours-only --size 3840x2160 --clips 3 --runs 5 "
    "--json OUTDIR/bench_ml.json",
    "python3 bench/gpu_stages.py <4K clip 0> --json OUTDIR/stages.json",
]


def load(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> list[str]:
    import av
    import numpy
    import torch

    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    smi = run("nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader")
    nvcuvid = [
        line.split("=>")[-1].strip()
        for line in run("ldconfig", "-p").splitlines()
        if "nvcuvid" in line
    ]
    cuda = torch.version.cuda or "none"
    return [
        f"* GPU: {smi or 'nvidia-smi gave nothing'}; libnvcuvid (NVDEC's library): "
        f"{', '.join(nvcuvid) or 'not found by ldconfig'}",
        f"* CPU: {cpu}, {os.cpu_count()} logical CPUs; {platform.system()} {platform.release()}",
        f"* Python {platform.python_version()}, torch {torch.__version__} (CUDA {cuda}), "
        f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}), NumPy {numpy.__version__}",
    ]


def tests(out: Path) -> tuple[list[str], bool]:
    try:
        root = ET.parse(out / "pytest.xml").getroot()
    except (OSError, ET.ParseError):
        return ["* CUDA tests: no pytest.xml (the step did not finish)"], False
    cases = list(root.iter("testcase"))
    failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    passed = len(cases) - len(failed) - len(skipped)
    ok = bool(cases) and not failed and not skipped
    lines = [
        f"* CUDA-marked tests (`OSSFRAME_REQUIRE_CUDA=1`, {TESTS}): {passed} passed, "
        f"{len(failed)} failed, {len(skipped)} skipped of {len(cases)}. "
        f"Target: every CUDA test passes, none skips: **{'met' if ok else 'NOT met'}**."
    ]
    for case in failed + skipped:
        nodes = [case.find(tag) for tag in ("failure", "error", "skipped")]
        node = next(n for n in nodes if n is not None)  # an Element with no children is falsy
        message = ((node.get("message") or "").splitlines() or [""])[0][:300]
        lines.append(f"  * {case.get('name')}: {message}")
    return lines, ok


def probe(out: Path) -> list[str]:
    results = load(out / "probe.json")
    if not isinstance(results, list):
        return ["No probe.json (the probe did not finish)."]
    rows = [
        "| clip | stream | VideoSource(hw='cuda') opened | first frame | cuda hwaccel alone | "
        "cuvid decoder alone |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['clip']} | {r['stream']} | {r['opened'] or 'CPU decoder'} | "
            f"{r['first_frame']} | {r['hwaccel_alone']} | {r['cuvid_alone']} |"
        )
    on_gpu = [r["clip"] for r in results if r["on_gpu"]]
    rows.append("")
    if on_gpu:
        rows.append(f"NVDEC decoded (first frame in GPU memory or NV12): {', '.join(on_gpu)}.")
    else:
        rows.append(
            "**Neither the cuda hwaccel nor a cuvid decoder opened on any clip: on this machine "
            '`device="cuda"` means CPU decode + GPU kernels.**'
        )
    return rows


def kernels(out: Path) -> list[str]:
    figures = load(out / "kernels.json")
    if not isinstance(figures, dict):
        return ["No kernels.json (the kernel benchmark did not finish)."]
    rows = [
        "| kernel, one call at 4K | C++ ms | torch_ops on CUDA ms | speed-up | target >= 10x |",
        "|---|---:|---:|---:|---|",
    ]
    for row in figures["rows"]:
        ratio = row["cpp_ms"] / row["torch_ms"]
        rows.append(
            f"| {row['kernel']} | {row['cpp_ms']:.3f} | {row['torch_ms']:.3f} | {ratio:.1f}x | "
            f"{'met' if ratio >= 10 else 'NOT met'} |"
        )
    rows += [
        "",
        f"Upload of the 4K YUV planes (pinned host -> GPU, not in the times above): "
        f"{figures['upload_ms']:.3f} ms. Medians of {figures['reps']} calls, GPU synchronized "
        f"around each. GPU vs C++ results checked first: max level difference "
        f"{figures['checks']} (tolerance 1), dhash identical.",
    ]
    return rows


def bench(out: Path) -> list[str]:
    figures = load(out / "bench_ml.json")
    if not isinstance(figures, dict):
        return ["No bench_ml.json (the loading benchmark did not finish)."]
    seconds = figures["seconds"]
    clips = figures["clips"]
    cpu = statistics.median(seconds["ossframe_native"])
    rows = [
        f"| ours on | clips/s | frames/s | median s ({clips} clips) | min .. max s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (("ossframe_native", "CPU"), ("ossframe_native cuda", "CUDA")):
        if name not in seconds:
            continue
        median = statistics.median(seconds[name])
        rows.append(
            f"| {label} | {clips / median:.2f} | {clips * 16 / median:.1f} | {median:.2f} | "
            f"{min(seconds[name]):.2f} .. {max(seconds[name]):.2f} |"
        )
    if "ossframe_native cuda" in seconds:
        ratio = cpu / statistics.median(seconds["ossframe_native cuda"])
        lowest = figures.get("lowest_psnr_vs_ours_cpu", {}).get("ossframe_native cuda")
        rows += [
            "",
            f"* CUDA vs CPU clips/s: **{ratio:.2f}x**. Target >= 3x: "
            f"**{'met' if ratio >= 3 else 'NOT met'}**.",
            f"* Lowest PSNR of a CUDA frame against the same CPU frame: {lowest:.1f} dB (the "
            "benchmark's check: >= 30 dB; the tests hold the GPU path to >= 40 dB and torch_ops "
            "to one level of the C++ kernels).",
        ]
    return rows


def stages(out: Path) -> list[str]:
    figures = load(out / "stages.json")
    if not isinstance(figures, dict):
        return ["No stages.json (the step did not run or finish)."]
    rows = [
        "One 4K clip, medians of 3 (`bench/gpu_stages.py`): open = demux index (+ the NVDEC "
        "session on CUDA), decode = the 16 wanted frames and the frames they need, render = "
        "conversion, resize and stacking.",
        "",
        "| ours on | open s | decode s | render s | frames_batch s |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, f in figures.items():
        decode = f["open+decode"] - f["open"]
        render = f["frames_batch"] - f["open+decode"]
        rows.append(
            f"| {label} | {f['open']:.3f} | {decode:.3f} | {render:.3f} | {f['frames_batch']:.3f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", type=Path, help="gpu_check.sh's output folder")
    add_results_flags(parser)
    args = parser.parse_args()
    out = args.outdir
    results = Results(out / "RESULTS_ML_GPU.md", allow_dirty=args.allow_dirty)
    test_lines, _ = tests(out)
    head = [
        "Everything below was produced by one run of `bench/gpu_check.sh` on the machine "
        "described; the figures are copied from its output files (pytest.xml, probe.json, "
        "kernels.json, bench_ml.json, stages.json) by `bench/gpu_report.py`.",
        "",
        "## Machine and versions",
        "",
        *machine(),
        "",
        "## Commands",
        "",
        "```",
        *COMMANDS,
        "```",
        "",
        "## Tests",
        "",
        *test_lines,
        "",
        "## Which decoder decodes (NVDEC or the CPU)",
        "",
        *probe(out),
        "",
        "## Loading benchmark: `m_avg,num_16,w_224,h_224,scaletype_crop`, 4K H.264",
        "",
        *bench(out),
        "",
        *stages(out),
        "",
        "## Kernels at 4K: torch_ops on CUDA vs the C++ kernels",
        "",
        *kernels(out),
    ]
    text = "\n".join(head) + "\n"
    print(text)
    print(f"wrote {results.write('The GPU path on a real GPU', text)}")


if __name__ == "__main__":
    main()
