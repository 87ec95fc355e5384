"""The torch backend of the kernels: the same operations as :mod:`kernels`, on tensors.

Every function takes and returns what its ``kernels`` twin does, with ``torch.Tensor`` in place of
``np.ndarray``, and runs wherever the tensors live (CPU torch or CUDA). Definitions are the
native ones (``csrc/*.h``), so results agree with the native kernels:

* ``dhash`` / ``hash_distance`` / ``scene_score``: exact integer block sums, so hashes are
  identical and scene scores agree to rounding (float64, < 1e-12 relative).
* ``resize_into`` / ``yuv420_to_rgb_into``: the native filter tables (cv2 ``INTER_LINEAR``
  half-pixel bilinear on a float crop; exact area averaging for >= 2x downscales), applied in
  float32 and rounded once, where the native code uses Q14 weights and 16-bit intermediates.
  Outputs differ from the native ones by at most one level.

This module imports torch at import time; only ``ml.py`` imports it, and only when asked for
torch output.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "dhash",
    "dhash_many",
    "hash_distance",
    "resize",
    "resize_into",
    "scene_score",
    "yuv420_to_rgb",
    "yuv420_to_rgb_into",
]

Crop = tuple[float, float, float, float]

_METHODS = ("auto", "bilinear", "area")
_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


# ---------------------------------------------------------------------------------------------
# Block sums: dhash and scene score


def _cell_starts(n: int, length: int) -> list[int]:
    """Cell i of n over ``length`` covers [floor(i * length / n), floor((i + 1) * length / n))."""
    return [i * length // n for i in range(n + 1)]


@functools.lru_cache(maxsize=64)
def _cell_matrix(n: int, length: int, device: torch.device) -> torch.Tensor:
    """(n, length) float64 on ``device``, made once: row i is 1 over cell i, 0 elsewhere."""
    starts = _cell_starts(n, length)
    matrix = np.zeros((n, length))
    for i in range(n):
        matrix[i, starts[i] : starts[i + 1]] = 1.0
    return torch.from_numpy(matrix).to(device)


def _block_sums(planes: torch.Tensor, cols: int, rows: int) -> torch.Tensor:
    """(..., H, W) uint8 -> (..., rows, cols) int64 sums of integer pixel blocks (exact).

    Two matrix products with 0/1 cell matrices, in float64: every partial sum is an integer
    below 2**53, so exact in any order; on a GPU this is one pass over the plane, where prefix
    sums down its columns would be a long sequential scan.
    """
    height, width = planes.shape[-2:]
    down = _cell_matrix(rows, height, planes.device)
    across = _cell_matrix(cols, width, planes.device)
    sums = down @ planes.to(torch.float64) @ across.T
    return sums.round_().to(torch.int64)


def _check_plane(name: str, plane: torch.Tensor, ndim: int = 2) -> None:
    if not isinstance(plane, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(plane).__name__}")
    if plane.dtype != torch.uint8 or plane.dim() != ndim:
        shape = "(H, W)" if ndim == 2 else "(N, H, W)"
        raise ValueError(
            f"{name}: expected a {shape} uint8 tensor, got {tuple(plane.shape)} {plane.dtype}"
        )


def dhash(plane: torch.Tensor) -> int:
    """64-bit difference hash of an (H, W) uint8 luma plane; identical to ``kernels.dhash``."""
    _check_plane("plane", plane)
    return dhash_many(plane.unsqueeze(0))[0]


def dhash_many(planes: torch.Tensor) -> list[int]:
    """The dhash of each plane of an (N, H, W) uint8 tensor, in one pass on its device.

    As in ``kernels.dhash``, a plane under 9x8 is hashed as its upscale by pixel repetition (9x
    across, 8x down on the short axis)."""
    _check_plane("planes", planes, ndim=3)
    if planes.shape[-1] < 9:
        planes = planes.repeat_interleave(9, -1)
    if planes.shape[-2] < 8:
        planes = planes.repeat_interleave(8, -2)
    width = planes.shape[-1]
    sums = _block_sums(planes, 9, 8)  # (N, 8, 9)
    widths = _cell_widths(width, planes.device)
    # avg_l > avg_r without division; the two blocks share their rows, so only widths matter.
    bits = sums[..., :-1] * widths[1:] > sums[..., 1:] * widths[:-1]  # (N, 8, 8)
    packed = np.packbits(bits.reshape(len(planes), 64).cpu().numpy(), axis=1)  # MSB first
    return [int.from_bytes(row.tobytes(), "big") for row in packed]


@functools.lru_cache(maxsize=64)
def _cell_widths(width: int, device: torch.device) -> torch.Tensor:
    return torch.tensor(np.diff(_cell_starts(9, width)), device=device)


def hash_distance(a: int, b: int) -> float:
    """Percentage (0..100) of the 64 hash bits that differ between ``a`` and ``b``."""
    return bin((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).count("1") * 100.0 / 64.0


def scene_score(a: torch.Tensor, b: torch.Tensor, grid_w: int = 64, grid_h: int = 36) -> float:
    """Scene-change score 0..100 between two (H, W) uint8 luma planes; as ``kernels.scene_score``.

    Mean absolute difference of the averages of ``grid_w`` x ``grid_h`` integer blocks (the grid
    clipped to the plane size), scaled so that black vs white is 100.
    """
    _check_plane("a", a)
    _check_plane("b", b)
    if a.shape != b.shape:
        raise ValueError(f"b: planes must have the same size, got {tuple(a.shape)} and {b.shape}")
    if grid_w < 1 or grid_h < 1:
        raise ValueError(f"grid_w, grid_h: must be >= 1, got {grid_w}, {grid_h}")
    height, width = a.shape
    cols, rows = min(grid_w, width), min(grid_h, height)
    diff = (_block_sums(a, cols, rows) - _block_sums(b, cols, rows)).abs().to(torch.float64)
    xs, ys = _cell_starts(cols, width), _cell_starts(rows, height)
    w = torch.tensor(np.diff(xs), dtype=torch.float64, device=a.device)
    h = torch.tensor(np.diff(ys), dtype=torch.float64, device=a.device)
    return float((diff / (h[:, None] * w[None, :])).mean()) / 255.0 * 100.0


# ---------------------------------------------------------------------------------------------
# Resampling: the native filter tables (csrc/resize.cpp), applied in float32


@functools.lru_cache(maxsize=256)
def _bilinear_axis(start: float, length: float, size: int, dst: int) -> tuple[np.ndarray, ...]:
    """cv2 INTER_LINEAR on [start, start + length): returns (ofs, weights (dst, taps))."""
    lo = min(max(math.floor(start), 0), size - 1)
    hi = min(max(math.ceil(start + length) - 1, lo), size - 1)
    taps = 2 if hi > lo else 1
    ofs = np.empty(dst, dtype=np.int64)
    weights = np.zeros((dst, taps), dtype=np.float64)
    scale = length / dst
    for d in range(dst):
        f = start + (d + 0.5) * scale - 0.5
        s = math.floor(f)
        a = f - s
        if s < lo:
            s, a = lo, 0.0
        if s >= hi:
            s, a = hi, 0.0
        if taps == 1:
            ofs[d], weights[d, 0] = s, 1.0
            continue
        if s == hi:  # the last pixel: its left neighbour with weight 0
            s, a = hi - 1, 1.0
        ofs[d] = s
        weights[d] = (1.0 - a, a)
    return ofs, weights


@functools.lru_cache(maxsize=256)
def _area_axis(start: float, length: float, size: int, dst: int) -> tuple[np.ndarray, ...]:
    """Exact area averaging of [start + d*s, start + (d+1)*s), s = length / dst (bilinear when
    the axis is upscaled)."""
    if length < dst:
        return _bilinear_axis(start, length, size, dst)
    scale = length / dst
    cells = []
    for d in range(dst):
        a = start + d * scale
        b = start + length if d + 1 == dst else start + (d + 1) * scale
        k0 = min(max(math.floor(a), 0), size - 1)
        k1 = min(max(math.ceil(b) - 1, k0), size - 1)
        cells.append((a, b, k0, k1))
    taps = max(k1 - k0 + 1 for _, _, k0, k1 in cells)
    ofs = np.empty(dst, dtype=np.int64)
    weights = np.zeros((dst, taps), dtype=np.float64)
    for d, (a, b, k0, k1) in enumerate(cells):
        first = min(k0, size - taps)  # every output has `taps` taps; late ones start earlier
        for k in range(k0, k1 + 1):
            weights[d, k - first] = max(0.0, min(b, k + 1.0) - max(a, float(k)))
        if k1 == k0:
            weights[d, k0 - first] = 1.0
        weights[d] /= weights[d].sum()
        ofs[d] = first
    return ofs, weights


def _use_area(method: str, crop: Crop, dst_w: int, dst_h: int) -> bool:
    if method not in _METHODS:
        raise ValueError(f"method: expected 'auto', 'bilinear' or 'area', got {method!r}")
    if method != "auto":
        return method == "area"
    _, _, w, h = crop
    return w >= dst_w and h >= dst_h and (w >= 2.0 * dst_w or h >= 2.0 * dst_h)


def _check_crop(crop: Sequence[float], width: int, height: int) -> Crop:
    if len(crop) != 4:
        raise ValueError(f"crop: expected (x, y, w, h), got {crop!r}")
    x, y, w, h = (float(v) for v in crop)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"crop: (x, y, w, h) must be finite, got {(x, y, w, h)}")
    if w <= 0 or h <= 0:
        raise ValueError(f"crop: w and h must be > 0, got {(x, y, w, h)}")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(
            f"crop: (x, y, w, h) = {(x, y, w, h)} is not inside the {width}x{height} source"
        )
    return x, y, w, h


def _span(table: tuple[np.ndarray, ...]) -> tuple[int, int]:
    """(first, count) of the source lines a table reads."""
    ofs, weights = table
    lo = int(ofs.min())
    return lo, int(ofs.max()) + weights.shape[1] - lo


# (area, start, length, size, dst): the arguments of _area_axis / _bilinear_axis.
Axis = tuple[bool, float, float, int, int]


def _table(axis: Axis) -> tuple[np.ndarray, ...]:
    area, *args = axis
    return (_area_axis if area else _bilinear_axis)(*args)


@functools.lru_cache(maxsize=128)
def _device_table(axis: Axis, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The table on ``device``, made once: the source lines each output reads, tap by tap,
    counted from the first line the table reads (flat, taps * dst), and (taps, dst) float32
    weights."""
    ofs, weights = _table(axis)
    lines = ofs[None, :] - ofs.min() + np.arange(weights.shape[1])[:, None]
    return (
        torch.from_numpy(lines.reshape(-1)).to(device),
        torch.from_numpy(weights.T.copy()).to(device=device, dtype=torch.float32),
    )


def _apply(x: torch.Tensor, axis: Axis, dim: int) -> torch.Tensor:
    """Filters ``x`` (uint8 or float32, starting at the first line the table reads) along
    ``dim``: out[d] = sum_k x[ofs[d] - lo + k] * w[d, k], in float32. One gather of every tap's
    lines, one product, one sum: a few launches whatever the number of taps."""
    lines, weights = _device_table(axis, x.device)
    dim %= x.dim()
    taps, dst = weights.shape
    gathered = x.index_select(dim, lines)
    shape = [*gathered.shape[:dim], taps, dst, *gathered.shape[dim + 1 :]]
    parts = gathered.reshape(shape)  # (..., taps, dst, ...)
    weight_shape = [1] * parts.dim()
    weight_shape[dim], weight_shape[dim + 1] = taps, dst
    summed: torch.Tensor = (parts * weights.reshape(weight_shape)).sum(dim)
    return summed


def _resample(planes: torch.Tensor, crop: Crop, dst_w: int, dst_h: int, area: bool) -> torch.Tensor:
    """(..., H, W) uint8 -> (..., dst_h, dst_w) float32: the crop resampled (not rounded)."""
    height, width = planes.shape[-2:]
    x, y, w, h = crop
    ax: Axis = (area, x, w, width, dst_w)
    ay: Axis = (area, y, h, height, dst_h)
    tx, ty = _table(ax), _table(ay)
    (x0, nx), (y0, ny) = _span(tx), _span(ty)
    # Only the source pixels the tables read; the first pass gathers them as uint8.
    window = planes.narrow(-1, x0, nx).narrow(-2, y0, ny)
    # The cheaper order: filter first the axis that shrinks the intermediate the most.
    v_first = dst_h * nx * ty[1].shape[1] + dst_h * dst_w * tx[1].shape[1]
    h_first = ny * dst_w * tx[1].shape[1] + dst_h * dst_w * ty[1].shape[1]
    if v_first <= h_first:
        return _apply(_apply(window, ay, -2), ax, -1)
    return _apply(_apply(window, ax, -1), ay, -2)


def _to_u8(values: torch.Tensor) -> torch.Tensor:
    """Rounds half up and saturates to uint8, as the native kernels do."""
    return torch.floor(values + 0.5).clamp_(0, 255).to(torch.uint8)


def resize(
    src: torch.Tensor,
    crop: Sequence[float],
    size: tuple[int, int],
    method: str = "auto",
    layout: str = "HWC",
) -> torch.Tensor:
    """Resizes the ``crop`` (x, y, w, h) of ``src`` to ``size`` (width, height); a new tensor.

    ``layout`` says how ``src`` (uint8) is laid out: ``"HWC"`` (H, W) or (H, W, C) as the
    native kernel takes, ``"CHW"`` (C, H, W), ``"NCHW"`` (N, C, H, W); the result has the same
    layout. All planes of a batch share the crop.
    """
    if src.dtype != torch.uint8:
        raise ValueError(f"src: expected a uint8 tensor, got {src.dtype}")
    dst_w, dst_h = (int(v) for v in size)
    if dst_w < 1 or dst_h < 1:
        raise ValueError(f"size: width and height must be >= 1, got {size}")
    if layout == "HWC":
        if src.dim() not in (2, 3):
            raise ValueError(f"src: expected (H, W) or (H, W, C), got {tuple(src.shape)}")
        planar = src if src.dim() == 2 else src.permute(2, 0, 1)
    elif layout in ("CHW", "NCHW"):
        if src.dim() != len(layout):
            raise ValueError(f"src: expected a {layout} tensor, got {tuple(src.shape)}")
        planar = src
    else:
        raise ValueError(f"layout: expected 'HWC', 'CHW' or 'NCHW', got {layout!r}")
    height, width = planar.shape[-2:]
    box = _check_crop(crop, width, height)
    area = _use_area(method, box, dst_w, dst_h)
    out = _to_u8(_resample(planar, box, dst_w, dst_h, area))
    if layout == "HWC" and src.dim() == 3:
        return out.permute(1, 2, 0).contiguous()
    return out


def resize_into(
    src: torch.Tensor,
    crop: Sequence[float],
    dst: torch.Tensor,
    method: str = "auto",
) -> None:
    """Resizes the ``crop`` (x, y, w, h) rectangle of ``src`` onto all of ``dst`` (uint8, HWC).

    As ``kernels.resize_into``: ``src`` and ``dst`` are (H, W) or (H, W, C) with the same channel
    count; ``dst`` may be a view (a region of a larger canvas).
    """
    if dst.dtype != torch.uint8 or dst.dim() != src.dim() or dst.shape[2:] != src.shape[2:]:
        raise ValueError(
            f"dst: expected a uint8 tensor shaped like src, got {tuple(dst.shape)} {dst.dtype} "
            f"for src {tuple(src.shape)}"
        )
    dst.copy_(resize(src, crop, (dst.shape[1], dst.shape[0]), method))


def _yuv_coefficients(matrix: str, full_range: bool) -> tuple[float, ...]:
    if matrix not in _MATRICES:
        raise ValueError(f"matrix: expected 'bt601' or 'bt709', got {matrix!r}")
    kr, kb = _MATRICES[matrix]
    kg = 1.0 - kr - kb
    ys = 1.0 if full_range else 255.0 / 219.0
    cs = 1.0 if full_range else 255.0 / 224.0
    y_offset = 0.0 if full_range else 16.0
    return (
        y_offset,
        ys,
        cs * 2.0 * (1.0 - kr),  # R from V
        -cs * 2.0 * (1.0 - kb) * kb / kg,  # G from U
        -cs * 2.0 * (1.0 - kr) * kr / kg,  # G from V
        cs * 2.0 * (1.0 - kb),  # B from U
    )


def yuv420_to_rgb(
    planes: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    crop: Sequence[float],
    size: tuple[int, int],
    matrix: str = "bt601",
    full_range: bool = False,
    bgr: bool = False,
    method: str = "auto",
    layout: str = "CHW",
) -> torch.Tensor:
    """Planar 8-bit YUV 4:2:0 -> RGB (or BGR) of ``crop`` at ``size`` (width, height), in one pass.

    ``planes`` are the (H, W) luma and two (ceil(H/2), ceil(W/2)) chroma planes, or the same with
    a leading batch dimension N (all frames share the crop). Each plane is resampled to the
    output size (chroma with "centre" siting: the luma crop halved), then converted (see
    ``csrc/convert.h`` for the matrices). The result is (3, h, w) / (N, 3, h, w) for
    ``layout="CHW"``, (h, w, 3) / (N, h, w, 3) for ``"HWC"``.
    """
    y, u, v = planes
    for name, plane in (("y", y), ("u", u), ("v", v)):
        if not isinstance(plane, torch.Tensor) or plane.dtype != torch.uint8:
            raise ValueError(f"{name}: expected a uint8 tensor")
        if plane.dim() != y.dim() or plane.dim() not in (2, 3):
            raise ValueError(f"{name}: expected (H, W) or (N, H, W), got {tuple(plane.shape)}")
    height, width = y.shape[-2:]
    chroma = ((height + 1) // 2, (width + 1) // 2)
    if tuple(u.shape[-2:]) != chroma or tuple(v.shape[-2:]) != chroma:
        raise ValueError(
            f"u, v: expected {chroma[0]}x{chroma[1]} (rows x columns) chroma planes for a "
            f"{height}x{width} luma plane, got {tuple(u.shape)} and {tuple(v.shape)}"
        )
    if layout not in ("CHW", "HWC"):
        raise ValueError(f"layout: expected 'CHW' or 'HWC', got {layout!r}")
    dst_w, dst_h = (int(s) for s in size)
    if dst_w < 1 or dst_h < 1:
        raise ValueError(f"size: width and height must be >= 1, got {size}")
    box = _check_crop(crop, width, height)
    area = _use_area(method, box, dst_w, dst_h)
    y_off, ys, r_v, g_u, g_v, b_u = _yuv_coefficients(matrix, full_range)
    half = (box[0] / 2, box[1] / 2, box[2] / 2, box[3] / 2)  # chroma: centre siting
    yy = (_resample(y, box, dst_w, dst_h, area) - y_off) * ys
    # Both chroma planes share their tables: resample them together.
    uv = _resample(torch.stack((u, v), dim=-3), half, dst_w, dst_h, area) - 128.0
    uu, vv = uv.unbind(dim=-3)
    r = yy + r_v * vv
    g = yy + g_u * uu + g_v * vv
    b = yy + b_u * uu
    out = _to_u8(torch.stack((b, g, r) if bgr else (r, g, b), dim=-3))
    if layout == "HWC":
        return out.movedim(-3, -1).contiguous()
    return out


def yuv420_to_rgb_into(
    planes: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    crop: Sequence[float],
    dst: torch.Tensor,
    matrix: str = "bt601",
    full_range: bool = False,
    bgr: bool = False,
    method: str = "auto",
) -> None:
    """As ``kernels.yuv420_to_rgb_into``: converts and resizes onto all of ``dst`` (h, w, 3)."""
    if dst.dtype != torch.uint8 or dst.dim() != 3 or dst.shape[2] != 3:
        raise ValueError(f"dst: expected an (h, w, 3) uint8 tensor, got {tuple(dst.shape)}")
    size = (dst.shape[1], dst.shape[0])
    dst.copy_(yuv420_to_rgb(planes, crop, size, matrix, full_range, bgr, method, layout="HWC"))
