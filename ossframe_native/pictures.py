"""Decoded pictures as arrays: plane views, colour tags, rotation and RGB conversion.

PyAV frames come in here from the decoder (:mod:`~ossframe_native.runs`); ``transform.py``,
``ml.py`` and the dhash step read them through these helpers only.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np

from .errors import MediaError


def luma_plane(frame: Any) -> np.ndarray:
    """A zero-copy (H, W) uint8 view of the frame's luma, converting only non-8-bit-YUV formats."""
    if frame.format.name not in _EIGHT_BIT_YUV:
        frame = _converted(frame, "gray")
    return _plane_view(frame.planes[0])


def yuv420_planes(frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Zero-copy Y, U, V views of an 8-bit planar 4:2:0 frame; None for any other format."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return None
    y, u, v = (_plane_view(plane) for plane in frame.planes)
    return y, u, v


def colour(frame: Any) -> tuple[str, bool]:
    """(matrix, full_range) as FFmpeg's conversion reads the frame's tags: BT.709 when tagged
    so, else BT.601; full range for yuvj formats or a JPEG range tag."""
    matrix = "bt709" if int(frame.colorspace or 0) == 1 else "bt601"  # AVCOL_SPC_BT709
    full = frame.format.name.startswith("yuvj") or int(frame.color_range or 0) == 2  # JPEG
    return matrix, full


def _plane_view(plane: Any) -> np.ndarray:
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


_EIGHT_BIT_YUV = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "nv12",
        "nv21",
        "gray",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
    }
)


def to_rgb(frame: Any, bgr: bool = False) -> np.ndarray:
    """The frame as an (H, W, 3) uint8 array (FFmpeg's swscale conversion)."""
    image: np.ndarray = _converted(frame, "bgr24" if bgr else "rgb24").to_ndarray()
    return image


def _converted(frame: Any, pixel_format: str) -> Any:
    """``frame.reformat``, with swscale's refusal (e.g. colour tags a corrupt stream garbled)
    reported as a MediaError."""
    try:
        return frame.reformat(format=pixel_format)
    except av.FFmpegError as exc:
        raise MediaError(
            f"cannot convert a decoded {frame.width}x{frame.height} {frame.format.name} frame to "
            f"{pixel_format} ({exc.strerror or exc}); the file may be corrupt"
        ) from exc


def rotation(frame: Any) -> int:
    """Counter-clockwise display rotation of the frame in degrees: 0, 90, 180 or 270."""
    return int(round((frame.rotation or 0) / 90.0)) % 4 * 90
