"""The Ray executor and read_frames on one local Ray instance (2 CPUs) shared by the module.

Outputs, report lines and records are compared with the local executor's on the same clips,
byte for byte; read_frames rows are checked against the frame numbers the clips carry.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import test_store
from media import ClipTruth, all_files, decode_image, make_clip, read_frame_number, saveas

from ossframe_native.batch import Job, process_many
from ossframe_native.errors import InvalidArgument
from ossframe_native.store import LocalStore
from ossframe_native.task import prepare

if importlib.util.find_spec("ray") is not None:  # without ray each test skips (needs)
    import ray

s3_endpoint = test_store.s3_endpoint  # the moto S3 server fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs("ray"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

# Two outputs per clip (keyframes 0 and 10), named by source and output number.
SPEC = saveas("my-bucket", "{barename}/{index}.{autoext}")
# Fields that differ between any two runs (ids, clocks) or name the store itself.
VOLATILE = ("task_id", "timings", "store", "skipped")


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray for the module: 2 CPUs, no dashboard; workers import this package and
    the test helpers from the same folders as this process."""
    import ossframe_native

    tests = str(Path(__file__).resolve().parent)
    package_parent = str(Path(ossframe_native.__file__).resolve().parents[1])
    path = os.pathsep.join([package_parent, tests, os.environ.get("PYTHONPATH", "")])
    ray.init(
        address="local",  # a new instance even if another Ray runs on this machine
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path.rstrip(os.pathsep)}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 128x72 H.264 clips of 20 frames at 30 fps, GOP 10, and ``broken.mp4`` (garbage)."""
    folder = tmp_path_factory.mktemp("ray-videos")
    for name in ("a", "b", "c"):
        make_clip(folder / f"{name}.mp4", n_frames=20, size=(128, 72), gop=10, seed=ord(name))
    (folder / "broken.mp4").write_bytes(b"\x00not a video" * 100)
    return folder


def run(executor: str, sources: list[Path], root: Path, **kwargs) -> dict[str, dict]:
    """One batch; its report lines by source file name."""
    out = io.StringIO()
    process_many(
        [str(s) for s in sources],
        SPEC,
        store=root,
        executor=executor,
        report=out,
        progress=False,
        **kwargs,
    )
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    return {os.path.basename(x["source"]): x for x in lines}


def stable(line: dict) -> dict:
    return {k: v for k, v in line.items() if k not in VOLATILE}


def outputs(root: Path) -> dict[str, bytes]:
    """Every object of the bucket, by key (hidden temporary files would be listed too)."""
    bucket = root / "my-bucket"
    return {name: (bucket / name).read_bytes() for name in all_files(bucket)}


def records(root: Path) -> dict[str, dict]:
    return {
        p.name: stable(json.loads(p.read_text())) for p in sorted((root / ".tasks").glob("*.json"))
    }


def test_ray_and_local_write_the_same_bytes_lines_and_records(
    ray_instance, videos: Path, tmp_path: Path
) -> None:
    """The same batch (one failing source) on both executors; then each resumes the other's."""
    sources = [videos / n for n in ("a.mp4", "b.mp4", "c.mp4", "broken.mp4")]
    local = run("local", sources, tmp_path / "local", workers=2)
    on_ray = run("ray", sources, tmp_path / "ray")
    assert sorted(on_ray) == sorted(local) == ["a.mp4", "b.mp4", "broken.mp4", "c.mp4"]
    assert {k: stable(v) for k, v in on_ray.items()} == {k: stable(v) for k, v in local.items()}
    assert on_ray["broken.mp4"]["error_code"] == "MediaError"
    expected = outputs(tmp_path / "local")
    assert sorted(expected) == [f"{n}/{i}.jpg" for n in "abc" for i in (1, 2)]
    assert outputs(tmp_path / "ray") == expected
    assert records(tmp_path / "ray") == records(tmp_path / "local")

    # Started on Ray, resumed locally: the finished source is skipped, the failed one re-runs.
    run("ray", sources[:1] + sources[3:], tmp_path / "r2l")
    resumed = run("local", sources, tmp_path / "r2l", workers=2)
    assert {k for k, v in resumed.items() if v["skipped"]} == {"a.mp4"}
    # Started locally, resumed on Ray.
    run("local", sources[1:2], tmp_path / "l2r", workers=1)
    resumed = run("ray", sources, tmp_path / "l2r")
    assert {k for k, v in resumed.items() if v["skipped"]} == {"b.mp4"}
    for root in ("r2l", "l2r"):
        assert outputs(tmp_path / root) == expected
        assert records(tmp_path / root) == records(tmp_path / "local")
    assert {k: stable(v) for k, v in resumed.items()} == {k: stable(v) for k, v in local.items()}


def test_cli_executor_ray(ray_instance, videos: Path, tmp_path: Path, capsys) -> None:
    from ossframe_native.cli import main

    root = tmp_path / "root"
    argv = ["batch", str(videos / "a.mp4"), str(videos / "broken.mp4"), SPEC, "--root", str(root)]
    assert main([*argv, "--executor", "ray", "--no-progress"]) == 1  # broken.mp4 failed
    captured = capsys.readouterr()
    lines = {os.path.basename(x["source"]): x for x in map(json.loads, captured.out.splitlines())}
    assert lines["a.mp4"]["state"] == "Succeeded" and lines["broken.mp4"]["state"] == "Failed"
    assert "2 sources, 1 succeeded, 1 failed" in captured.err
    assert sorted(outputs(root)) == ["a/1.jpg", "a/2.jpg"]
    assert main([*argv, "--address", "127.0.0.1:1", "--no-progress"]) == 2  # not with local
    assert "--address is for --executor ray" in capsys.readouterr().err


def test_ray_arguments_are_checked_before_any_work(ray_instance, videos, tmp_path) -> None:
    src = [str(videos / "a.mp4")]
    with pytest.raises(InvalidArgument, match="workers"):
        process_many(src, SPEC, store=tmp_path, executor="ray", workers=2)
    with pytest.raises(InvalidArgument, match="lives in this process only"):
        process_many(src, SPEC, store="memory://x", executor="ray")
    with pytest.raises(InvalidArgument, match="unknown executor 'dask'"):
        process_many(src, SPEC, store=tmp_path, executor="dask")
    with pytest.raises(InvalidArgument, match="max_retries"):
        process_many(src, SPEC, store=tmp_path, executor="ray", max_retries=-1)
    assert list(tmp_path.iterdir()) == []


class CrashingStore(LocalStore):
    """A store that kills its process when asked to write an object of ``crash``: what a
    segfault in native code or an OOM kill does to a Ray worker. Each attempt is counted in
    ``<root>/attempts`` first."""

    def __reduce__(self):
        return (CrashingStore, (self.root,))

    def put(self, bucket: str, key: str, data: bytes) -> int:
        if key.startswith("crash/"):
            os.makedirs(self.root, exist_ok=True)  # this may be the store's first write
            with open(os.path.join(self.root, "attempts"), "a") as f:
                f.write("x")
            os._exit(9)
        return super().put(bucket, key, data)


def test_a_dying_worker_is_retried_then_reported(ray_instance, videos, tmp_path) -> None:
    from ossframe_native.ray import RayExecutor

    crash = tmp_path / "crash.mp4"
    crash.write_bytes((videos / "a.mp4").read_bytes())
    store = CrashingStore(tmp_path / "root")
    executor = RayExecutor(max_retries=1)
    jobs = [Job(str(p), prepare(SPEC, store)) for p in (videos / "b.mp4", crash, videos / "c.mp4")]
    lines = {os.path.basename(j.source): line for j, line in executor.run(jobs)}
    assert sorted(lines) == ["b.mp4", "c.mp4", "crash.mp4"]
    assert lines["crash.mp4"]["state"] == "Failed"
    assert lines["crash.mp4"]["error_code"] == "WorkerCrashed", lines["crash.mp4"]
    assert "2 time(s) with retries" in lines["crash.mp4"]["error_message"]
    assert (tmp_path / "root" / "attempts").read_text() == "xx"  # the first run + 1 retry
    assert lines["b.mp4"]["state"] == lines["c.mp4"]["state"] == "Succeeded"


def test_tasks_decode_with_the_cpus_ray_assigned(ray_instance) -> None:
    from ossframe_native.ray import assigned_cpus

    probe = ray.remote(assigned_cpus)
    assert ray.get(probe.options(num_cpus=2).remote()) == 2
    assert ray.get(probe.options(num_cpus=1).remote()) == 1


def test_in_flight_is_bounded(ray_instance, videos, tmp_path, monkeypatch) -> None:
    """200 sources, 2 CPUs: never more than 4 tasks submitted and not yet collected."""
    from ossframe_native import ray as ofn_ray

    submitted: list[int] = []
    real_wait = ray.wait

    def counting_wait(refs, **kwargs):
        submitted.append(len(refs))
        return real_wait(refs, **kwargs)

    monkeypatch.setattr(ofn_ray.ray, "wait", counting_wait)
    missing = [str(tmp_path / f"missing{i}.mp4") for i in range(200)]  # each fails fast
    store = LocalStore(tmp_path / "root")
    executor = ofn_ray.RayExecutor()
    lines = [line for _, line in executor.run([Job(s, prepare(SPEC, store)) for s in missing])]
    assert len(lines) == 200 and {x["error_code"] for x in lines} == {"MediaError"}
    assert max(submitted) == 4 and executor.workers == 2


# -- read_frames -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> ClipTruth:
    """H.264, 160x96, 30 fps, 45 frames, GOP 15, 2 B-frames: frame i shows the number i."""
    folder = tmp_path_factory.mktemp("ray-frames")
    return make_clip(folder / "numbers.mp4", n_frames=45, size=(160, 96), gop=15, bframes=2)


def test_read_frames_rows_are_the_captured_frames(ray_instance, clip: ClipTruth) -> None:
    import ossframe_native as ofn
    from ossframe_native.ray import read_frames

    rows = read_frames(str(clip.path), inter=200).take_all()
    assert [r["index"] for r in rows] == [0, 6, 12, 18, 24, 30, 36, 42]  # every 200 ms at 30 fps
    assert [read_frame_number(r["frame"]) for r in rows] == [r["index"] for r in rows]
    want = list(ofn.frames(str(clip.path), inter=200))
    assert [r["time_ms"] for r in rows] == [f.time_ms for f in want]
    assert [bool(r["keyframe"]) for r in rows] == [
        i % 15 == 0 for i in [0, 6, 12, 18, 24, 30, 36, 42]
    ]
    for row, frame in zip(rows, want, strict=True):
        assert row["source"] == str(clip.path)
        np.testing.assert_array_equal(row["frame"], frame.array)


def test_read_frames_clips(ray_instance, clip: ClipTruth, videos: Path) -> None:
    from ossframe_native.ray import read_frames

    paths = [str(clip.path), str(videos / "a.mp4")]
    rows = {r["source"]: r for r in read_frames(paths, m="key", clips=True, w=64, h=64).take_all()}
    assert sorted(rows) == sorted(paths)
    numbers = rows[str(clip.path)]
    assert list(numbers["indices"]) == [0, 15, 30]
    assert numbers["frames"].shape == (3, 64, 64, 3) and numbers["frames"].dtype == np.uint8
    assert list(rows[str(videos / "a.mp4")]["indices"]) == [0, 10]


def test_read_frames_with_decoders_in_flight(ray_instance, clip: ClipTruth, videos: Path) -> None:
    """decoders=2 (how device='cuda' reads: a task takes a group of sources and decodes two at
    once, here on CPU decoders): the same rows, per frame and per clip."""
    from ossframe_native.ray import read_frames

    paths = [str(clip.path), str(videos / "a.mp4"), str(videos / "b.mp4")]
    one = read_frames(paths, m="key", w=64, h=48).take_all()
    grouped = read_frames(paths, m="key", w=64, h=48, decoders=2).take_all()
    key = lambda r: (r["source"], r["index"])  # noqa: E731
    assert sorted(map(key, grouped)) == sorted(map(key, one)) and len(one) == 7
    for a, b in zip(sorted(grouped, key=key), sorted(one, key=key), strict=True):
        np.testing.assert_array_equal(a["frame"], b["frame"])
    clips = read_frames(paths, m="key", clips=True, w=64, h=48, decoders=2).take_all()
    assert {r["source"]: list(r["indices"]) for r in clips}[str(clip.path)] == [0, 15, 30]


def test_read_frames_checks_its_arguments(ray_instance, tmp_path) -> None:
    from ossframe_native.ray import read_frames

    with pytest.raises(InvalidArgument, match="scaletype"):
        read_frames("x.mp4", scaletype="zoom")
    with pytest.raises(InvalidArgument, match="cpu, cuda, cuda:<index>"):
        read_frames("x.mp4", device="gpu")
    with pytest.raises(InvalidArgument, match="integer >= 1"):
        read_frames("x.mp4", decoders=0)
    with pytest.raises(InvalidArgument, match="matches no file"):
        read_frames(str(tmp_path / "*.mp4"))


# -- S3 (the moto server) ----------------------------------------------------------------------


def test_ray_batch_to_s3_and_frames_from_s3(
    ray_instance, videos: Path, clip: ClipTruth, s3_endpoint: str, tmp_path: Path
) -> None:
    """Workers write a batch's outputs and records to S3; read_frames reads a source there."""
    from ossframe_native.ray import read_frames

    test_store.make_s3_bucket(s3_endpoint, "ray-out")
    store = test_store.s3_store(s3_endpoint, "s3://ray-out/run")
    sources = [str(videos / n) for n in ("a.mp4", "b.mp4")]
    summary = process_many(sources, SPEC, store=store, executor="ray", progress=False)
    assert (summary.succeeded, summary.failed) == (2, 0)
    local = tmp_path / "reference"
    process_many(sources, SPEC, store=local, workers=1, progress=False)
    assert store.list("my-bucket") == sorted(outputs(local))
    for key, data in outputs(local).items():
        assert store.get("my-bucket", key) == data
    again = process_many(sources, SPEC, store=store, executor="ray", progress=False)
    assert again.skipped == 2  # the records on S3 are read back

    store.put("sources", "numbers.mp4", clip.path.read_bytes())
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": store.storage_options["client_kwargs"],
    }
    rows = read_frames(
        "s3://ray-out/run/sources/numbers.mp4", m="key", storage_options=options
    ).take_all()
    assert [read_frame_number(r["frame"]) for r in rows] == [0, 15, 30]

    # A batch whose source is an S3 URL: the workers open it with the job's storage options.
    url = "s3://ray-out/run/sources/numbers.mp4"
    summary = process_many(
        [url],
        SPEC,
        store=tmp_path / "from-s3",
        executor="ray",
        storage_options=options,
        progress=False,
    )
    assert (summary.succeeded, summary.failed) == (1, 0)
    from_s3 = outputs(tmp_path / "from-s3")
    assert sorted(from_s3) == ["numbers/1.jpg", "numbers/2.jpg", "numbers/3.jpg"]
    numbers = [read_frame_number(decode_image(data)) for _, data in sorted(from_s3.items())]
    assert numbers == [0, 15, 30]


def test_sprite_batch_on_ray_equals_local(ray_instance, videos: Path, tmp_path: Path) -> None:
    """``video/sprite`` with a storyboard on the Ray executor: the same sheets, storyboards and
    report lines as on the local one."""
    action = "video/sprite,f_png,sw_32,sh_32,tw_4,th_2,vtt_1"  # 20 frames: 3 sheets
    spec = saveas("my-bucket", "{barename}/{index}.{autoext}", action)
    sources = [str(videos / "a.mp4"), str(videos / "b.mp4")]
    lines = {}
    for executor, options in (("local", {"workers": 1}), ("ray", {})):
        out = io.StringIO()
        process_many(
            sources, spec, store=tmp_path / executor, executor=executor, report=out,
            progress=False, **options,
        )  # fmt: skip
        parsed = [json.loads(x) for x in out.getvalue().splitlines()]
        lines[executor] = {os.path.basename(x["source"]): stable(x) for x in parsed}
    assert lines["ray"] == lines["local"]
    expected = outputs(tmp_path / "local")
    names = ("1.png", "1.vtt", "2.png", "3.png")
    assert sorted(expected) == [f"{n}/{name}" for n in "ab" for name in names]
    assert outputs(tmp_path / "ray") == expected
