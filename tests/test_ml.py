"""ml.py: frames / frames_batch as NumPy and torch, the GPU pipeline, FrameDataset; hwdecode.

torch tests call ``pytest.importorskip("torch")`` themselves, so the NumPy and hwdecode tests also
run where torch is not installed. CUDA cases skip without a GPU unless
``OSSFRAME_REQUIRE_CUDA=1`` (then they fail): the ``cuda`` marker, handled in conftest.py.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import pickle
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from media import psnr, reference_frames

import ossframe_native as ofn
from ossframe_native import hwdecode, kernels, ml, pictures
from ossframe_native.decode import VideoSource
from ossframe_native.errors import InvalidArgument, MediaError
from ossframe_native.params import SnapshotsRequest
from ossframe_native.pipeline import open_capture

ML_SPEC = dict(m="avg", num=16, w=224, h=224, scaletype="crop")


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------------------------------------
# Dataset clips: the content of every frame says which clip and which frame it is

CLIP_FRAMES = (10, 17, 24, 30, 13)  # frames per clip; clip k has CLIP_FRAMES[k] frames


def _clip_level(clip: int) -> int:
    return 30 + 40 * clip  # left half of every frame of clip k


def _frame_level(index: int) -> int:
    return 16 + 8 * index  # right half of frame i


def _read_ids(rgb: np.ndarray) -> tuple[int, int]:
    """(clip, frame index) from an (H, W, 3) frame at source size: the mean of each half's
    centre, far from the edge where the encoder blends the two halves."""
    h, w = rgb.shape[:2]
    left = float(rgb[h // 4 : 3 * h // 4, 4 : w // 2 - 8].mean())
    right = float(rgb[h // 4 : 3 * h // 4, w // 2 + 8 : w - 4].mean())
    return round((left - 30) / 40), round((right - 16) / 8)


@pytest.fixture(scope="module")
def id_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five H.264 MP4 clips, 64x48 yuv420p, 30 fps, GOP 8, 2 B-frames, 10..30 frames
    (CLIP_FRAMES). Frame i of clip k: left half grey 30 + 40k, right half grey 16 + 8i."""
    root = tmp_path_factory.mktemp("ml_clips")
    paths = []
    for clip, count in enumerate(CLIP_FRAMES):
        path = root / f"clip{clip}.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream(
                "libx264", rate=30, options={"crf": "10", "x264-params": "log-level=error"}
            )
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.codec_context.gop_size = 8
            stream.codec_context.max_b_frames = 2
            for i in range(count):
                rgb = np.empty((48, 64, 3), dtype=np.uint8)
                rgb[:, :32] = _clip_level(clip)
                rgb[:, 32:] = _frame_level(i)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        paths.append(path)
    return paths


def test_id_clips_read_back(id_clips: list[Path]) -> None:
    for clip, path in enumerate(id_clips):
        frames = list(ml.frames(path))
        assert [_read_ids(f.array) for f in frames] == [(clip, i) for i in range(len(frames))]
        assert len(frames) == CLIP_FRAMES[clip]


# ---------------------------------------------------------------------------------------------
# NumPy output


def test_numpy_frames_are_ffmpeg_frames_at_source_size(clip_h264_b) -> None:
    refs = reference_frames(clip_h264_b.path)
    frames = list(ml.frames(clip_h264_b.path, m="avg", num=6))
    assert len(frames) == 6
    for fr in frames:
        assert fr.array.shape == (108, 192, 3) and fr.array.dtype == np.uint8
        assert fr.array.flags.c_contiguous
        assert np.array_equal(fr.array, refs[fr.index].rgb)
        assert fr.keyframe == (fr.index % 30 == 0)


def test_numpy_layouts(clip_h264_b) -> None:
    hwc = ml.frames_batch(clip_h264_b.path, **ML_SPEC)
    chw = ml.frames_batch(clip_h264_b.path, **ML_SPEC, layout="CHW")
    assert hwc.data.shape == (16, 224, 224, 3)
    assert chw.data.shape == (16, 3, 224, 224)
    assert np.array_equal(chw.data, hwc.data.transpose(0, 3, 1, 2))
    assert chw.times_ms == hwc.times_ms and chw.indices == hwc.indices


@pytest.mark.parametrize("scaletype", ["stretch", "crop", "fill", "fit"])
def test_frames_equal_snapshots_pixels_and_times(clip_h264_b, scaletype: str) -> None:
    """frames() is snapshots() without the encoding: same frames, times, sizes; png is lossless."""
    spec = dict(m="default", inter=500, w=100, h=80, scaletype=scaletype)
    frames = list(ml.frames(clip_h264_b.path, **spec))
    images = list(ofn.snapshots(clip_h264_b.path, f="png", **spec))
    assert [(f.time_ms, f.index, f.keyframe) for f in frames] == [
        (i.time_ms, i.index, i.keyframe) for i in images
    ]
    import cv2

    for fr, img in zip(frames, images, strict=True):
        decoded = cv2.imdecode(np.frombuffer(img.data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert np.array_equal(fr.array, decoded)


def test_dhash_scores_and_batch_fields(clip_cuts) -> None:
    spec = dict(m="dhash", thr=30, w=64, h=36)
    frames = list(ml.frames(clip_cuts.path, **spec))
    images = list(ofn.snapshots(clip_cuts.path, f="png", **spec))
    assert [(f.index, f.score) for f in frames] == [(i.index, i.score) for i in images]
    batch = ml.frames_batch(clip_cuts.path, **spec)
    assert batch.indices == tuple(f.index for f in frames)
    assert batch.scores == tuple(f.score for f in frames)
    assert batch.keyframes == tuple(f.keyframe for f in frames)
    assert len(batch) == len(frames) == batch.data.shape[0]


def test_empty_batch_has_the_frame_shape(clip_h264_b) -> None:
    """dhash keeps score > thr; thr=100 keeps nothing: N = 0, the rest of the shape as usual."""
    batch = ml.frames_batch(clip_h264_b.path, m="dhash", thr=100, w=64, scaletype="fit")
    assert batch.data.shape == (0, 36, 64, 3) and batch.data.dtype == np.uint8
    assert batch.times_ms == () and len(batch) == 0


def test_bytes_and_file_sources(clip_h264_b) -> None:
    data = clip_h264_b.path.read_bytes()
    expected = ml.frames_batch(clip_h264_b.path, m="key")
    with open(clip_h264_b.path, "rb") as handle:
        from_file = ml.frames_batch(handle, m="key")
    from_bytes = ml.frames_batch(data, m="key")
    for batch in (from_file, from_bytes):
        assert np.array_equal(batch.data, expected.data)
        assert batch.times_ms == expected.times_ms == (0, 1000, 2000)


def test_decode_threads_do_not_change_frames(clip_h264_b) -> None:
    expected = ml.frames_batch(clip_h264_b.path, m="avg", num=5, w=64, h=64)
    for threads in (0, 1, 3):
        batch = ml.frames_batch(clip_h264_b.path, m="avg", num=5, w=64, h=64, threads=threads)
        assert np.array_equal(batch.data, expected.data) and batch.indices == expected.indices


# ---------------------------------------------------------------------------------------------
# torch output


def test_torch_equals_numpy(clip_h264_b) -> None:
    torch = _torch()
    spec = dict(m="avg", num=5, w=120, h=90, scaletype="fill")
    arrays = list(ml.frames(clip_h264_b.path, **spec))
    tensors = list(ml.frames(clip_h264_b.path, **spec, output="torch"))
    hwc = list(ml.frames(clip_h264_b.path, **spec, output="torch", layout="HWC"))
    for a, t, t_hwc in zip(arrays, tensors, hwc, strict=True):
        assert isinstance(t.array, torch.Tensor) and t.array.dtype == torch.uint8
        assert t.array.shape == (3, 90, 120) and t.array.is_contiguous()
        assert t.array.device.type == "cpu"
        assert np.array_equal(t.array.permute(1, 2, 0).numpy(), a.array)
        assert np.array_equal(t_hwc.array.numpy(), a.array)
        assert (t.time_ms, t.index, t.keyframe) == (a.time_ms, a.index, a.keyframe)


def test_frames_batch_is_stacked_frames(clip_h264_b) -> None:
    torch = _torch()
    batch = ml.frames_batch(clip_h264_b.path, **ML_SPEC, output="torch")
    frames = list(ml.frames(clip_h264_b.path, **ML_SPEC, output="torch"))
    assert batch.data.shape == (16, 3, 224, 224) and batch.data.dtype == torch.uint8
    assert torch.equal(batch.data, torch.stack([f.array for f in frames]))
    assert batch.times_ms == tuple(f.time_ms for f in frames)
    assert batch.indices == tuple(f.index for f in frames)
    # avg: 16 evenly spaced times over the 3 s clip; the frame shown at each.
    assert list(batch.indices) == [k * 3000 // 16 * 30 // 1000 for k in range(16)]
    numpy_batch = ml.frames_batch(clip_h264_b.path, **ML_SPEC, layout="CHW")
    assert np.array_equal(batch.data.numpy(), numpy_batch.data)


def test_auto_device_is_cuda_only_where_present(clip_h264_b) -> None:
    torch = _torch()
    batch = ml.frames_batch(clip_h264_b.path, m="key", output="torch", device="auto")
    assert batch.data.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    numpy_batch = ml.frames_batch(clip_h264_b.path, m="key", device="auto")
    assert isinstance(numpy_batch.data, np.ndarray)


# ---------------------------------------------------------------------------------------------
# Validation: at call time, before the source is opened (a missing file would be MediaError)


@pytest.mark.parametrize(
    "kwargs, param, allowed",
    [
        (dict(output="jax"), "output", "numpy, torch"),
        (dict(layout="NHWC"), "layout", "HWC, CHW"),
        (dict(device="gpu"), "device", "cpu, cuda, cuda:<index>, auto"),
        (dict(device="cuda:x"), "device", "cpu, cuda, cuda:<index>, auto"),
        (dict(device="cuda"), "device", "output='torch'"),
        (dict(threads=-1), "threads", "integer >= 0"),
        (dict(threads=1.5), "threads", "integer >= 0"),
        (dict(m="fast"), "m", "default, avg, dhash, key"),
        (dict(m="avg"), "num", "1.."),
        (dict(w=16), "w", "32..4096"),
        (dict(scaletype="zoom"), "scaletype", "stretch, crop, fill, fit"),
    ],
)
def test_invalid_arguments_fail_before_opening(kwargs: dict, param: str, allowed: str) -> None:
    for call in (ml.frames, ml.frames_batch):
        with pytest.raises(InvalidArgument) as info:
            call("/nonexistent/clip.mp4", **kwargs)
        assert info.value.param == param
        assert allowed in str(info.value)


def test_unknown_keyword_is_rejected() -> None:
    with pytest.raises(TypeError):
        ml.frames("/nonexistent/clip.mp4", f="jpg")  # frames have no output format


def test_cuda_without_cuda_is_an_error_not_a_cpu_run() -> None:
    torch = _torch()
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    for device in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(InvalidArgument, match="CUDA is not available") as info:
            ml.frames("/nonexistent/clip.mp4", output="torch", device=device)
        assert info.value.param == "device"


def test_bad_source_is_media_error_at_call_time(random_file) -> None:
    with pytest.raises(MediaError):
        ml.frames(random_file)


def test_torch_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch, clip_h264_b) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.delitem(ml.__dict__, "FrameDataset", raising=False)  # as before first use
    with pytest.raises(ImportError, match=r"pip install 'ossframe_native\[torch\]'"):
        ml.frames(clip_h264_b.path, output="torch")
    with pytest.raises(ImportError, match=r"^FrameDataset needs PyTorch.*ossframe_native\[torch\]"):
        ml.FrameDataset  # noqa: B018
    assert len(list(ml.frames(clip_h264_b.path, m="key"))) == 3  # NumPy is unaffected


def test_package_imports_and_runs_without_torch(clip_h264_b, child_env) -> None:
    """In a fresh interpreter, importing the package and every non-torch feature (frames,
    frames_batch, snapshots) never imports torch, so they work where it is not installed."""
    path = str(clip_h264_b.path)
    script = (
        "import sys\n"
        "import ossframe_native as ofn\n"
        "from ossframe_native.ml import frames_batch\n"
        f"b = frames_batch({path!r}, m='avg', num=3, w=64, h=64)\n"
        "assert b.data.shape == (3, 64, 64, 3), b.data.shape\n"
        f"assert len(list(ofn.frames({path!r}, m='key', layout='CHW'))) == 3\n"
        f"assert len(list(ofn.snapshots({path!r}, m='key'))) == 3\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=child_env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---------------------------------------------------------------------------------------------
# The GPU pipeline (torch_ops on the device), run on CPU torch here and on CUDA where present


def _on_device(device: object, layout: str = "CHW") -> ml._Output:
    return ml._Output("torch", str(device), layout, on_device=True)


def _device_frames(path: Path, device: str, **spec) -> list[ml.Frame]:
    request = SnapshotsRequest.from_kwargs(spec)
    with open_capture(path, request) as run:
        return list(ml._render_all(run, _on_device(device)))


@pytest.mark.parametrize("scaletype", ["stretch", "crop", "fill", "fit"])
def test_device_pipeline_matches_the_cpu_pipeline(clip_smooth, scaletype: str) -> None:
    """Resized 8-bit 4:2:0 frames: the device pipeline (torch_ops from the uploaded planes) and
    the CPU pipeline (the native fused kernel) share one definition: within one level."""
    _torch()
    spec = dict(m="avg", num=4, w=112, h=100, scaletype=scaletype)
    on_device = _device_frames(clip_smooth.path, "cpu", **spec)
    on_cpu = list(ml.frames(clip_smooth.path, **spec))
    assert [f.index for f in on_device] == [f.index for f in on_cpu]
    for d, c in zip(on_device, on_cpu, strict=True):
        got = d.array.permute(1, 2, 0).numpy()
        assert got.shape == c.array.shape
        assert np.abs(got.astype(int) - c.array).max() <= 1
    request = SnapshotsRequest.from_kwargs(spec)
    with av.open(str(clip_smooth.path)) as container:
        frame = next(container.decode(video=0))
    shape = ml.geometry.for_snapshots(request, frame.width, frame.height)
    canvas = np.zeros((shape.canvas[1], shape.canvas[0], 3), dtype=np.uint8)
    (x, y), (w, h) = shape.offset, shape.size
    kernels.yuv420_to_rgb_into(
        pictures.yuv420_planes(frame), shape.crop, canvas[y : y + h, x : x + w]
    )
    got = on_device[0].array.permute(1, 2, 0).numpy()
    assert np.abs(got.astype(int) - canvas).max() <= 1


def test_device_pipeline_at_source_size(clip_smooth) -> None:
    """At the source size the CPU gives FFmpeg's exact conversion (nearest chroma) and the
    device the fused definition (bilinear chroma): close, not equal."""
    _torch()
    on_device = _device_frames(clip_smooth.path, "cpu", m="key")
    on_cpu = list(ml.frames(clip_smooth.path, m="key"))
    for d, c in zip(on_device, on_cpu, strict=True):
        assert psnr(d.array.permute(1, 2, 0).numpy(), c.array) > 35


def test_device_pipeline_nv12_equals_yuv420p(clip_smooth) -> None:
    """NV12 frames (what NVDEC returns) give the same pixels as planar yuv420p."""
    _torch()
    with av.open(str(clip_smooth.path)) as container:
        frame = next(container.decode(video=0))
    nv12 = frame.reformat(format="nv12")
    shape = ml.geometry.scaled(frame.width, frame.height, (128, 96), "crop")
    out = _on_device("cpu")
    import torch

    assert torch.equal(ml._render(nv12, shape, out), ml._render(frame, shape, out))


class _GpuPlane:
    """Stands in for a plane of an NVDEC frame in GPU memory, as PyAV 18 exports it: it says it
    lives on CUDA device 0 and refuses a ``stream`` argument (torch.from_dlpack(plane) would
    pass one); the capsule it hands out is a real NV12 plane's, in host memory."""

    def __init__(self, plane) -> None:
        self._plane = plane

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, 0)  # kDLCUDA, device 0

    def __dlpack__(self, *, stream=None):
        if stream is not None:
            raise NotImplementedError("CUDA stream synchronization is not supported")
        return self._plane.__dlpack__()


def test_device_pipeline_takes_gpu_frames_by_dlpack(clip_smooth) -> None:
    """A frame NVDEC leaves in GPU memory (format "cuda", NV12 underneath) is read through
    DLPack. Simulated on the CPU with a stand-in frame whose planes are a real NV12 frame's."""
    torch = _torch()
    from types import SimpleNamespace

    with av.open(str(clip_smooth.path)) as container:
        frame = next(container.decode(video=0))
    nv12 = frame.reformat(format="nv12")
    gpu_like = SimpleNamespace(
        format=SimpleNamespace(name="cuda"),
        sw_format=SimpleNamespace(name="nv12"),
        planes=tuple(_GpuPlane(p) for p in nv12.planes),
        width=nv12.width,
        height=nv12.height,
        colorspace=nv12.colorspace,
        color_range=nv12.color_range,
    )
    from ossframe_native import torch_ops

    via_dlpack = torch_ops.frame_planes(gpu_like, "cpu")
    via_host = torch_ops.frame_planes(nv12, "cpu")
    for a, b in zip(via_dlpack, via_host, strict=True):
        assert torch.equal(a, b)
    shape = ml.geometry.scaled(frame.width, frame.height, (100, 100), "fill")
    out = _on_device("cpu")
    assert torch.equal(ml._render(gpu_like, shape, out), ml._render(frame, shape, out))
    gpu_like.sw_format = SimpleNamespace(name="p010le")
    with pytest.raises(MediaError, match="p010le"):
        torch_ops.frame_planes(gpu_like, "cpu")


def test_device_pipeline_other_formats_go_through_rgb(clip_odd444) -> None:
    """Not 8-bit 4:2:0 (here yuv444p): FFmpeg's RGB, resized by torch_ops."""
    torch = _torch()
    from ossframe_native import torch_ops

    frames = _device_frames(clip_odd444.path, "cpu", m="key", w=100, h=64, scaletype="crop")
    refs = reference_frames(clip_odd444.path)
    request = SnapshotsRequest.from_kwargs(dict(m="key", w=100, h=64, scaletype="crop"))
    shape = ml.geometry.for_snapshots(request, 321, 241)
    for fr in frames:
        rgb = torch.from_numpy(refs[fr.index].rgb.copy()).permute(2, 0, 1)
        assert torch.equal(fr.array, torch_ops.resize(rgb, shape.crop, shape.size, layout="CHW"))


@pytest.mark.parametrize("w, h", [(0, 0), (60, 100)])
def test_render_step_rotates_on_both_backends(clip_rot90, w: int, h: int) -> None:
    """A rotated snapshot (ar=auto) through the one render step: the torch backend converts
    the whole frame itself, turns it, resizes; NumPy takes FFmpeg's conversion. The same frame,
    turned the same way (only the chroma filter differs: > 35 dB)."""
    torch = _torch()
    from ossframe_native import torch_ops
    from ossframe_native.params import SnapshotRequest

    request = SnapshotRequest.from_kwargs(dict(t=500, ar="auto", w=w, h=h, f="png"))
    with open_capture(clip_rot90.path, request) as run:
        output = next(run.outputs())
        assert run.geometry.rotate == 90
        on_numpy = run.render(output)
        backend = torch_ops.RenderBackend("cpu", layout="CHW")
        on_torch = ml.transform.render(output.frame, run.geometry, backend=backend)
        run.backend = backend  # as for a capture whose frames a GPU decodes
        via_capture = run.render(output)
    assert isinstance(on_torch, torch.Tensor) and on_torch.shape == on_numpy.shape
    assert on_numpy.shape[:2] == ((h, w) if w else (192, 108))
    assert psnr(on_torch.numpy(), on_numpy) > 35
    assert isinstance(via_capture, np.ndarray) and via_capture.flags.c_contiguous
    assert np.array_equal(via_capture, on_torch.numpy())


def test_device_dhash_is_the_native_hash(clip_cuts) -> None:
    """The torch backend hashes NV12 frames (NVDEC's) on its device: the same hashes and so the
    same dhash outputs and scores as the native kernel on the CPU."""
    _torch()
    from ossframe_native import torch_ops

    backend = torch_ops.RenderBackend("cpu")
    with av.open(str(clip_cuts.path)) as container:
        for frame in itertools.islice(container.decode(video=0), 0, 60, 13):
            expected = kernels.dhash(pictures.luma_plane(frame))
            assert backend.dhash(frame.reformat(format="nv12")) == expected
            assert backend.dhash(frame) == expected
    request = SnapshotsRequest.from_kwargs(dict(m="dhash", thr=30, num=3))
    with open_capture(clip_cuts.path, request) as run:
        run.backend = backend
        on_device = [(o.index, o.score) for o in run.outputs()]
    with open_capture(clip_cuts.path, request) as run:
        assert [(o.index, o.score) for o in run.outputs()] == on_device
    assert len(on_device) == 3


# ---------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU; OSSFRAME_REQUIRE_CUDA=1 makes the skip a failure)


@pytest.mark.cuda
def test_cuda_frames_match_cpu(clip_h264_b) -> None:
    gpu = ml.frames_batch(clip_h264_b.path, **ML_SPEC, output="torch", device="cuda")
    cpu = ml.frames_batch(clip_h264_b.path, **ML_SPEC, output="torch")
    assert gpu.data.device.type == "cuda" and gpu.data.shape == cpu.data.shape
    assert gpu.indices == cpu.indices and gpu.times_ms == cpu.times_ms
    for g, c in zip(gpu.data.cpu().numpy(), cpu.data.numpy(), strict=True):
        assert psnr(g, c) >= 40  # one conversion definition; NVDEC vs CPU decode


@pytest.fixture(scope="module")
def clip_hevc_nvdec(tmp_path_factory: pytest.TempPathFactory):
    """HEVC (libx265) in MP4, 256x144 (NVDEC decodes HEVC from 144x144 up), 24 fps, 48 frames,
    closed GOP 24, 3 B-frames."""
    from media import make_clip

    path = tmp_path_factory.mktemp("nvdec") / "hevc_256x144.mp4"
    return make_clip(path, codec="libx265", n_frames=48, fps=24, gop=24, bframes=3, size=(256, 144))


@pytest.mark.cuda
@pytest.mark.parametrize("clip", ["clip_h264_b", "clip_hevc_nvdec", "clip_vfr"])
def test_gpu_decode_is_exact(request: pytest.FixtureRequest, clip: str) -> None:
    """GPU decode vs CPU decode of the same frames through the same device pipeline: same
    indices and times, PSNR >= 40 dB (decoding is bit-exact, so in practice identical). The
    decoder must really be NVDEC: its frames are in GPU memory ("cuda", the hwaccel) or NV12
    (a cuvid decoder), never the yuv420p of FFmpeg's CPU decoder. Against the CPU output
    (FFmpeg's own conversion at source size) the tolerance of the device pipeline holds: see
    test_device_pipeline_at_source_size."""
    truth = request.getfixturevalue(clip)
    keyframes = SnapshotsRequest.from_kwargs(dict(m="key"))
    with open_capture(truth.path, keyframes, hw="cuda") as run:
        assert run.source.hw is not None, "the GPU decoder was not used"
        kind = next(run.outputs()).frame.format.name
        assert kind in ("cuda", "nv12"), f"{run.source.hw} opened, but decoded on the CPU ({kind})"
    spec = dict(m="default", inter=0)
    gpu = ml.frames_batch(truth.path, **spec, output="torch", device="cuda", layout="HWC")
    cpu = ml.frames_batch(truth.path, **spec, output="torch", layout="HWC")
    assert gpu.indices == cpu.indices and gpu.times_ms == cpu.times_ms
    request = SnapshotsRequest.from_kwargs(spec)
    with open_capture(truth.path, request) as run:  # FFmpeg's CPU decoder, the same backend
        same_path = [f.array for f in ml._render_all(run, _on_device(gpu.data.device, "HWC"))]
    assert len(same_path) == len(gpu)
    for g, d, c in zip(gpu.data.cpu().numpy(), same_path, cpu.data.numpy(), strict=True):
        assert psnr(g, d.cpu().numpy()) >= 40
        assert psnr(g, c) > 35


def test_gpu_decode_falls_back_with_a_reason(
    clip_h264_b, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a usable GPU, VideoSource(hw="cuda") decodes on the CPU and logs why."""
    if "hw" not in inspect.signature(VideoSource).parameters:
        pytest.skip("decode.VideoSource has no hw= yet (see docs/ML.md, GPU decode)")
    torch = _torch()
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    monkeypatch.setattr(hwdecode, "_logged", set())
    request = SnapshotsRequest.from_kwargs(dict(m="key"))
    with (
        caplog.at_level(logging.DEBUG, logger="ossframe_native.hwdecode"),
        open_capture(clip_h264_b.path, request, hw="cuda") as run,
    ):
        assert run.source.hw is None
        frames = list(ml._render_all(run, ml._Output("numpy", "cpu", "HWC")))
    assert [f.index for f in frames] == [0, 30, 60]
    assert "decoding on the CPU" in caplog.text


# ---------------------------------------------------------------------------------------------
# hwdecode: the selection rules (pure; no GPU needed)

BOTH = dict(hwaccel_devices=("cuda", "drm"), decoders=("h264", "h264_cuvid", "hevc_cuvid"))
CUVID_ONLY = dict(hwaccel_devices=("drm",), decoders=("h264_cuvid", "hevc_cuvid"))


@pytest.mark.parametrize(
    "stream, offer, method, name",
    [
        (("h264", "yuv420p", 1920, 1080), BOTH, "hwaccel", "cuda"),
        (("hevc", "yuvj420p", 3840, 2160), BOTH, "hwaccel", "cuda"),
        (("h264", "nv12", 64, 48), CUVID_ONLY, "cuvid", "h264_cuvid"),
        (("hevc", "yuv420p", 1280, 720), CUVID_ONLY, "cuvid", "hevc_cuvid"),
    ],
)
def test_hwdecode_picks_a_gpu_decoder(stream: tuple, offer: dict, method: str, name: str) -> None:
    choice = hwdecode.choose(*stream, **offer, device=1)
    assert choice.decoder == hwdecode.HwDecoder(method, name, 1)


@pytest.mark.parametrize(
    "stream, offer, reason",
    [
        (("h264", "yuv420p10le", 1920, 1080), BOTH, "more than 8 bits"),
        (("hevc", "p010le", 1920, 1080), BOTH, "more than 8 bits"),
        (("h264", "yuv444p", 1920, 1080), BOTH, "not 8-bit 4:2:0"),
        (("h264", "yuv422p", 1920, 1080), BOTH, "not 8-bit 4:2:0"),
        (("h264", "yuv420p", 1921, 1080), BOTH, "odd"),
        (("h264", "yuv420p", 318, 179), BOTH, "odd"),
        (("hevc", "yuv420p", 128, 72), BOTH, "from 144x144"),
        (("h264", "yuv420p", 8192, 4320), BOTH, "to 4096x4096"),
        (("prores", "yuv422p10le", 1920, 1080), BOTH, "no decoder for codec 'prores'"),
        (("png", "rgb24", 120, 90), BOTH, "no decoder for codec 'png'"),
        (("h264", None, 1920, 1080), BOTH, "pixel format is unknown"),
        (
            ("vp9", "yuv420p", 1280, 720),
            CUVID_ONLY,
            "needs the cuda hwaccel, PyAV >= 14, or the vp9_cuvid",
        ),
        (("h264", "yuv420p", 1280, 720), dict(), "or the h264_cuvid decoder"),
    ],
)
def test_hwdecode_falls_back_with_a_reason(stream: tuple, offer: dict, reason: str) -> None:
    choice = hwdecode.choose(*stream, **offer)
    assert choice.decoder is None
    assert reason in choice.reason
    assert choice.reason.startswith(f"decoding {stream[0]} {stream[2]}x{stream[3]} on the CPU: ")


def test_hwdecode_cover_art_stays_on_the_cpu() -> None:
    choice = hwdecode.choose("mjpeg", "yuvj420p", 120, 90, **BOTH, cover_art=True)
    assert choice.decoder is None and "cover image" in choice.reason


def test_hwdecode_logs_each_reason_once_at_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hwdecode, "_logged", set())
    with caplog.at_level(logging.DEBUG, logger="ossframe_native.hwdecode"):
        for _ in range(3):
            hwdecode.choose("h264", "yuv420p10le", 1920, 1080, **BOTH)
        hwdecode.choose("h264", "yuv420p", 1921, 1080, **BOTH)
        hwdecode.choose("h264", "yuv420p", 1920, 1080, **BOTH)
    levels = [(r.levelname, "8 bits" in r.message, "odd" in r.message) for r in caplog.records]
    assert levels == [
        ("WARNING", True, False),
        ("DEBUG", True, False),
        ("DEBUG", True, False),
        ("WARNING", False, True),
        ("DEBUG", False, False),  # the GPU choice itself
    ]


def test_hwdecode_device_failure_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hwdecode, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="ossframe_native.hwdecode"):
        hwdecode.device_failed(hwdecode.HwDecoder("hwaccel", "cuda"), PermissionError(1, "EPERM"))
    assert "could not be opened (PermissionError" in caplog.text
    assert "decoding on the CPU" in caplog.text


# ---------------------------------------------------------------------------------------------
# Many sources: frames_batches, decoders in flight (loader.py)


def test_frames_batches_are_each_sources_batch_in_order(id_clips: list[Path], tmp_path) -> None:
    """Three sources decoding at once: every batch is that source's frames_batch, in order; a
    source that cannot be read raises when its turn comes, after the batches before it."""
    spec = dict(m="avg", num=4, w=48, h=32, scaletype="crop")
    expected = [ml.frames_batch(p, **spec) for p in id_clips]
    got = list(ml.frames_batches(id_clips, **spec, decoders=3))
    assert [b.indices for b in got] == [b.indices for b in expected]
    for clip, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert np.array_equal(a.data, b.data) and a.times_ms == b.times_ms
        assert [_read_ids(f) for f in a.data] == [(clip, i) for i in a.indices]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    batches = ml.frames_batches([*id_clips[:2], broken, id_clips[3]], **spec, decoders=2)
    assert np.array_equal(next(batches).data, expected[0].data)
    assert np.array_equal(next(batches).data, expected[1].data)
    with pytest.raises(MediaError):
        next(batches)
    with pytest.raises(InvalidArgument) as info:
        ml.frames_batches(id_clips, **spec, decoders=0)
    assert info.value.param == "decoders"
    one_at_a_time = ml.frames_batches(id_clips, m="key")  # the CPU default: decoders=1
    assert [b.indices for b in one_at_a_time] == [
        ml.frames_batch(p, m="key").indices for p in id_clips
    ]


def test_device_pipeline_through_the_scheduler(id_clips: list[Path]) -> None:
    """The GPU path's pieces on CPU torch: sources decoded at once by the scheduler, rendered
    by the torch backend (as on a GPU): each batch as the same source's alone."""
    torch = _torch()
    from ossframe_native import loader

    request = SnapshotsRequest.from_kwargs(dict(m="avg", num=3, w=40, h=40, scaletype="fill"))
    out = _on_device("cpu")
    alone = [ml._batch(p, request, out, 1) for p in id_clips]

    def one(path: Path):
        yield ml._batch(path, request, out, 1)

    together = [b for _, b in loader.ordered(id_clips, one, 3, ahead=1)]
    for a, b in zip(together, alone, strict=True):
        assert isinstance(a.data, torch.Tensor) and a.data.shape == (3, 3, 40, 40)
        assert torch.equal(a.data, b.data) and a.indices == b.indices


# ---------------------------------------------------------------------------------------------
# FrameDataset


def test_dataset_workers_read_every_frame_exactly_once(id_clips: list[Path]) -> None:
    torch = _torch()

    class Tagged(ml.FrameDataset):
        """Adds the worker id and the decode threads the worker chose to every sample."""

        def __iter__(self):
            worker = torch.utils.data.get_worker_info().id
            for sample in super().__iter__():
                yield worker, self._threads(), sample

    dataset = Tagged([str(p) for p in id_clips])
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    seen: list[tuple[int, int]] = []
    workers_of: dict[int, set[int]] = {}
    for worker, threads, sample in loader:
        assert threads == ml.worker_threads(2)
        assert sample.data.shape == (3, 48, 64)
        clip, index = _read_ids(sample.data.permute(1, 2, 0).numpy())
        assert (clip, index) == (sample.source, sample.index)  # content agrees with metadata
        seen.append((clip, index))
        workers_of.setdefault(sample.source, set()).add(worker)
    expected = [(c, i) for c, n in enumerate(CLIP_FRAMES) for i in range(n)]
    assert sorted(seen) == expected  # every frame, none twice
    assert all(len(w) == 1 for w in workers_of.values())  # each source read by one worker
    assert {next(iter(w)) for w in workers_of.values()} == {0, 1}  # both workers read
    assert workers_of[0] == workers_of[2] == workers_of[4] != workers_of[1]


def test_dataset_batches_and_clips(id_clips: list[Path]) -> None:
    torch = _torch()
    frames = ml.FrameDataset(id_clips, m="avg", num=4, w=32, h=32, scaletype="crop")
    batches = list(torch.utils.data.DataLoader(frames, batch_size=4, num_workers=2))
    assert sum(len(b.source) for b in batches) == 4 * len(id_clips)
    assert all(b.data.shape[1:] == (3, 32, 32) for b in batches)
    clips = ml.FrameDataset(id_clips, clips=True, m="avg", num=4, w=32, h=32, scaletype="crop")
    loader = torch.utils.data.DataLoader(clips, batch_size=2, num_workers=2)
    got = {}
    for batch in loader:
        assert batch.data.shape[1:] == (4, 3, 32, 32)
        for k, source in enumerate(batch.source.tolist()):
            got[source] = batch.indices[k].tolist()
    assert sorted(got) == list(range(len(id_clips)))
    for source, indices in got.items():
        expected = ml.frames_batch(id_clips[source], m="avg", num=4, w=32, h=32).indices
        assert tuple(indices) == expected


def test_dataset_in_the_main_process_and_threads(
    id_clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _torch()
    dataset = ml.FrameDataset(id_clips[:2], m="key")
    assert len(dataset) == 2
    assert dataset.assigned() == [0, 1] and dataset._threads() is None
    assert [s.source for s in dataset] == [0, 0, 1, 1, 1]  # keyframes every 8 frames
    assert ml.FrameDataset(id_clips, threads=3)._threads() == 3
    assert ml.worker_threads(1) >= 1 and ml.worker_threads(10_000) == 1


def test_dataset_validates_before_any_worker(id_clips: list[Path]) -> None:
    _torch()
    with pytest.raises(InvalidArgument) as info:
        ml.FrameDataset(id_clips, m="avg")
    assert info.value.param == "num"
    with pytest.raises(InvalidArgument, match="unknown parameter"):
        ml.FrameDataset(id_clips, f="jpg")
    with pytest.raises(InvalidArgument) as info:
        ml.FrameDataset(id_clips, layout="NCHW")
    assert info.value.param == "layout"
    with pytest.raises(InvalidArgument) as info:
        ml.FrameDataset(str(id_clips[0]))
    assert info.value.param == "sources"


def test_dataset_with_decoders_in_flight(id_clips: list[Path]) -> None:
    """decoders=3 (the main-process GPU loader, here with CPU decoders): the same items in the
    same order as one source at a time, per frame and per clip."""
    torch = _torch()
    spec = dict(m="avg", num=3, w=32, h=32, scaletype="crop")
    one = list(ml.FrameDataset(id_clips, **spec))
    three = ml.FrameDataset(id_clips, **spec, decoders=3)
    assert three.decoders == 3 and ml.FrameDataset(id_clips).decoders == 1
    got = list(three)
    assert [(s.source, s.index) for s in got] == [(s.source, s.index) for s in one]
    assert all(torch.equal(a.data, b.data) for a, b in zip(got, one, strict=True))
    clips = list(ml.FrameDataset(id_clips, clips=True, **spec, decoders=3))
    assert [c.source for c in clips] == list(range(len(id_clips)))
    assert torch.equal(clips[2].data, torch.stack([s.data for s in one if s.source == 2]))
    with pytest.raises(InvalidArgument) as info:
        ml.FrameDataset(id_clips, decoders=-1)
    assert info.value.param == "decoders"


def test_dataset_pickles(id_clips: list[Path]) -> None:
    """DataLoader workers started with spawn/forkserver receive the dataset pickled."""
    _torch()
    dataset = ml.FrameDataset([str(p) for p in id_clips], m="key", w=32, h=32)
    clone = pickle.loads(pickle.dumps(dataset))
    assert type(clone) is ml.FrameDataset
    assert [s.index for s in clone] == [s.index for s in dataset]
