"""torch_ops (the torch backend of the kernels) against the native kernels and NumPy references.

Tolerances (the contract of torch_ops, see docs/ML.md):

* dhash: identical hashes on identical input.
* resize / yuv420_to_rgb: within +-1 level of the native kernels (float32 vs Q14 fixed point).

Every comparison runs on CPU torch, and again on CUDA where a GPU exists. Without one the CUDA
cases skip; with ``OSSFRAME_REQUIRE_CUDA=1`` they fail instead, so a GPU run cannot pass by
skipping them (the ``cuda`` marker, handled once in conftest.py).
"""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from ossframe_native import kernels

if importlib.util.find_spec("torch") is not None:  # without torch each test skips (needs)
    import torch

    from ossframe_native import torch_ops

pytestmark = pytest.mark.needs("torch")

DEVICES = ("cpu", pytest.param("cuda", marks=pytest.mark.cuda))


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Each device in turn; the ``cuda`` mark skips (or fails, see conftest.py) without a GPU."""
    return request.param


def _image(height: int, width: int, channels: int | None = None, seed: int = 0) -> np.ndarray:
    """Smooth waves plus noise: real structure for resizing, noise for rounding edge cases."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = 128 + 100 * np.sin(xx / 7.3 + yy / 11.1 + seed)
    if channels:
        base = np.stack([base + 15 * k * np.cos(yy / 5.0 + k) for k in range(channels)], -1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _t(array: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


# ---------------------------------------------------------------------------------------------
# NumPy references (the definitions in csrc/blocks.h, dhash.h)


def _ref_block_sums(plane: np.ndarray, cols: int, rows: int) -> np.ndarray:
    h, w = plane.shape
    xs = [i * w // cols for i in range(cols + 1)]
    ys = [j * h // rows for j in range(rows + 1)]
    sums = np.zeros((rows, cols), dtype=np.int64)
    for j in range(rows):
        for i in range(cols):
            sums[j, i] = int(plane[ys[j] : ys[j + 1], xs[i] : xs[i + 1]].astype(np.int64).sum())
    return sums


def _ref_dhash(plane: np.ndarray) -> int:
    sums = _ref_block_sums(plane, 9, 8)
    xs = [i * plane.shape[1] // 9 for i in range(10)]
    widths = np.diff(xs)
    value = 0
    for j in range(8):
        for i in range(8):
            bit = sums[j, i] * widths[i + 1] > sums[j, i + 1] * widths[i]
            value = (value << 1) | int(bit)
    return value


# ---------------------------------------------------------------------------------------------
# dhash

PLANE_SIZES = [(8, 9), (9, 10), (48, 64), (108, 192), (241, 321), (17, 1000), (1000, 17)]


@pytest.mark.parametrize("size", PLANE_SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
def test_dhash_identical_to_native_and_reference(device: str, size: tuple[int, int]) -> None:
    for seed in range(3):
        plane = _image(*size, seed=seed)
        expected = kernels.dhash(plane)
        assert _ref_dhash(plane) == expected
        assert torch_ops.dhash(_t(plane, device)) == expected


@pytest.mark.parametrize("size", [(8, 8), (3, 5), (5, 3), (1, 1)], ids=lambda s: f"{s[1]}x{s[0]}")
def test_dhash_of_a_plane_under_9x8_matches_native(device: str, size: tuple[int, int]) -> None:
    """Under 9x8 both hash the upscale by pixel repetition (9x across, 8x down)."""
    for seed in range(3):
        plane = _image(*size, seed=seed)
        height, width = size
        upscaled = np.repeat(np.repeat(plane, 8 if height < 8 else 1, 0), 9 if width < 9 else 1, 1)
        expected = kernels.dhash(plane)
        assert _ref_dhash(upscaled) == expected
        assert torch_ops.dhash(_t(plane, device)) == expected
        assert torch_ops.dhash_many(_t(np.stack([plane, plane[::-1]]), device)) == [
            expected,
            kernels.dhash(np.ascontiguousarray(plane[::-1])),
        ]


def test_dhash_of_a_strided_view(device: str) -> None:
    """Decoder planes are row-padded views; the hash must not depend on the padding."""
    padded = _image(64, 96, seed=4)
    view = padded[:, :81]
    assert torch_ops.dhash(_t(padded, device)[:, :81]) == kernels.dhash(view)


def test_dhash_pinned_value(device: str) -> None:
    """A 36x32 image of 4x4 blocks: even block rows darken left to right (bits 1), odd ones
    brighten (bits 0), so the hash is ff00ff00ff00ff00."""
    column = np.arange(36) // 4  # block column 0..8
    row = np.arange(32) // 4  # block row 0..7
    falling = 250 - 25 * column[None, :]
    rising = 25 * column[None, :]
    plane = np.where((row % 2 == 0)[:, None], falling, rising).astype(np.uint8)
    value = torch_ops.dhash(_t(plane, device))
    assert value == kernels.dhash(plane)
    assert f"{value:016x}" == "ff00ff00ff00ff00"


def test_dhash_matches_imagehash_of_the_inverse_on_9x8() -> None:
    """imagehash sets bit = right > left; on a 9x8 input its dhash of the inverted image is ours."""
    imagehash = pytest.importorskip("imagehash")
    from PIL import Image

    for seed in range(5):
        plane = np.random.default_rng(seed).integers(0, 256, (8, 9), dtype=np.uint8)
        ours = torch_ops.dhash(torch.from_numpy(plane))
        theirs = imagehash.dhash(Image.fromarray(255 - plane), hash_size=8)
        assert f"{ours:016x}" == str(theirs)


def test_dhash_many_equals_one_by_one(device: str) -> None:
    planes = np.stack([_image(50, 70, seed=s) for s in range(5)])
    assert torch_ops.dhash_many(_t(planes, device)) == [kernels.dhash(p) for p in planes]


# ---------------------------------------------------------------------------------------------
# resize

# (height, width, channels), crop as fractions of the source, destination (w, h)
RESIZE_CASES = [
    ((108, 192, 3), (0, 0, 1, 1), (224, 224)),  # upscale, stretch
    ((241, 321, 3), (0.1, 0.2, 0.7, 0.5), (100, 37)),  # float crop, downscale < 2x
    ((360, 640, 3), (0.21875, 0, 0.5625, 1), (112, 112)),  # crop scaletype: area 3.2x
    ((360, 640, 3), (0, 0, 1, 1), (80, 45)),  # area 8x
    ((50, 60, 1), (0.3, 0.1, 0.5, 0.8), (120, 33)),  # mixed up/down, one channel
    ((270, 480, 1), (0, 0, 1, 1), (479, 269)),  # nearly identity
    ((64, 48, 3), (0, 0, 1, 1), (48, 64)),  # identity size
    ((33, 47, 4), (0.01, 0.02, 0.9, 0.95), (13, 91)),  # four channels
]


@pytest.mark.parametrize("method", ["auto", "bilinear", "area"])
@pytest.mark.parametrize("case", RESIZE_CASES, ids=lambda c: f"{c[0]}->{c[2]}")
def test_resize_within_one_level_of_native(device: str, case: tuple, method: str) -> None:
    (height, width, channels), (fx, fy, fw, fh), (dst_w, dst_h) = case
    src = _image(height, width, channels if channels > 1 else None, seed=7)
    crop = (fx * width, fy * height, fw * width, fh * height)
    expected = np.zeros((dst_h, dst_w) + src.shape[2:], dtype=np.uint8)
    kernels.resize_into(src, crop, expected, method)
    got = torch_ops.resize(_t(src, device), crop, (dst_w, dst_h), method)
    assert got.device.type == device
    assert _max_diff(got.cpu().numpy(), expected) <= 1


@pytest.mark.parametrize(
    "dst, method, interpolation",
    [
        ((100, 60), "bilinear", cv2.INTER_LINEAR),
        ((333, 211), "auto", cv2.INTER_LINEAR),
        ((64, 36), "auto", cv2.INTER_AREA),
        ((150, 100), "area", cv2.INTER_AREA),
    ],
)
def test_resize_matches_opencv_on_whole_frames(
    device: str, dst: tuple, method: str, interpolation: int
) -> None:
    """The definitions are cv2's: INTER_LINEAR (half-pixel), INTER_AREA for downscales."""
    src = _image(180, 320, 3, seed=2)
    expected = cv2.resize(src, dst, interpolation=interpolation)
    got = torch_ops.resize(_t(src, device), (0, 0, 320, 180), dst, method)
    assert _max_diff(got.cpu().numpy(), expected) <= 1


def test_resize_layouts_and_batches_agree(device: str) -> None:
    frames = np.stack([_image(90, 160, 3, seed=s) for s in range(3)])  # N, H, W, C
    crop, size = (10.5, 3.25, 120.0, 80.0), (64, 48)
    hwc = [torch_ops.resize(_t(f, device), crop, size) for f in frames]
    nchw = torch_ops.resize(_t(frames.transpose(0, 3, 1, 2), device), crop, size, layout="NCHW")
    for k in range(3):
        assert torch.equal(nchw[k].permute(1, 2, 0), hwc[k])
        chw = torch_ops.resize(_t(frames[k].transpose(2, 0, 1), device), crop, size, layout="CHW")
        assert torch.equal(chw, nchw[k])


def test_resize_into_a_canvas_region(device: str) -> None:
    """resize_into writes only the destination view (the padded canvas of scaletype fill)."""
    src = _image(90, 160, 3, seed=1)
    canvas = torch.zeros((100, 100, 3), dtype=torch.uint8, device=device)
    torch_ops.resize_into(_t(src, device), (0, 0, 160, 90), canvas[22:78])
    expected = np.zeros((100, 100, 3), dtype=np.uint8)
    kernels.resize_into(src, (0, 0, 160, 90), expected[22:78])
    got = canvas.cpu().numpy()
    assert not got[:22].any() and not got[78:].any()
    assert _max_diff(got, expected) <= 1


def test_flat_areas_stay_exact(device: str) -> None:
    src = np.full((77, 131, 3), 200, dtype=np.uint8)
    for size in ((20, 11), (300, 170), (131, 77)):
        for method in ("bilinear", "area"):
            out = torch_ops.resize(_t(src, device), (0.5, 0.25, 130.0, 76.5), size, method)
            assert bool((out == 200).all())


# ---------------------------------------------------------------------------------------------
# yuv420 -> rgb


def _yuv(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ch, cw = (height + 1) // 2, (width + 1) // 2
    return _image(height, width, seed=seed), _image(ch, cw, seed=seed + 1), _image(ch, cw, seed=2)


YUV_CASES = [
    ((108, 192), (0, 0, 1, 1), (192, 108)),  # source size
    ((108, 192), (0, 0, 1, 1), (224, 224)),
    ((360, 640), (0.21875, 0, 0.5625, 1), (112, 112)),  # crop scaletype, area 3.2x
    ((241, 321), (0.1, 0.2, 0.7, 0.5), (100, 37)),  # odd size, float crop
    ((49, 61), (0, 0, 1, 1), (122, 98)),  # odd size upscale
]


@pytest.mark.parametrize("case", YUV_CASES, ids=lambda c: f"{c[0]}->{c[2]}")
@pytest.mark.parametrize(
    "matrix, full_range", [("bt601", False), ("bt709", False), ("bt601", True)]
)
def test_yuv420_to_rgb_within_one_level_of_native(
    device: str, case: tuple, matrix: str, full_range: bool
) -> None:
    (height, width), (fx, fy, fw, fh), (dst_w, dst_h) = case
    planes = _yuv(height, width, seed=3)
    crop = (fx * width, fy * height, fw * width, fh * height)
    expected = np.zeros((dst_h, dst_w, 3), dtype=np.uint8)
    kernels.yuv420_to_rgb_into(planes, crop, expected, matrix, full_range)
    tensors = tuple(_t(p, device) for p in planes)
    got = torch_ops.yuv420_to_rgb(tensors, crop, (dst_w, dst_h), matrix, full_range, layout="HWC")
    assert _max_diff(got.cpu().numpy(), expected) <= 1
    into = torch.zeros((dst_h, dst_w, 3), dtype=torch.uint8, device=device)
    torch_ops.yuv420_to_rgb_into(tensors, crop, into, matrix, full_range)
    assert torch.equal(into, got)
    chw = torch_ops.yuv420_to_rgb(tensors, crop, (dst_w, dst_h), matrix, full_range)
    assert torch.equal(chw.permute(1, 2, 0), got)


def test_yuv420_to_rgb_bgr_swaps_channels(device: str) -> None:
    planes = tuple(_t(p, device) for p in _yuv(36, 64, seed=1))
    rgb = torch_ops.yuv420_to_rgb(planes, (0, 0, 64, 36), (32, 18))
    bgr = torch_ops.yuv420_to_rgb(planes, (0, 0, 64, 36), (32, 18), bgr=True)
    assert torch.equal(rgb.flip(0), bgr)


def test_yuv420_to_rgb_batched(device: str) -> None:
    frames = [_yuv(90, 160, seed=s) for s in range(3)]
    stacked = tuple(_t(np.stack([f[k] for f in frames]), device) for k in range(3))
    batch = torch_ops.yuv420_to_rgb(stacked, (8.0, 0.0, 144.0, 90.0), (64, 40))
    for k, planes in enumerate(frames):
        one = torch_ops.yuv420_to_rgb(
            tuple(_t(p, device) for p in planes), (8, 0, 144, 90), (64, 40)
        )
        assert torch.equal(batch[k], one)


def test_yuv420_to_rgb_on_decoded_frames(device: str, clip_smooth) -> None:
    """The same decoded frames through both backends: within one level."""
    import av

    with av.open(str(clip_smooth.path)) as container:
        decoded = [f for _, f in zip(range(5), container.decode(video=0), strict=False)]
    for frame in decoded:
        planes = tuple(
            np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]
            for p in frame.planes
        )
        crop = (40.0, 0.0, 240.0, 180.0)
        expected = np.zeros((224, 224, 3), dtype=np.uint8)
        kernels.yuv420_to_rgb_into(planes, crop, expected)
        got = torch_ops.yuv420_to_rgb(
            tuple(_t(p, device) for p in planes), crop, (224, 224), layout="HWC"
        )
        assert _max_diff(got.cpu().numpy(), expected) <= 1


# ---------------------------------------------------------------------------------------------
# Errors: ValueError naming the parameter, as the native kernels raise


def test_errors_name_the_parameter() -> None:
    plane = torch.zeros((36, 64), dtype=torch.uint8)
    rgb = torch.zeros((36, 64, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match="^plane: expected a"):
        torch_ops.dhash(plane.float())
    with pytest.raises(ValueError, match="^crop: .* is not inside the 64x36 source"):
        torch_ops.resize(rgb, (0, 0, 65, 36), (10, 10))
    with pytest.raises(ValueError, match="^crop: w and h must be > 0"):
        torch_ops.resize(rgb, (0, 0, 0, 36), (10, 10))
    with pytest.raises(ValueError, match="^method: expected 'auto', 'bilinear' or 'area'"):
        torch_ops.resize(rgb, (0, 0, 64, 36), (10, 10), method="cubic")
    with pytest.raises(ValueError, match="^matrix: expected 'bt601' or 'bt709'"):
        torch_ops.yuv420_to_rgb(
            (plane, plane[:18, :32], plane[:18, :32]), (0, 0, 64, 36), (8, 8), matrix="bt2020"
        )
    with pytest.raises(ValueError, match="^u, v: expected 18x32"):
        torch_ops.yuv420_to_rgb((plane, plane, plane), (0, 0, 64, 36), (8, 8))
    with pytest.raises(ValueError, match="^dst: expected"):
        torch_ops.resize_into(rgb, (0, 0, 64, 36), torch.zeros((5, 5), dtype=torch.uint8))
    # The native kernels reject the same crop with the same parameter name.
    with pytest.raises(ValueError, match="crop"):
        kernels.resize_into(rgb.numpy(), (0, 0, 65, 36), np.zeros((10, 10, 3), np.uint8))
