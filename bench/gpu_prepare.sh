#!/usr/bin/env bash
# Prepares a run of bench/gpu_check.sh on a GPU machine that has no network (bench/GPU_RUN.md):
# the PyAV wheel for its Python (3.12, manylinux x86_64) and the commit to stamp on the results,
# both into .whl/ (git-ignored), the folder the run carries over.
#
#   bash bench/gpu_prepare.sh          # from the repository root, on a machine with pip access
#
# A tree with uncommitted changes is refused (its results could not name their code); FORCE=1
# prepares it anyway (the results are then marked dirty).
set -euo pipefail
version=${AV_VERSION:-$(python3 -c 'import av; print(av.__version__)')}
commit=$(git describe --always --dirty --abbrev=12)
if [[ "$commit" == *-dirty && "${FORCE:-0}" != 1 ]]; then
    echo "gpu_prepare: uncommitted changes ($commit): commit first, or FORCE=1" >&2
    exit 1
fi
mkdir -p .whl
rm -f .whl/av-*.whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "av==$version"
echo "$commit" >.whl/COMMIT
ls -l .whl
echo "ready: commit $commit, PyAV $version; now run the command in bench/GPU_RUN.md"
