"""Decoded frame -> uint8 image at the output geometry: rotate, convert colour, crop, scale, pad."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import kernels, pictures
from .geometry import Geometry


def render(frame: Any, geometry: Geometry, bgr: bool = False) -> np.ndarray:
    """The frame as an (H, W, 3) uint8 RGB (or BGR) array shaped by ``geometry``.

    At the source size the pixels are exactly FFmpeg's conversion. Resized 4:2:0 frames are
    converted and resized in one native pass at the output size; other formats are converted by
    FFmpeg, then resized natively (area averaging for large downscales, bilinear otherwise).
    """
    planes = None if geometry.rotate or geometry.is_identity else pictures.yuv420_planes(frame)
    if planes is not None:
        matrix, full_range = pictures.colour(frame)
        canvas, target = _canvas(geometry)
        kernels.yuv420_to_rgb_into(planes, geometry.crop, target, matrix, full_range, bgr)
        return canvas
    image = pictures.to_rgb(frame, bgr)
    if geometry.rotate:
        image = np.ascontiguousarray(np.rot90(image, k=geometry.rotate // 90))
    if geometry.is_identity:
        return image
    canvas, target = _canvas(geometry)
    kernels.resize_into(image, geometry.crop, target)
    return canvas


def _canvas(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """The output canvas (black where padded) and the view of it the picture goes into."""
    canvas_w, canvas_h = geometry.canvas
    width, height = geometry.size
    x, y = geometry.offset
    allocate = np.zeros if geometry.padded else np.empty
    canvas = allocate((canvas_h, canvas_w, 3), dtype=np.uint8)
    return canvas, canvas[y : y + height, x : x + width]
