"""Every benchmark question in one run: ossframe_native against the tools users would pick
instead, written to ``bench/RESULTS.md``.

    python bench/run.py --runs 5          # the full run (about 13 minutes on 2 cores)
    python bench/run.py --quick           # 1 run each, slowest competitors left out
    python bench/run.py --only snapshot interval --runs 3   # some questions only

Each question is also a script of its own (``bench/bench_snapshot.py`` ...); how they measure is
in ``bench/harness.py``. ``--quick`` and ``--only`` write ``bench/out/RESULTS-partial.md``.
"""

from __future__ import annotations

import sys

import bench_batch
import bench_cli
import bench_dhash
import bench_interval
import bench_kernels
import bench_key
import bench_memory
import bench_snapshot
import bench_uhd
from harness import main

# In the order of RESULTS.md.
QUESTIONS = (
    bench_snapshot,
    bench_cli,
    bench_interval,
    bench_key,
    bench_dhash,
    bench_kernels,
    bench_memory,
    bench_batch,
    bench_uhd,
)
TASKS = {name: task for question in QUESTIONS for name, task in question.TASKS.items()}

if __name__ == "__main__":
    sys.exit(main(TASKS, script=__file__, description=__doc__, complete=True))
