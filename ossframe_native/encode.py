"""Image encoding: the only module that imports ``cv2``."""

from __future__ import annotations

import cv2
import numpy as np

from .errors import MediaError

JPEG_QUALITY = 90

_PARAMS = {
    "jpg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]),
    "png": (".png", []),
}


def encode(bgr: np.ndarray, fmt: str) -> bytes:
    """Encodes an (H, W, 3) BGR uint8 image as ``jpg`` (quality 90) or ``png``."""
    ext, params = _PARAMS[fmt]
    ok, buffer = cv2.imencode(ext, bgr, params)
    if not ok:
        raise MediaError(f"could not encode a {bgr.shape[1]}x{bgr.shape[0]} image as {fmt}")
    return buffer.tobytes()
