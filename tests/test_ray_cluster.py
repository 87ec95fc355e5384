"""A batch on a simulated two-node Ray cluster: it spreads over both nodes, and removing one
node mid-batch loses no source and leaves no partial object (see ``ray_cluster.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.needs("ray")]


def test_two_nodes_spread_and_survive_a_lost_node(tmp_path: Path, child_env: dict) -> None:
    tests = Path(__file__).resolve().parent
    env = dict(child_env, PYTHONPATH=os.pathsep.join([str(tests), child_env["PYTHONPATH"]]))
    done = subprocess.run(
        [sys.executable, str(tests / "ray_cluster.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    spread = result["spread"]
    assert len(spread) == 8 and len(set(spread.values())) == 2, spread  # both nodes ran sources
    killed = result["killed"]
    assert sorted(killed["states"]) == sorted(spread)  # no source lost
    assert set(killed["states"].values()) == {"Succeeded"}, killed
    # The node was removed while a source there had written its first output: that source
    # was run again on the other node and finished there; the dead node finished none.
    dead, interrupted = result["dead_node"], killed["interrupted"]
    tries = [node for source, node in killed["attempts"] if source == interrupted]
    assert tries[0] == dead and len(tries) == 2 and tries[1] != dead, killed
    assert killed["nodes"][f"{interrupted}.mp4"] != dead
    assert killed["finished_on_dead_node"] == 0, killed
    assert result["reference_equal"] == {"spread": True, "killed": True}
    assert result["outputs"] == 8 * 30  # 3 s at inter_100: 30 images per clip
    assert all(Path(name).name.startswith(".") for name in result["temp_files"])
