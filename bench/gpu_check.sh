#!/usr/bin/env bash
# The GPU path on a GPU machine, in one go (about 7 minutes on one H200 with 16 cores): build,
# the CUDA-marked tests, the decoder probe, the throughput benchmark over many sources, and
# bench/RESULTS_ML_GPU.md written from their outputs (bench/gpu_report.py). See bench/GPU_RUN.md.
#
#   bash bench/gpu_check.sh OUTDIR           # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh OUTDIR --cpu     # dry run on a machine without a GPU: the same steps,
#                                            # small and on the CPU; the report goes to OUTDIR only
#
# OUTDIR receives pytest.xml, probe.json, bench_gpu.json and RESULTS_ML_GPU.md; the rest is
# printed. Variables: REQUIRE_CUDA (default 1 on a GPU run, 0 with --cpu) makes a skipped CUDA
# test a failure; the commit stamped on the results is git's where the tree has it, else
# OSSFRAME_COMMIT (else .whl/COMMIT); FORCE=1 writes them from a tree with uncommitted changes
# (marked so; the report is otherwise refused, checked before the GPU time); KERNELS=1 adds
# the kernel benchmark; PREBUILT=path/to/_native*.so is used where the build fails.
set -uo pipefail
out=${1:?usage: gpu_check.sh OUTDIR [--cpu]}
mode=${2:-gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
budget=${BUDGET_S:-560}  # the whole script, seconds: every step's timeout fits inside it
step() { echo; echo "== $(date +%T) (+${SECONDS}s) $*"; }
left() { local s=$((budget - SECONDS - ${1:-0})); echo $((s > 30 ? s : 30)); }

if [ "$mode" = --cpu ]; then
    bench=(--device cpu --size 320x180 --clips 4 --seconds 2 --runs 1 --cpu-decoders 1,2
           --device-decoders 1,default,3)
    media=(--size 320x180 --clips 4 --seconds 2)
    require=${REQUIRE_CUDA:-0} report=(--results "$out/RESULTS_ML_GPU.md" --allow-dirty)
    kernel=(--device cpu --reps 2 --size 640x360)
else
    bench=(--device cuda --size 3840x2160 --clips 16 --seconds 4 --runs 2 --cpu-runs 1
           --cpu-decoders 1,4 --device-decoders 1,default,14)
    media=(--size 3840x2160 --clips 16 --seconds 4)
    require=${REQUIRE_CUDA:-1} report=()
    kernel=(--device cuda --reps 30 --size 3840x2160)
fi
[ "${FORCE:-0}" = 1 ] && report+=(--allow-dirty)
if [ -z "${OSSFRAME_COMMIT:-}" ] && [ -f .whl/COMMIT ]; then
    OSSFRAME_COMMIT=$(cat .whl/COMMIT)
fi
export OSSFRAME_COMMIT=${OSSFRAME_COMMIT:-}
# The report would refuse this tree (uncommitted changes, or no git and no commit given):
# stop now, not after the GPU time.
if [ "$mode" != --cpu ] && [ "${FORCE:-0}" != 1 ] && ! $py bench/harness.py; then
    echo "gpu_check.sh: commit first (or FORCE=1, or --cpu for a dry run)" >&2
    exit 1
fi

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader || true
ldconfig -p | grep -E 'libcuda\.so|nvcuvid' || echo "ldconfig: no libcuda / libnvcuvid"
$py -c "import sys, torch, av, numpy; print(sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, torch.cuda.is_available(), 'PyAV', av.__version__,
av.ffmpeg_version_info, 'numpy', numpy.__version__)"
$py -c "from av.codec import hwaccel; import av; print('hwdevices', hwaccel.hwdevices_available(),
'cuvid', sorted(c for c in av.codecs_available if c.endswith('_cuvid')))"
echo "cores: $(nproc); commit: ${OSSFRAME_COMMIT:-from git}"

step "clips for the benchmark, H.264 and HEVC (background)"
timeout 300 $py bench/bench_gpu.py --media-only "${media[@]}" >"$out/media.log" 2>&1 &
media_pid=$!

step "build the extension in place"
if ! timeout 180 $py setup.py build_ext --inplace -q >/tmp/gpu_build.log 2>&1; then
    tail -20 /tmp/gpu_build.log
    if [ -n "${PREBUILT:-}" ]; then
        echo "build failed: using the prebuilt $PREBUILT"
        cp "$PREBUILT" ossframe_native/
    fi
fi
$py -c "from ossframe_native import kernels; print('native kernels import:', kernels.__name__)"

step "CUDA-marked tests (OSSFRAME_REQUIRE_CUDA=$require: a skip is a failure)"
OSSFRAME_REQUIRE_CUDA=$require timeout 150 $py -m pytest -q -m cuda -p no:cacheprovider \
    tests/test_ml.py tests/test_torch_ops.py tests/test_loader.py --junitxml "$out/pytest.xml" \
    --tb=short 2>&1
step "tests that branch on CUDA being present"
timeout 60 $py -m pytest -q -p no:cacheprovider tests/test_ml.py tests/test_loader.py \
    -k "auto_device or without_cuda or falls_back" 2>&1

step "waiting for the clips"
wait $media_pid
tail -3 "$out/media.log"
extra=$(ls bench/media/gpu/h264_*_00.mp4 bench/media/gpu/hevc_*_00.mp4 2>/dev/null | head -2)

step "decoder probe"
# shellcheck disable=SC2086  # one path per word
timeout 90 $py bench/gpu_probe.py --media /tmp/gpu_probe --extra $extra --json "$out/probe.json" 2>&1

if [ "${KERNELS:-0}" = 1 ]; then
    step "kernel benchmark"
    timeout 90 $py bench/bench_kernels_gpu.py "${kernel[@]}" --json "$out/kernels.json"
fi

step "throughput: many sources at once on the GPU vs every CPU core ($(left 20) s left)"
timeout "$(left 20)" $py bench/bench_gpu.py "${bench[@]}" --json "$out/bench_gpu.json" 2>&1

step "report"
$py bench/gpu_report.py "$out" "${report[@]}"
step "done in ${SECONDS}s"
