"""Decoded frame -> uint8 image at the output geometry: rotate, convert colour, crop, scale, pad."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import decode, kernels
from .geometry import Geometry


def render(frame: Any, geometry: Geometry, bgr: bool = False) -> np.ndarray:
    """The frame as an (H, W, 3) uint8 RGB (or BGR) array shaped by ``geometry``.

    At the source size the pixels are exactly FFmpeg's conversion; resizing uses the native
    kernels (area averaging for large downscales, bilinear otherwise).
    """
    image = decode.to_rgb(frame, bgr)
    if geometry.rotate:
        image = np.ascontiguousarray(np.rot90(image, k=geometry.rotate // 90))
    if geometry.is_identity:
        return image
    canvas_w, canvas_h = geometry.canvas
    width, height = geometry.size
    x, y = geometry.offset
    allocate = np.zeros if geometry.padded else np.empty
    canvas = allocate((canvas_h, canvas_w, 3), dtype=np.uint8)
    kernels.resize_into(image, geometry.crop, canvas[y : y + height, x : x + width])
    return canvas
