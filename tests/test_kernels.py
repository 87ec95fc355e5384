"""The native kernels (``ossframe_native._native``) against NumPy, OpenCV and imagehash.

Every kernel has a NumPy reference written from its definition (float64, no fixed point) and,
where one exists, an outside reference (imagehash for dhash, cv2.resize / cv2.cvtColor for
resize and YUV -> RGB). The assertions are the documented tolerances:

* dhash: bit for bit; resize_tables: the reference tables to 1e-12.
* resize: max abs difference <= 1 vs cv2 INTER_LINEAR / INTER_AREA on integer crops, and <= 1
  vs the NumPy reference on any crop.
* yuv420_to_rgb: <= 1 vs the NumPy reference; vs cv2 (I420 -> RGB, then INTER_LINEAR), which
  repeats each chroma sample over its 2x2 block where we interpolate it, PSNR >= 38 dB and a
  max abs difference <= 16 on smooth content with noise (measured: ~42-47 dB, max 7-13).
"""

from __future__ import annotations

import functools
import math

import cv2
import imagehash
import numpy as np
import pytest
from PIL import Image

from ossframe_native import _native

# --------------------------------------------------------------------------------------------
# Inputs


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def padded(a: np.ndarray, pad: int = 13) -> np.ndarray:
    """The same pixels as ``a`` with PyAV-like row padding: a view of wider rows."""
    h, w = a.shape[:2]
    rest = a.shape[2:]
    c = int(np.prod(rest)) if rest else 1
    line = np.full((h, (w + pad) * c), 77, np.uint8)  # line_size > width * channels
    view = line.reshape(h, w + pad, *rest)[:, :w] if rest else line[:, :w]
    view[...] = a
    return view


@functools.lru_cache(maxsize=4)
def natural_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients and waves plus Gaussian noise (sigma 4): natural-ish content.

    Cached: callers must not modify the result.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    g = 255 * xx / w
    b = 60 + 127 * yy / h + 60 * np.sin((xx + yy) / 23.0)
    img = np.stack([r, g, b], -1) + rng(seed).normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def i420_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """cv2's I420 buffer of an even-sized RGB image and its Y, U, V plane views."""
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    flat = i420.reshape(-1)
    n, c = h * w, (h // 2) * (w // 2)
    y = flat[:n].reshape(h, w)
    u = flat[n : n + c].reshape(h // 2, w // 2)
    v = flat[n + c :].reshape(h // 2, w // 2)
    return i420, y, u, v


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


# --------------------------------------------------------------------------------------------
# NumPy references (float64, from the definitions in the stubs)


def dhash_ref(plane: np.ndarray) -> int:
    h, w = plane.shape
    xs = [i * w // 9 for i in range(10)]
    ys = [j * h // 8 for j in range(9)]
    p = plane.astype(np.int64)
    value = 0
    for j in range(8):
        sums = [int(p[ys[j] : ys[j + 1], xs[i] : xs[i + 1]].sum()) for i in range(9)]
        widths = [xs[i + 1] - xs[i] for i in range(9)]
        for i in range(8):  # exact: sum_l / width_l > sum_r / width_r
            value = (value << 1) | int(sums[i] * widths[i + 1] > sums[i + 1] * widths[i])
    return value


Table = tuple[np.ndarray, np.ndarray]  # (n, taps) source indices, (n, taps) weights


def compact(rows: list[dict[int, float]]) -> Table:
    taps = max(len(r) for r in rows)
    idx = np.zeros((len(rows), taps), np.intp)
    w = np.zeros((len(rows), taps))
    for d, r in enumerate(rows):
        for k, (i, wi) in enumerate(sorted(r.items())):
            idx[d, k], w[d, k] = i, wi
    return idx, w


def bilinear_table(start: float, length: float, size: int, n: int) -> Table:
    """cv2 INTER_LINEAR generalised to a crop: clamped to the crop's pixels."""
    lo = min(max(math.floor(start), 0), size - 1)
    hi = min(max(math.ceil(start + length) - 1, lo), size - 1)
    rows = []
    for d in range(n):
        f = min(max(start + (d + 0.5) * length / n - 0.5, lo), hi)
        s = min(math.floor(f), hi)
        a = f - s
        rows.append({s: 1 - a, s + 1: a} if a > 0 else {s: 1.0})
    return compact(rows)


def area_table(start: float, length: float, size: int, n: int) -> Table:
    """Exact area averaging of [start + d * s, start + (d + 1) * s); bilinear if upscaling."""
    if length < n:
        return bilinear_table(start, length, size, n)
    s = length / n
    rows = []
    for d in range(n):
        a, b = start + d * s, start + (d + 1) * s
        r = {k: min(b, k + 1) - max(a, k) for k in range(math.floor(a), min(math.ceil(b), size))}
        total = sum(r.values())
        rows.append({k: v / total for k, v in r.items() if v > 0})
    return compact(rows)


def uses_area(method: str, crop: tuple, dw: int, dh: int) -> bool:
    if method != "auto":
        return method == "area"
    _, _, w, h = crop
    return w >= dw and h >= dh and (w >= 2 * dw or h >= 2 * dh)


def resample_ref(src: np.ndarray, crop: tuple, dw: int, dh: int, area: bool) -> np.ndarray:
    """Float result of resampling crop of src (H, W[, C]) to (dh, dw[, C])."""
    x, y, w, h = crop
    make = area_table if area else bilinear_table
    iy, wy = make(y, h, src.shape[0], dh)
    ix, wx = make(x, w, src.shape[1], dw)
    s = src.astype(np.float64)
    extra = (1,) * (s.ndim - 2)
    t = np.zeros((dh, *s.shape[1:]))
    for k in range(iy.shape[1]):
        t += wy[:, k].reshape(-1, 1, *extra) * s[iy[:, k]]
    out = np.zeros((dh, dw, *s.shape[2:]))
    for k in range(ix.shape[1]):
        out += wx[:, k].reshape(1, -1, *extra) * t[:, ix[:, k]]
    return out


def resize_ref(src: np.ndarray, crop: tuple, dw: int, dh: int, method: str) -> np.ndarray:
    out = resample_ref(src, crop, dw, dh, uses_area(method, crop, dw, dh))
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def yuv_ref(y, u, v, crop, dw, dh, matrix="bt601", full_range=False, bgr=False, method="auto"):
    """Each plane resampled in float (chroma crop = luma crop / 2), then the matrix, rounded."""
    area = uses_area(method, crop, dw, dh)
    x0, y0, w, h = crop
    chroma = (x0 / 2, y0 / 2, w / 2, h / 2)
    yf = resample_ref(y, crop, dw, dh, area)
    uf = resample_ref(u, chroma, dw, dh, area) - 128
    vf = resample_ref(v, chroma, dw, dh, area) - 128
    kr, kb = (0.299, 0.114) if matrix == "bt601" else (0.2126, 0.0722)
    kg = 1 - kr - kb
    ys, cs, yoff = (1.0, 1.0, 0.0) if full_range else (255 / 219, 255 / 224, 16.0)
    yl = (yf - yoff) * ys
    r = yl + cs * 2 * (1 - kr) * vf
    g = yl - cs * (2 * (1 - kb) * kb / kg * uf + 2 * (1 - kr) * kr / kg * vf)
    b = yl + cs * 2 * (1 - kb) * uf
    rgb = np.stack([b, g, r] if bgr else [r, g, b], -1)
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


# --------------------------------------------------------------------------------------------
# dhash / hash_distance


def test_version() -> None:
    assert isinstance(_native.__version__, str) and _native.__version__


def test_dhash_matches_imagehash_on_9x8() -> None:
    r = rng(1)
    for _ in range(300):
        p = r.integers(0, 256, (8, 9), np.uint8)
        expected = int(str(imagehash.dhash(Image.fromarray(255 - p))), 16)
        assert _native.dhash(p) == expected


def test_dhash_matches_imagehash_on_flat_rows() -> None:
    # Ties (equal neighbours) are not "left brighter" in either implementation.
    p = np.repeat(np.arange(0, 180, 20, dtype=np.uint8)[None, :], 8, axis=0)
    p[3] = 100
    assert _native.dhash(p) == int(str(imagehash.dhash(Image.fromarray(255 - p))), 16)


@pytest.mark.parametrize(
    ("name", "hex_value"),
    [
        # 1920x1080 horizontal gradient, brighter to the left: every bit set.
        ("gradient_left", "ffffffffffffffff"),
        # 1920x1080 horizontal gradient, brighter to the right: no bit set.
        ("gradient_right", "0000000000000000"),
        # 9x8 checkerboard, 0/255 cells of one pixel: 1010... on even rows, 0101... on odd.
        ("checker_9x8", "aa55aa55aa55aa55"),
        # 640x480 checkerboard of 80-pixel squares, black top-left. The 9 x 8 blocks do not
        # align with the squares: row 0 averages 0, 223, 65, 158, 129, 93, 194, 29, 255 ->
        # 01011010 (5a); rows whose block is mostly in the next row of squares invert (a5).
        ("checker_640x480", "5aa5a55aa55a5aa5"),
    ],
)
def test_dhash_pinned(name: str, hex_value: str) -> None:
    if name.startswith("gradient"):
        ramp = np.linspace(255, 0, 1920) if name == "gradient_left" else np.linspace(0, 255, 1920)
        plane = np.tile(ramp.astype(np.uint8), (1080, 1))
    elif name == "checker_9x8":
        plane = (((np.indices((8, 9)).sum(0) + 1) % 2) * 255).astype(np.uint8)
    else:
        yy, xx = np.indices((480, 640))
        plane = (((yy // 80 + xx // 80) % 2) * 255).astype(np.uint8)
    assert f"{_native.dhash(plane):016x}" == hex_value
    assert _native.dhash(plane) == dhash_ref(plane)


@pytest.mark.parametrize("shape", [(8, 9), (9, 10), (17, 31), (64, 64), (123, 457), (1080, 1920)])
def test_dhash_numpy_reference(shape: tuple[int, int]) -> None:
    r = rng(shape[0] * 7 + shape[1])
    for _ in range(3):
        # Smooth-ish content so that neighbouring blocks differ by little: exactness matters.
        plane = np.clip(r.normal(128, 2, shape) + r.integers(0, 3, shape[1]), 0, 255).astype(
            np.uint8
        )
        assert _native.dhash(plane) == dhash_ref(plane)


def test_dhash_strided_equals_contiguous() -> None:
    plane = rng(2).integers(0, 256, (1080, 1920), np.uint8)
    expected = _native.dhash(plane)
    assert _native.dhash(padded(plane, 64)) == expected
    big = np.zeros((1200, 2100), np.uint8)
    big[50:1130, 70:1990] = plane
    assert _native.dhash(big[50:1130, 70:1990]) == expected
    assert _native.dhash(plane[::-1]) == dhash_ref(plane[::-1])  # negative row stride


def test_hash_distance() -> None:
    assert _native.hash_distance(0, 0) == 0.0
    assert _native.hash_distance(0, 2**64 - 1) == 100.0
    assert _native.hash_distance(0xFF, 0) == 12.5
    assert _native.hash_distance(np.uint64(3), 1) == pytest.approx(100 / 64)


@pytest.mark.parametrize(
    ("plane", "match"),
    [
        (np.zeros((0, 9), np.uint8), r"plane: height and width must be in 1\.\..*\(0, 9\)"),
        (np.zeros((8, 9), np.float32), r"plane: expected a uint8 array, got dtype float32"),
        (np.zeros((8, 9, 3), np.uint8), r"plane: expected shape \(H, W\), got \(8, 9, 3\)"),
        (np.zeros((8, 18), np.uint8)[:, ::2], r"plane: pixels must be packed.*strides \(18, 2\)"),
    ],
)
def test_dhash_rejects(plane: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _native.dhash(plane)


@pytest.mark.parametrize("value", [-1, 2**64])
def test_hash_distance_rejects(value: int) -> None:
    with pytest.raises(ValueError, match=r"a: expected a 64-bit hash in \[0, 2\*\*64\)"):
        _native.hash_distance(value, 0)


# --------------------------------------------------------------------------------------------
# resize_tables: the tables every backend applies


def dense(table: tuple[np.ndarray, np.ndarray], size: int) -> np.ndarray:
    """(dst, size) matrix of a table: row d holds output d's weight on each source pixel."""
    index, weights = table
    if index.ndim == 1:  # (ofs, weights) of resize_tables: consecutive taps from ofs
        index = index[:, None] + np.arange(weights.shape[1])[None, :]
    matrix = np.zeros((len(index), size))
    for d in range(len(index)):
        np.add.at(matrix[d], index[d], weights[d])
    return matrix


@pytest.mark.parametrize(
    ("src_wh", "crop", "dst_wh", "method", "used"),
    [
        ((640, 360), (140.0, 0.0, 360.0, 360.0), (112, 112), "auto", "area"),  # crop, 3.2x
        ((192, 108), (0.0, 0.0, 192.0, 108.0), (224, 224), "auto", "bilinear"),  # upscale
        ((321, 241), (32.1, 48.2, 224.7, 120.5), (100, 37), "auto", "area"),  # float crop
        ((321, 241), (32.1, 48.2, 224.7, 120.5), (100, 37), "bilinear", "bilinear"),
        ((60, 50), (18.0, 5.0, 30.0, 40.0), (120, 33), "area", "area"),  # mixed up/down
        ((3840, 2160), (0.0, 0.0, 3840.0, 2160.0), (13, 7), "auto", "area"),  # > 128 taps
        ((1, 1), (0.0, 0.0, 1.0, 1.0), (5, 3), "auto", "bilinear"),
    ],
)
def test_resize_tables_are_the_definition(
    src_wh: tuple, crop: tuple, dst_wh: tuple, method: str, used: str
) -> None:
    """The tables resize() filters with, unrounded, equal the NumPy reference tables; each
    row sums to 1; applied in float64 they give resize_ref's result."""
    got_method, tx, ty = _native.resize_tables(crop, *src_wh, *dst_wh, method)
    assert got_method == used
    make = area_table if used == "area" else bilinear_table
    (x, y, w, h), (sw, sh), (dw, dh) = crop, src_wh, dst_wh
    for table, ref, size in ((tx, make(x, w, sw, dw), sw), (ty, make(y, h, sh, dh), sh)):
        assert table[0].dtype == np.int32 and table[1].dtype == np.float64
        np.testing.assert_allclose(dense(table, size), dense(ref, size), rtol=0, atol=1e-12)
        np.testing.assert_allclose(table[1].sum(axis=1), 1.0, rtol=0, atol=1e-12)
    if sw * sh <= 1 << 20:
        src = rng(5).integers(0, 256, (sh, sw), np.uint8)
        applied = dense(ty, sh) @ src.astype(np.float64) @ dense(tx, sw).T
        dst = np.zeros((dh, dw), np.uint8)
        _native.resize(src, crop, dst, method)
        assert max_diff(dst, np.clip(np.floor(applied + 0.5), 0, 255)) <= 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (((0.0, 0.0, 65.0, 36.0), 64, 36, 8, 8), r"^crop: .* is not inside the 64x36 source"),
        (((0.0, 0.0, 0.0, 36.0), 64, 36, 8, 8), r"^crop: w and h must be > 0"),
        (((0.0, 0.0, 64.0, 36.0), 64, 36, 0, 8), r"^size: width and height"),
        (((0.0, 0.0, 64.0, 36.0), 0, 36, 8, 8), r"^src: width and height"),
    ],
)
def test_resize_tables_reject(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _native.resize_tables(*args)
    with pytest.raises(ValueError, match=r"^method: expected 'auto', 'bilinear' or 'area'"):
        _native.resize_tables((0.0, 0.0, 64.0, 36.0), 64, 36, 8, 8, "cubic")


# --------------------------------------------------------------------------------------------
# resize

CV2_CASES = [
    # (src h, w), (dst h, w): downscales, upscales, odd sizes, mixed, identity
    ((1080, 1920), (600, 800)),
    ((101, 203), (37, 53)),
    ((37, 53), (100, 71)),
    ((61, 77), (61, 77)),
    ((50, 40), (7, 9)),
    ((64, 48), (16, 12)),
    ((33, 70), (45, 20)),
    ((9, 9), (1, 1)),
]


@pytest.fixture(autouse=True, scope="module")
def single_thread_cv2():
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize(("src_hw", "dst_hw"), CV2_CASES)
def test_resize_bilinear_matches_cv2(channels: int, src_hw: tuple, dst_hw: tuple) -> None:
    shape = src_hw if channels == 1 else (*src_hw, channels)
    src = rng(channels).integers(0, 256, shape, np.uint8)
    dst = np.empty((*dst_hw, *shape[2:]), np.uint8)
    _native.resize(src, (0, 0, src_hw[1], src_hw[0]), dst, "bilinear")
    expected = cv2.resize(src, dst_hw[::-1], interpolation=cv2.INTER_LINEAR)
    assert max_diff(dst, expected.reshape(dst.shape)) <= 1


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize(
    ("src_hw", "dst_hw"), [(s, d) for s, d in CV2_CASES if d[0] <= s[0] and d[1] <= s[1]]
)
def test_resize_area_matches_cv2(channels: int, src_hw: tuple, dst_hw: tuple) -> None:
    shape = src_hw if channels == 1 else (*src_hw, channels)
    src = rng(channels + 10).integers(0, 256, shape, np.uint8)
    dst = np.empty((*dst_hw, *shape[2:]), np.uint8)
    _native.resize(src, (0, 0, src_hw[1], src_hw[0]), dst, "area")
    expected = cv2.resize(src, dst_hw[::-1], interpolation=cv2.INTER_AREA)
    assert max_diff(dst, expected.reshape(dst.shape)) <= 1


@pytest.mark.parametrize("method", ["bilinear", "area"])
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_integer_crop_matches_cv2_on_the_crop(method: str, channels: int) -> None:
    shape = (300, 400) if channels == 1 else (300, 400, channels)
    src = rng(5).integers(0, 256, shape, np.uint8)
    x, y, w, h = 37, 21, 301, 250
    dst = np.empty((83, 97, *shape[2:]), np.uint8)
    _native.resize(src, (x, y, w, h), dst, method)
    interp = cv2.INTER_LINEAR if method == "bilinear" else cv2.INTER_AREA
    expected = cv2.resize(src[y : y + h, x : x + w], (97, 83), interpolation=interp)
    assert max_diff(dst, expected.reshape(dst.shape)) <= 1


@pytest.mark.parametrize("method", ["bilinear", "area", "auto"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize(
    ("crop", "dst_hw"),
    [
        ((10.25, 3.5, 180.5, 95.75), (40, 61)),  # fractional downscale
        ((0.5, 0.5, 20.0, 11.0), (47, 83)),  # fractional upscale
        ((3.3, 7.7, 150.2, 20.1), (50, 40)),  # down in x, up in y
        ((0, 0, 200, 120), (13, 29)),  # whole image, large factors (many area taps)
        ((199.5, 0, 0.5, 120), (3, 5)),  # half a pixel wide
    ],
)
def test_resize_numpy_reference(method: str, channels: int, crop: tuple, dst_hw: tuple) -> None:
    shape = (120, 200) if channels == 1 else (120, 200, channels)
    src = rng(channels).integers(0, 256, shape, np.uint8)
    dst = np.empty((*dst_hw, *shape[2:]), np.uint8)
    _native.resize(src, crop, dst, method)
    expected = resize_ref(src, crop, dst_hw[1], dst_hw[0], method)
    assert max_diff(dst, expected.reshape(dst.shape)) <= 1


@pytest.mark.parametrize("method", ["bilinear", "area"])
@pytest.mark.parametrize(
    ("src_shape", "dst_shape"),
    [((1, 1, 3), (4, 5, 3)), ((1, 7), (3, 2)), ((9, 1, 4), (2, 6, 4)), ((2, 2), (1, 1))],
)
def test_resize_tiny_sources(method: str, src_shape: tuple, dst_shape: tuple) -> None:
    src = rng(11).integers(0, 256, src_shape, np.uint8)
    dst = np.empty(dst_shape, np.uint8)
    crop = (0, 0, src_shape[1], src_shape[0])
    _native.resize(src, crop, dst, method)
    assert max_diff(dst, resize_ref(src, crop, dst_shape[1], dst_shape[0], method)) <= 1


@pytest.mark.parametrize("method", ["bilinear", "area", "auto"])
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_same_size_integer_crop_is_a_copy(method: str, channels: int) -> None:
    shape = (90, 160) if channels == 1 else (90, 160, channels)
    src = rng(12).integers(0, 256, shape, np.uint8)
    canvas = np.zeros((80, 150, *shape[2:]), np.uint8)
    _native.resize(padded(src), (7, 5, 140, 70), canvas[3:73, 4:144], method)
    assert np.array_equal(canvas[3:73, 4:144], src[5:75, 7:147])
    assert not canvas[:3].any() and not canvas[73:].any()
    assert not canvas[:, :4].any() and not canvas[:, 144:].any()


@pytest.mark.parametrize("method", ["bilinear", "area"])
def test_resize_flat_stays_flat(method: str) -> None:
    src = np.full((77, 131, 3), 201, np.uint8)
    dst = np.empty((23, 40, 3), np.uint8)
    _native.resize(src, (1.7, 2.2, 120.3, 70.1), dst, method)
    assert (dst == 201).all()


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("method", ["bilinear", "area"])
def test_resize_strided_equals_contiguous(channels: int, method: str) -> None:
    shape = (270, 480) if channels == 1 else (270, 480, channels)
    src = rng(6).integers(0, 256, shape, np.uint8)
    crop = (5.0, 9.0, 400.0, 250.0)
    expected = np.empty((100, 150, *shape[2:]), np.uint8)
    _native.resize(src, crop, expected, method)

    # Source with padded rows; destination a view into a larger canvas.
    canvas = np.full((130, 200, *shape[2:]), 7, np.uint8)
    before = canvas.copy()
    view = canvas[11:111, 23:173]
    _native.resize(padded(src, 32), crop, view, method)
    assert np.array_equal(view, expected)
    outside = np.ones(canvas.shape[:2], bool)
    outside[11:111, 23:173] = False
    assert np.array_equal(canvas[outside], before[outside])  # nothing written around the view


def test_resize_auto_picks_area_for_2x_downscales() -> None:
    src = rng(7).integers(0, 256, (400, 600, 3), np.uint8)
    for dst_hw, expected_method in [
        ((100, 150), "area"),
        ((300, 400), "bilinear"),
        ((100, 700), "bilinear"),
    ]:
        auto, explicit = (np.empty((*dst_hw, 3), np.uint8) for _ in range(2))
        _native.resize(src, (0, 0, 600, 400), auto)
        _native.resize(src, (0, 0, 600, 400), explicit, expected_method)
        assert np.array_equal(auto, explicit), dst_hw


def _resize_args(**over):
    args = {
        "src": np.zeros((20, 30, 3), np.uint8),
        "crop": (0, 0, 30, 20),
        "dst": np.zeros((10, 10, 3), np.uint8),
        "method": "auto",
    }
    args.update(over)
    return args


@pytest.mark.parametrize(
    ("over", "match"),
    [
        (
            {"src": np.zeros((20, 30, 3), np.float64)},
            r"src: expected a uint8 array, got dtype float64",
        ),
        ({"dst": np.zeros((10, 10, 3), np.int8)}, r"dst: expected a uint8 array, got dtype int8"),
        (
            {"src": np.zeros((20,), np.uint8)},
            r"src: expected shape \(H, W\) or \(H, W, C\).*\(20,\)",
        ),
        (
            {"src": np.zeros((20, 30, 5), np.uint8)},
            r"src: expected shape .*C in 1..4.*\(20, 30, 5\)",
        ),
        ({"dst": np.zeros((10, 10, 4), np.uint8)}, r"dst: expected 3 channel\(s\) like src"),
        ({"dst": np.zeros((10, 10), np.uint8)}, r"dst: expected 3 channel\(s\)"),
        ({"dst": np.zeros((0, 10, 3), np.uint8)}, r"dst: height and width must be in 1\.\."),
        (
            {"crop": (0, 0, 31, 20)},
            r"crop: \(x, y, w, h\) = \(0, 0, 31, 20\) is not inside the 30x20",
        ),
        ({"crop": (-0.5, 0, 10, 10)}, r"crop: .* is not inside"),
        ({"crop": (25, 15, 6, 5)}, r"crop: .* is not inside"),
        ({"crop": (0, 0, 0, 10)}, r"crop: w and h must be > 0"),
        ({"crop": (0, 0, math.nan, 10)}, r"crop: \(x, y, w, h\) must be finite"),
        ({"method": "cubic"}, r"method: expected 'auto', 'bilinear' or 'area', got 'cubic'"),
        ({"src": np.zeros((20, 60, 3), np.uint8)[:, ::2]}, r"src: pixels must be packed"),
        (
            {"dst": np.zeros((10, 10, 3), np.uint8).transpose(1, 0, 2)[:, :, ::-1]},
            r"dst: pixels must be packed",
        ),
    ],
)
def test_resize_rejects(over: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _native.resize(**_resize_args(**over))


def test_resize_rejects_readonly_dst_flag() -> None:
    dst = np.zeros((10, 10, 3), np.uint8)
    dst.flags.writeable = False
    with pytest.raises(ValueError, match="dst: the array is read-only"):
        _native.resize(np.zeros((20, 30, 3), np.uint8), (0, 0, 30, 20), dst)


def test_resize_rejects_non_arrays() -> None:
    with pytest.raises(TypeError):
        _native.resize([[1, 2], [3, 4]], (0, 0, 2, 2), np.zeros((1, 1), np.uint8))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# yuv420_to_rgb


@pytest.mark.parametrize(
    ("src_hw", "dst_hw", "method"),
    [
        ((1080, 1920), (600, 800), "bilinear"),
        ((1080, 1920), (600, 800), "auto"),  # area (2.4x)
        ((480, 640), (480, 640), "bilinear"),
        ((360, 640), (720, 1280), "auto"),
        ((240, 320), (100, 150), "auto"),
    ],
)
def test_yuv_vs_cv2(src_hw: tuple, dst_hw: tuple, method: str) -> None:
    h, w = src_hw
    i420, y, u, v = i420_planes(natural_rgb(h, w))
    dst = np.empty((*dst_hw, 3), np.uint8)
    _native.yuv420_to_rgb(y, u, v, (0, 0, w, h), dst, method=method)
    expected = cv2.resize(cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420), dst_hw[::-1])
    assert psnr(dst, expected) >= 38.0
    assert max_diff(dst, expected) <= 16
    # And against our own float definition, exactly up to rounding.
    assert max_diff(dst, yuv_ref(y, u, v, (0, 0, w, h), dst_hw[1], dst_hw[0], method=method)) <= 1


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("full_range", [False, True])
@pytest.mark.parametrize("bgr", [False, True])
@pytest.mark.parametrize("method", ["bilinear", "area"])
def test_yuv_numpy_reference(matrix: str, full_range: bool, bgr: bool, method: str) -> None:
    r = rng(8)
    h, w = 67, 93  # odd: chroma planes are 34 x 47
    y = r.integers(0, 256, (h, w), np.uint8)
    u = r.integers(0, 256, ((h + 1) // 2, (w + 1) // 2), np.uint8)
    v = r.integers(0, 256, ((h + 1) // 2, (w + 1) // 2), np.uint8)
    for crop, dst_hw in [
        ((0, 0, w, h), (31, 45)),
        ((3.5, 2.25, 80.5, 60.0), (70, 101)),
        ((10, 9, 64, 40), (17, 29)),
    ]:
        dst = np.empty((*dst_hw, 3), np.uint8)
        _native.yuv420_to_rgb(y, u, v, crop, dst, matrix, full_range, bgr, method)
        expected = yuv_ref(y, u, v, crop, dst_hw[1], dst_hw[0], matrix, full_range, bgr, method)
        assert max_diff(dst, expected) <= 1, crop


def test_yuv_bt601_limited_matches_cv2_at_chroma_resolution() -> None:
    # With chroma constant over each 2x2 block, nearest and bilinear chroma agree: only the
    # arithmetic differs (cv2: 1.164 / 1.596 / ... in Q20; ours: 255/219 ... in Q13).
    r = rng(9)
    h, w = 64, 96
    y = r.integers(16, 236, (h, w), np.uint8)
    u = np.full((h // 2, w // 2), 90, np.uint8)
    v = np.full((h // 2, w // 2), 170, np.uint8)
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
    dst = np.empty((h, w, 3), np.uint8)
    _native.yuv420_to_rgb(y, u, v, (0, 0, w, h), dst, method="bilinear")
    assert max_diff(dst, cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)) <= 1
    dst_bgr = np.empty_like(dst)
    _native.yuv420_to_rgb(y, u, v, (0, 0, w, h), dst_bgr, bgr=True, method="bilinear")
    assert np.array_equal(dst_bgr, dst[:, :, ::-1])


def test_yuv_pyav_like_planes_equal_contiguous() -> None:
    h, w = 270, 480
    _, y, u, v = i420_planes(natural_rgb(h, w, seed=3))
    y, u, v = (np.ascontiguousarray(p) for p in (y, u, v))
    crop = (12.0, 8.0, 440.0, 250.0)
    expected = np.empty((120, 200, 3), np.uint8)
    _native.yuv420_to_rgb(y, u, v, crop, expected)

    # PyAV: np.frombuffer(plane, np.uint8).reshape(h, line_size)[:, :w], line_size padded to 64.
    def pyav(p: np.ndarray) -> np.ndarray:
        line = (p.shape[1] + 63) // 64 * 64 + 64
        buf = np.zeros(p.shape[0] * line, np.uint8)
        view = buf.reshape(p.shape[0], line)[:, : p.shape[1]]
        view[...] = p
        return view

    canvas = np.zeros((150, 260, 3), np.uint8)
    _native.yuv420_to_rgb(pyav(y), pyav(u), pyav(v), crop, canvas[20:140, 30:230])
    assert np.array_equal(canvas[20:140, 30:230], expected)
    assert not canvas[:20].any() and not canvas[140:].any()
    assert not canvas[:, :30].any() and not canvas[:, 230:].any()


def _yuv_args(**over):
    args = {
        "y": np.zeros((20, 30), np.uint8),
        "u": np.zeros((10, 15), np.uint8),
        "v": np.zeros((10, 15), np.uint8),
        "crop": (0, 0, 30, 20),
        "dst": np.zeros((10, 10, 3), np.uint8),
    }
    args.update(over)
    return args


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"y": np.zeros((20, 30), np.uint16)}, r"y: expected a uint8 array, got dtype uint16"),
        (
            {"u": np.zeros((10, 14), np.uint8)},
            r"u: expected shape \(10, 15\) for y \(20, 30\), got \(10, 14\)",
        ),
        (
            {"v": np.zeros((11, 15), np.uint8)},
            r"v: expected shape \(10, 15\) for y \(20, 30\), got \(11, 15\)",
        ),
        ({"u": np.zeros((10, 15, 1), np.uint8)}, r"u: expected shape \(H, W\), got \(10, 15, 1\)"),
        (
            {"dst": np.zeros((10, 10, 4), np.uint8)},
            r"dst: expected shape \(H, W, 3\), got \(10, 10, 4\)",
        ),
        ({"dst": np.zeros((10, 10), np.uint8)}, r"dst: expected shape \(H, W, 3\), got \(10, 10\)"),
        ({"dst": np.zeros((10, 10, 3), np.float32)}, r"dst: expected a uint8 array"),
        (
            {"crop": (1, 0, 30, 20)},
            r"crop: \(x, y, w, h\) = \(1, 0, 30, 20\) is not inside the 30x20",
        ),
        ({"matrix": "bt2020"}, r"matrix: expected 'bt601' or 'bt709', got 'bt2020'"),
        ({"method": "nearest"}, r"method: expected 'auto', 'bilinear' or 'area', got 'nearest'"),
    ],
)
def test_yuv_rejects(over: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _native.yuv420_to_rgb(**_yuv_args(**over))


def test_yuv_rejects_readonly_dst() -> None:
    dst = np.zeros((10, 10, 3), np.uint8)
    dst.flags.writeable = False
    with pytest.raises(ValueError, match="dst: the array is read-only"):
        _native.yuv420_to_rgb(**_yuv_args(dst=dst))
