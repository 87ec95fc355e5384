#!/usr/bin/env bash
# The GPU path on a GPU machine, in one go: build, CUDA tests, decoder probe, kernel and loading
# benchmarks, and RESULTS_ML_GPU.md generated from their outputs (bench/gpu_report.py).
#
#   bash bench/gpu_check.sh OUTDIR           # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh OUTDIR --cpu     # dry run on a machine without a GPU: the same
#                                            # steps, small and on CPU torch, to catch typos
#
# OUTDIR receives pytest.xml, probe.json, kernels.json, bench_ml.json, stages.json and
# RESULTS_ML_GPU.md;
# everything else is printed. Set PREBUILT=path/to/_native*.so to use a ready extension where
# the build fails (no compiler or Python headers).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUTDIR [--cpu]}
mode=${2:-gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
step() { echo; echo "== $(date +%T) $*"; }

if [ "$mode" = --cpu ]; then
    size=320x180 clips=2 runs=1 require=0 gpu_flag="" kernel_device=cpu reps=2 ksize=640x360
    report_flags=--allow-dirty  # a dry run's report is not a result
else
    size=3840x2160 clips=3 runs=5 require=1 gpu_flag=--gpu kernel_device=cuda reps=30
    ksize=3840x2160 report_flags=""
    # The report refuses a tree with uncommitted changes, or a copy without git and without a
    # COMMIT file (`git describe --always --dirty > COMMIT` where it was copied): check now,
    # not after the GPU time is spent.
    $py bench/harness.py || { echo "gpu_check.sh: commit or use --cpu"; exit 1; }
fi

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader || true
ldconfig -p | grep -E 'libcuda\.so|nvcuvid' || echo "ldconfig: no libcuda / libnvcuvid"
$py -c "import sys, torch, av, numpy; print(sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, torch.cuda.is_available(), 'PyAV', av.__version__,
av.ffmpeg_version_info, 'numpy', numpy.__version__)"
$py -c "from av.codec import hwaccel; import av; print('hwdevices', hwaccel.hwdevices_available(),
'cuvid', sorted(c for c in av.codecs_available if c.endswith('_cuvid')))"
nproc

step "4K clips for the loading benchmark (background)"
timeout 240 $py bench/bench_ml.py --media-only --size "$size" --clips "$clips" >/tmp/gpu_media.log 2>&1 &
media_pid=$!

step "build the extension in place"
if ! $py setup.py build_ext --inplace -q >/tmp/gpu_build.log 2>&1; then
    tail -20 /tmp/gpu_build.log
    if [ -n "${PREBUILT:-}" ]; then
        echo "build failed: using the prebuilt $PREBUILT"
        cp "$PREBUILT" ossframe_native/
    fi
fi
$py -c "from ossframe_native import kernels; print('native kernels import:', kernels.__name__)"

step "CUDA-marked tests (OSSFRAME_REQUIRE_CUDA=$require)"
OSSFRAME_REQUIRE_CUDA=$require timeout 150 $py -m pytest -q -m cuda -p no:cacheprovider \
    tests/test_ml.py tests/test_torch_ops.py --junitxml "$out/pytest.xml" --tb=short 2>&1
step "tests that branch on CUDA being present"
timeout 45 $py -m pytest -q -p no:cacheprovider tests/test_ml.py \
    -k "auto_device or without_cuda or falls_back_with_a_reason" 2>&1

step "waiting for the clips"
wait $media_pid
cat /tmp/gpu_media.log
clip0=$(grep -m1 '\.mp4$' /tmp/gpu_media.log)

step "decoder probe"
timeout 60 $py bench/gpu_probe.py --media /tmp/gpu_probe --extra "$clip0" \
    --json "$out/probe.json" 2>&1

step "kernel benchmark at $ksize ($kernel_device)"
timeout 90 $py bench/bench_kernels_gpu.py --device "$kernel_device" --reps "$reps" \
    --size "$ksize" --json "$out/kernels.json"

step "loading benchmark: ours on CUDA vs ours on the CPU"
timeout 200 $py bench/bench_ml.py $gpu_flag --ours-only --size "$size" --clips "$clips" \
    --runs "$runs" --no-write --profile --json "$out/bench_ml.json" 2>&1

if [ "$mode" != --cpu ]; then
    step "where one 4K clip's time goes, CPU vs CUDA"
    timeout 90 $py bench/gpu_stages.py "$clip0" --json "$out/stages.json" 2>&1
fi

step "report"
$py bench/gpu_report.py "$out" $report_flags
step "done"
