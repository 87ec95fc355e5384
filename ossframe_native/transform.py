"""The render step: a decoded frame -> uint8 RGB (or BGR) image at the output geometry.

One step for every backend. The step decides what is done to a frame (rotate, convert colour,
crop, scale, place on a canvas) from its :class:`~ossframe_native.geometry.Geometry` and its
colour tags; a :class:`Backend` supplies the arrays and the kernels that do it:

* :data:`NUMPY`: NumPy arrays and the C++ kernels (:mod:`kernels`); every CPU front end.
* ``torch_ops.RenderBackend(device)``: torch tensors on any device (CUDA), the same kernels
  in torch (:mod:`torch_ops`, which applies the native filter tables).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from . import kernels, pictures
from .geometry import Geometry

__all__ = ["NUMPY", "Backend", "NumpyBackend", "render"]


class Backend(Protocol):
    """What the render step needs from an array library. Images are (H, W, 3) uint8."""

    # True: at the source size (and before a rotation) the frame is FFmpeg's own conversion
    # (swscale), the pixels ``snapshot`` returns; False: every 8-bit 4:2:0 frame is converted
    # by the backend's fused kernel.
    exact_at_source_size: bool

    def planes(self, frame: Any) -> tuple[Any, Any, Any] | None:
        """Y, U, V of an 8-bit 4:2:0 frame on this backend; None for any other format."""

    def rgb(self, frame: Any, bgr: bool) -> Any:
        """The whole frame converted by FFmpeg (any pixel format)."""

    def canvas(self, height: int, width: int, zeroed: bool) -> Any:
        """A new image; black where ``zeroed``, else uninitialised."""

    def rotate(self, image: Any, quarter_turns: int) -> Any:
        """The image turned counter-clockwise (``np.rot90``)."""

    def yuv420_to_rgb_into(
        self, planes: Any, crop: Any, dst: Any, matrix: str, full_range: bool, bgr: bool
    ) -> None:
        """Converts and resizes the crop of the planes onto all of ``dst`` (a view)."""

    def resize_into(self, src: Any, crop: Any, dst: Any) -> None:
        """Resizes the crop of ``src`` onto all of ``dst`` (a view)."""

    def dhash(self, frame: Any) -> int:
        """The 64-bit difference hash of the frame's luma (``kernels.dhash``)."""

    def host(self, image: Any) -> np.ndarray:
        """The image as a C-contiguous NumPy array in system memory."""


class NumpyBackend:
    """NumPy arrays and the C++ kernels: the pixels of ``snapshot``/``snapshots``."""

    exact_at_source_size = True

    def planes(self, frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Zero-copy views of a planar 8-bit 4:2:0 frame's planes."""
        return pictures.yuv420_planes(frame)

    def rgb(self, frame: Any, bgr: bool) -> np.ndarray:
        """FFmpeg's conversion."""
        return pictures.to_rgb(frame, bgr)

    def canvas(self, height: int, width: int, zeroed: bool) -> np.ndarray:
        """An (H, W, 3) uint8 array."""
        return (np.zeros if zeroed else np.empty)((height, width, 3), dtype=np.uint8)

    def rotate(self, image: np.ndarray, quarter_turns: int) -> np.ndarray:
        """``np.rot90``, made contiguous for the kernels."""
        return np.ascontiguousarray(np.rot90(image, k=quarter_turns))

    def yuv420_to_rgb_into(
        self,
        planes: tuple[np.ndarray, np.ndarray, np.ndarray],
        crop: tuple[float, float, float, float],
        dst: np.ndarray,
        matrix: str,
        full_range: bool,
        bgr: bool,
    ) -> None:
        """``kernels.yuv420_to_rgb_into``."""
        kernels.yuv420_to_rgb_into(planes, crop, dst, matrix, full_range, bgr)

    def resize_into(
        self, src: np.ndarray, crop: tuple[float, float, float, float], dst: np.ndarray
    ) -> None:
        """``kernels.resize_into``."""
        kernels.resize_into(src, crop, dst)

    def dhash(self, frame: Any) -> int:
        """``kernels.dhash`` of the luma plane."""
        return kernels.dhash(pictures.luma_plane(frame))

    def host(self, image: np.ndarray) -> np.ndarray:
        """The array itself."""
        return image


NUMPY = NumpyBackend()


def render(frame: Any, geometry: Geometry, bgr: bool = False, backend: Backend = NUMPY) -> Any:
    """The frame as an (H, W, 3) uint8 RGB (or BGR) image shaped by ``geometry``, made by
    ``backend`` (an array of that backend, e.g. a tensor on a GPU).

    Resized 8-bit 4:2:0 frames are converted and resized in one fused pass at the output size.
    At the source size, and before a rotation, :data:`NUMPY` returns FFmpeg's own conversion
    (exactly ``snapshot``'s pixels); a backend that converts every frame itself (GPU frames)
    uses its fused pass there too. Other pixel formats are converted by FFmpeg, then resized
    (area averaging for large downscales, bilinear otherwise).
    """
    exact = backend.exact_at_source_size and (geometry.rotate or geometry.is_identity)
    planes = None if exact else backend.planes(frame)
    if planes is not None and not geometry.rotate:
        canvas, target = _canvas(geometry, backend)
        backend.yuv420_to_rgb_into(planes, geometry.crop, target, *pictures.colour(frame), bgr)
        return canvas
    if planes is not None:  # rotated: the whole frame by the fused pass, then turned
        image = backend.canvas(frame.height, frame.width, zeroed=False)
        whole = (0.0, 0.0, float(frame.width), float(frame.height))
        backend.yuv420_to_rgb_into(planes, whole, image, *pictures.colour(frame), bgr)
    else:
        image = backend.rgb(frame, bgr)
    if geometry.rotate:
        image = backend.rotate(image, geometry.rotate // 90)
    if geometry.is_identity:
        return image
    canvas, target = _canvas(geometry, backend)
    backend.resize_into(image, geometry.crop, target)
    return canvas


def _canvas(geometry: Geometry, backend: Backend) -> tuple[Any, Any]:
    """The output canvas (black where padded) and the view of it the picture goes into."""
    canvas_w, canvas_h = geometry.canvas
    width, height = geometry.size
    x, y = geometry.offset
    canvas = backend.canvas(canvas_h, canvas_w, zeroed=geometry.padded)
    return canvas, canvas[y : y + height, x : x + width]
