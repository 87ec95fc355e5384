"""The only module that imports the compiled ``_native`` kernels.

Thin typed wrappers; the CPU/torch dispatch for tensors lives in ``torch_ops``.
"""

from __future__ import annotations

import numpy as np

try:
    from . import _native
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "ossframe_native._native (the compiled kernels) could not be imported. Install the "
        "package with `pip install .` so the C++ extension is built; when running from a source "
        "checkout, run `pip install -e .` first. Original error: " + str(exc)
    ) from exc

__all__ = ["dhash", "hash_distance", "resize_into", "resize_tables", "yuv420_to_rgb_into"]

# One axis of a separable filter: ofs (dst,) int32, the first source index each output reads,
# and weights (dst, taps) float64, unrounded (each row sums to 1).
AxisTable = tuple[np.ndarray, np.ndarray]


def dhash(plane: np.ndarray) -> int:
    """64-bit difference hash of a (H, W) uint8 luma plane (bit = left > right); a plane under
    9x8 is hashed as its upscale by pixel repetition (9x across, 8x down on the short axis)."""
    return _native.dhash(plane)


def hash_distance(a: int, b: int) -> float:
    """Percentage (0..100) of the 64 hash bits that differ between ``a`` and ``b``."""
    return _native.hash_distance(a, b)


def resize_tables(
    crop: tuple[float, float, float, float],
    src_size: tuple[int, int],
    dst_size: tuple[int, int],
    method: str = "auto",
) -> tuple[str, AxisTable, AxisTable]:
    """The filter tables :func:`resize_into` uses to resize ``crop`` of a ``src_size`` (w, h)
    image to ``dst_size``: ``(method used, x table, y table)``, "area" or "bilinear" resolved
    from ``method``. Other backends apply these same tables (one definition of resampling)."""
    x, y, w, h = (float(v) for v in crop)
    used, x_table, y_table = _native.resize_tables((x, y, w, h), *src_size, *dst_size, method)
    return used, x_table, y_table


def resize_into(
    src: np.ndarray,
    crop: tuple[float, float, float, float],
    dst: np.ndarray,
    method: str = "auto",
) -> None:
    """Resizes the ``crop`` (x, y, w, h) rectangle of ``src`` onto all of ``dst`` (uint8)."""
    x, y, w, h = (float(v) for v in crop)
    _native.resize(src, (x, y, w, h), dst, method)


def yuv420_to_rgb_into(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray],
    crop: tuple[float, float, float, float],
    dst: np.ndarray,
    matrix: str = "bt601",
    full_range: bool = False,
    bgr: bool = False,
) -> None:
    """Converts planar 8-bit YUV 4:2:0 to RGB (or BGR) and resizes, in one pass."""
    y, u, v = planes
    cx, cy, cw, ch = (float(c) for c in crop)
    _native.yuv420_to_rgb(y, u, v, (cx, cy, cw, ch), dst, matrix, full_range, bgr)
