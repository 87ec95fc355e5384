"""A two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``, one CPU per node).

Run as ``python ray_cluster.py WORKDIR`` (a driver process can join only one Ray instance, so
tests start it in a child). It prints one JSON object:

* ``spread``: node id of every source of a batch on both nodes;
* ``killed``: a second batch during which the non-head node is removed (its processes
  killed) while a task there is between its first and second output (it is held there): each
  source's state, the node that finished it, and every attempt (source, node) in the order
  they began;
* ``reference_equal``: for both batches, whether the objects in the store are byte for byte
  those a one-process local run wrote; ``temp_files``: hidden temporary files left behind.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import ray
from media import make_clip, saveas
from ray.cluster_utils import Cluster

from ossframe_native.batch import Job, LocalExecutor
from ossframe_native.ray import RayExecutor
from ossframe_native.store import TEMP_SUFFIX, LocalStore, append_line_to_file
from ossframe_native.task import prepare

SPEC = saveas("out", "{barename}/{index}.{autoext}", "video/snapshots,f_jpg,inter_100")
SOURCES = 8


class AttemptLog(LocalStore):
    """A local store that notes ``<source>\t<node id>`` in ``<root>/attempts.log`` when a
    task attempt writes its first output (workers import this module to unpickle it)."""

    def __reduce__(self):
        return (AttemptLog, (self.root,))

    def put(self, bucket: str, key: str, data: bytes) -> int:
        node = ray.get_runtime_context().get_node_id()
        if key.endswith("/1.jpg"):
            os.makedirs(self.root, exist_ok=True)
            line = f"{key.split('/')[0]}\t{node}"
            append_line_to_file(os.path.join(self.root, "attempts.log"), line.encode())
        elif key.endswith("/2.jpg"):
            self._hold(node)
        return super().put(bucket, key, data)

    def _hold(self, node: str) -> None:
        """On the node named in ``<root>/hold``, a task stops after its first output until
        that file goes (or its node does): the driver can kill the node mid-source."""
        hold = Path(self.root, "hold")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and hold.exists() and hold.read_text() == node:
            time.sleep(0.05)

    def attempts(self) -> list[list[str]]:
        try:
            text = Path(self.root, "attempts.log").read_text()
        except FileNotFoundError:
            return []
        return [line.split("\t") for line in text.splitlines()]


def wait_for_running(store: AttemptLog, node: str, finished: set[str]) -> str:
    """A source that ``node`` has begun writing and that has not finished (waits up to 300 s:
    a worker process starts slowly on a busy machine)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for source, where in store.attempts():
            if where == node and source not in finished:
                return source
        time.sleep(0.01)
    raise TimeoutError(f"node {node} began no source in 300 s: {store.attempts()}, {finished}")


def files(root: Path) -> dict[str, bytes]:
    bucket = root / "out"
    return {str(p.relative_to(bucket)): p.read_bytes() for p in bucket.rglob("*") if p.is_file()}


def finals(found: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in found.items() if not k.endswith(TEMP_SUFFIX)}


def main(workdir: Path) -> dict:
    sources = []
    for i in range(SOURCES):
        path = workdir / f"clip{i}.mp4"
        make_clip(path, n_frames=90, size=(320, 180), gop=30, seed=i)
        sources.append(str(path))
    reference = workdir / "reference"
    local = LocalExecutor(1)
    for _ in local.run([Job(s, prepare(SPEC, LocalStore(reference))) for s in sources]):
        pass
    expected = files(reference)

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        spread_store = LocalStore(workdir / "spread")
        executor = RayExecutor()
        spread = {
            os.path.basename(job.source): executor.nodes.get(job.source, line["state"])
            for job, line in executor.run([Job(s, prepare(SPEC, spread_store)) for s in sources])
        }

        killed_store = AttemptLog(workdir / "killed")
        os.makedirs(killed_store.root)
        Path(killed_store.root, "hold").write_text(worker.node_id)
        executor = RayExecutor(max_retries=3)
        states: dict[str, str] = {}
        interrupted = None
        dead = worker.node_id
        for job, line in executor.run([Job(s, prepare(SPEC, killed_store)) for s in sources]):
            states[os.path.basename(job.source)] = line["state"]
            if interrupted is None:
                finished = {name.removesuffix(".mp4") for name in states}
                interrupted = wait_for_running(killed_store, dead, finished)
                cluster.remove_node(worker, allow_graceful=False)
        killed_nodes = {os.path.basename(s): n for s, n in executor.nodes.items()}
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {
        "nodes": 2,
        "dead_node": dead,
        "spread": spread,
        "killed": {
            "states": states,
            "nodes": killed_nodes,
            "finished_on_dead_node": sum(1 for n in killed_nodes.values() if n == dead),
            "interrupted": interrupted,
            "attempts": killed_store.attempts(),
        },
        "reference_equal": {
            "spread": files(workdir / "spread") == expected,
            "killed": finals(files(workdir / "killed")) == expected,
        },
        "temp_files": sorted(set(files(workdir / "killed")) - set(expected)),
        "outputs": len(expected),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
    sys.exit(0)
