"""Writes bench/RESULTS_ML_GPU.md from what ``bench/gpu_check.sh`` left in its output folder.

    python bench/gpu_report.py OUTDIR [--allow-dirty] [--results PATH]

Reads OUTDIR/pytest.xml (the CUDA-marked tests), probe.json (which decoder opened on each
clip), bench_gpu.json (throughput, ``bench/bench_gpu.py``) and, where it was run,
kernels.json; writes bench/RESULTS_ML_GPU.md (and a copy in OUTDIR) through the harness's
results writer. The commit is ``git describe`` of the checkout, or the ``OSSFRAME_COMMIT``
variable where the tree travelled without git. Each target is stated beside its figure; a
missing input (a step that failed or was cut off) is reported as missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

TESTS = "tests/test_ml.py tests/test_torch_ops.py tests/test_loader.py"
COMMANDS = [
    "bash bench/gpu_check.sh OUTDIR   # every step below, logs and figures into OUTDIR",
    "python3 setup.py build_ext --inplace",
    f"OSSFRAME_REQUIRE_CUDA=1 python3 -m pytest -m cuda {TESTS} --junitxml OUTDIR/pytest.xml",
    "python3 bench/gpu_probe.py --media /tmp/gpu_probe --extra <a 4K clip of each codec> "
    "--json OUTDIR/probe.json",
    "python3 bench/bench_gpu.py --json OUTDIR/bench_gpu.json   # 16 4K clips per codec",
]


def load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def smi() -> str:
    try:
        query = [
            "nvidia-smi",
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader",
        ]
        return subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def tests(out: Path) -> tuple[list[str], str, bool]:
    """The lines of the tests section, the figure for the summary, and whether all passed."""
    try:
        root = ET.parse(out / "pytest.xml").getroot()
    except (OSError, ET.ParseError):
        return ["* CUDA tests: no pytest.xml (the step did not finish)"], "not run", False
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
    for case in (failed + skipped)[:20]:
        nodes = [case.find(tag) for tag in ("failure", "error", "skipped")]
        node = next(n for n in nodes if n is not None)  # an Element with no children is falsy
        message = ((node.get("message") or "").splitlines() or [""])[0][:300]
        lines.append(f"  * {case.get('name')}: {message}")
    if len(failed) + len(skipped) > 20:
        lines.append(f"  * ... and {len(failed) + len(skipped) - 20} more")
    figure = f"{passed} of {len(cases)} passed, {len(failed)} failed, {len(skipped)} skipped"
    return lines, figure, ok


def probe(out: Path) -> list[str]:
    results = load(out / "probe.json")
    if not isinstance(results, list):
        return ["No probe.json (the probe did not finish)."]
    rows = [
        "| clip | stream | opened with hw='cuda' | first frame | cuda hwaccel alone | "
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
    rows.append(
        f"NVDEC decoded (first frame in GPU memory or NV12): {', '.join(on_gpu)}."
        if on_gpu
        else '**No GPU decoder opened on any clip: here `device="cuda"` means CPU decode + '
        "GPU kernels.**"
    )
    return rows


def _peak(configs: list[dict[str, Any]], key: str) -> float | None:
    values = [f[key] for f in configs if f.get(key) is not None]
    return max(values) if values else None


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def throughput(figures: Any) -> tuple[list[str], list[tuple[str, str, bool]]]:
    """The tables, and (target, figure, met) for the summary."""
    if not isinstance(figures, dict) or not figures.get("results"):
        return ["No bench_gpu.json (the throughput benchmark did not finish)."], []
    device = figures["device"]
    rows = [
        f"{figures['clips']} clips per codec, {figures['size']}, {figures['seconds']} s, 30 fps, "
        f"a keyframe every second (`bench/bench_gpu.py`); `ml.frames_batches(..., "
        f"output='torch', device=...)` over all of them, {figures['runs']} timed runs on "
        f"{device} (medians), {figures['cpu_runs']} on the CPU, each after a warm-up on two "
        "clips. **decoders**: sources decoding at once; the CPU baseline is its best "
        "configuration (one source on every core, or sources side by side).",
        "",
        "| codec | task | CPU best clips/s | GPU clips/s, default decoders | GPU best | "
        "GPU / CPU (default) | target | met | lowest PSNR GPU vs CPU | same frames | "
        "GPU memory peak MiB (device / torch) |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    summary = []
    for r in figures["results"]:
        default_index = next(i for i, f in enumerate(r["device"]) if f["default"])
        default, check = r["device"][default_index], r["checks"][default_index]
        best_cpu = max(r["cpu"], key=lambda f: f["clips_per_s"])
        best = max(r["device"], key=lambda f: f["clips_per_s"])
        same = check["same_frames"] == check["clips"]
        if r["task"] == "dhash":
            same = same and check["same_scores"] == check["clips"]
        quality = r["task"] != "avg" or check["lowest_psnr"] >= 40
        met = r["default_ratio"] >= r["target"] and same and quality
        memory = _peak(r["device"], "device_memory_peak_mib")
        torch_peak = _peak(r["device"], "torch_memory_peak_mib")
        rows.append(
            f"| {r['codec']} | `{r['spec']}` | {best_cpu['clips_per_s']:.2f} "
            f"({best_cpu['decoders']}) | {default['clips_per_s']:.2f} ({default['decoders']}) | "
            f"{best['clips_per_s']:.2f} ({best['decoders']}) | **{r['default_ratio']:.2f}x** | "
            f">= {r['target']:g}x | {'**met**' if met else '**NOT met**'} | "
            f"{check['lowest_psnr']:.1f} dB | {check['same_frames']}/{check['clips']} clips"
            f"{', scores ' + str(check['same_scores']) if r['task'] == 'dhash' else ''} | "
            f"{_mib(memory)} / {_mib(torch_peak)} |"
        )
        summary.append(
            (
                f"{r['codec']} {r['task']}: GPU >= {r['target']:g}x CPU"
                + (", frames >= 40 dB" if r["task"] == "avg" else ", same outputs"),
                f"{r['default_ratio']:.2f}x ({default['clips_per_s']:.2f} vs "
                f"{best_cpu['clips_per_s']:.2f} clips/s), {check['lowest_psnr']:.1f} dB",
                met,
            )
        )
    rows += [
        "",
        "Every configuration (clips/s; median seconds [min .. max]):",
        "",
        "| codec | task | side | decoders | threads per source | clips/s | s | "
        "device memory peak MiB |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    for r in figures["results"]:
        for side, configs in (("CPU", r["cpu"]), (device, r["device"])):
            for f in configs:
                s = f["seconds"]
                rows.append(
                    f"| {r['codec']} | {r['task']} | {side} | {f['decoders']}"
                    f"{' (default)' if f['default'] else ''} | {f['threads_per_source'] or 'all'} "
                    f"| {f['clips_per_s']:.2f} | {statistics.median(s):.2f} [{min(s):.2f} .. "
                    f"{max(s):.2f}] | {_mib(f.get('device_memory_peak_mib'))} |"
                )
    return rows, summary


def kernels(out: Path) -> list[str]:
    figures = load(out / "kernels.json")
    if not isinstance(figures, dict):
        return []
    rows = [
        "## Kernels at 4K: torch_ops on CUDA vs the C++ kernels",
        "",
        "| kernel, one call at 4K | C++ ms | torch_ops on CUDA ms | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for row in figures["rows"]:
        ratio = row["cpp_ms"] / row["torch_ms"]
        rows.append(
            f"| {row['kernel']} | {row['cpp_ms']:.3f} | {row['torch_ms']:.3f} | {ratio:.1f}x |"
        )
    return [*rows, ""]


def versions(figures: Any) -> dict[str, str]:
    machine = figures.get("machine", {}) if isinstance(figures, dict) else {}
    found = {
        "torch": f"{machine.get('torch', '?')} (CUDA {machine.get('cuda')})",
        "PyAV": f"{machine.get('pyav', '?')} (FFmpeg {machine.get('ffmpeg', '?')})",
        "NumPy": str(machine.get("numpy", "?")),
    }
    gpu = machine.get("gpu")
    return {"GPU": f"{gpu}, {smi() or 'nvidia-smi gave nothing'}", **found} if gpu else found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS_ML_GPU.md")
    import harness

    harness.add_results_flags(parser)
    args = parser.parse_args(argv)
    results = harness.Results(
        args.results, allow_dirty=args.allow_dirty, command="bash bench/gpu_check.sh OUTDIR"
    )
    figures = load(args.out / "bench_gpu.json")
    test_lines, test_figure, tests_ok = tests(args.out)
    tables, summary = throughput(figures)
    targets = [("every CUDA-marked test passes, none skips", test_figure, tests_ok)]
    measured = ", ".join(f"{name} {version}" for name, version in versions(figures).items())
    body = [
        "Everything below is one run of `bench/gpu_check.sh`; the figures are copied from its "
        "output files by `bench/gpu_report.py`.",
        "",
        f"* measured with: {measured}",
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
        *probe(args.out),
        "",
        "## Throughput: many sources, several decoders in flight",
        "",
        *tables,
        "",
        *kernels(args.out),
        "## Targets at a glance",
        "",
        "| target | figure | met? |",
        "|---|---|---|",
        *(f"| {t} | {f} | {'yes' if m else 'no'} |" for t, f, m in [*targets, *summary]),
    ]
    results.write("The GPU path on a real GPU", "\n".join(body))
    if args.results.resolve() != (args.out / args.results.name).resolve():
        shutil.copy(args.results, args.out / args.results.name)
    print(args.results.read_text())


if __name__ == "__main__":
    main()
