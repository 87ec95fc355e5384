"""The torch backend: the kernels of :mod:`kernels` on tensors, and the render step's backend.

Every kernel takes and returns what its ``kernels`` twin does, with ``torch.Tensor`` in place of
``np.ndarray``, and runs wherever the tensors live (CPU torch or CUDA). Definitions are the
native ones, so results agree with the native kernels:

* ``dhash`` / ``dhash_many``: exact integer block sums (``csrc/blocks.h``), so hashes are
  identical (compare them with ``kernels.hash_distance``).
* ``resize_into`` / ``yuv420_to_rgb_into``: the native filter tables themselves
  (``kernels.resize_tables``: cv2 ``INTER_LINEAR`` half-pixel bilinear on a float crop; exact
  area averaging for >= 2x downscales), applied in float32 and rounded once, where the native
  code uses Q14 weights and 16-bit intermediates. Outputs differ from the native ones by at
  most one level.

:class:`RenderBackend` is the render step's backend (``transform.render``) on a torch device:
decoded planes are uploaded, or taken where NVDEC left them (GPU memory, through DLPack).

This module imports torch at import time; ``ml.py`` imports it when asked for torch output, and
``pipeline.py`` when a capture decodes on a GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import kernels, pictures
from .errors import MediaError

__all__ = [
    "RenderBackend",
    "dhash",
    "dhash_many",
    "frame_planes",
    "resize",
    "resize_into",
    "yuv420_to_rgb",
    "yuv420_to_rgb_into",
]

Crop = tuple[float, float, float, float]

_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


# ---------------------------------------------------------------------------------------------
# Block sums: dhash


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


# ---------------------------------------------------------------------------------------------
# Resampling: the native kernels' filter tables (kernels.resize_tables), applied in float32


@dataclass(frozen=True)
class _Table:
    """One axis of a native filter table on a device: the source lines it reads start at
    ``first`` (``count`` of them); ``lines`` (taps * dst) is each tap's line per output,
    counted from ``first``; ``weights`` (taps, dst) float32."""

    first: int
    count: int
    lines: torch.Tensor
    weights: torch.Tensor

    @property
    def taps(self) -> int:
        return int(self.weights.shape[0])

    @staticmethod
    def on(table: tuple[np.ndarray, np.ndarray], device: torch.device) -> _Table:
        ofs, weights = table
        first, taps = int(ofs.min()), weights.shape[1]
        lines = ofs[None, :].astype(np.int64) - first + np.arange(taps)[:, None]
        return _Table(
            first,
            int(ofs.max()) + taps - first,
            torch.from_numpy(lines.reshape(-1)).to(device),
            torch.from_numpy(weights.T.copy()).to(device=device, dtype=torch.float32),
        )


@functools.lru_cache(maxsize=128)
def _tables(
    crop: Crop, src_size: tuple[int, int], size: tuple[int, int], method: str, device: torch.device
) -> tuple[str, _Table, _Table]:
    """(method used, x table, y table) of the native resize, on ``device``, made once; raises
    the native kernels' ValueError for a bad crop or method."""
    used, x_table, y_table = kernels.resize_tables(crop, src_size, size, method)
    return used, _Table.on(x_table, device), _Table.on(y_table, device)


def _apply(x: torch.Tensor, table: _Table, dim: int) -> torch.Tensor:
    """Filters ``x`` (uint8 or float32, starting at the first line the table reads) along
    ``dim``: out[d] = sum_k x[ofs[d] - first + k] * w[d, k], in float32. One gather of every
    tap's lines, one product, one sum: a few launches whatever the number of taps."""
    dim %= x.dim()
    taps, dst = table.weights.shape
    gathered = x.index_select(dim, table.lines)
    shape = [*gathered.shape[:dim], taps, dst, *gathered.shape[dim + 1 :]]
    parts = gathered.reshape(shape)  # (..., taps, dst, ...)
    weight_shape = [1] * parts.dim()
    weight_shape[dim], weight_shape[dim + 1] = taps, dst
    summed: torch.Tensor = (parts * table.weights.reshape(weight_shape)).sum(dim)
    return summed


def _resample(
    planes: torch.Tensor, crop: Sequence[float], size: tuple[int, int], method: str
) -> tuple[str, torch.Tensor]:
    """(..., H, W) uint8 -> (method used, (..., dst_h, dst_w) float32): the crop resampled (not
    rounded) with the native tables."""
    if len(crop) != 4:
        raise ValueError(f"crop: expected (x, y, w, h), got {crop!r}")
    x, y, w, h = (float(v) for v in crop)
    box = (x, y, w, h)
    height, width = planes.shape[-2:]
    used, tx, ty = _tables(box, (width, height), size, method, planes.device)
    # Only the source pixels the tables read; the first pass gathers them as uint8.
    window = planes.narrow(-1, tx.first, tx.count).narrow(-2, ty.first, ty.count)
    # The cheaper order: filter first the axis that shrinks the intermediate the most.
    dst_w, dst_h = size
    v_first = dst_h * tx.count * ty.taps + dst_h * dst_w * tx.taps
    h_first = ty.count * dst_w * tx.taps + dst_h * dst_w * ty.taps
    if v_first <= h_first:
        return used, _apply(_apply(window, ty, -2), tx, -1)
    return used, _apply(_apply(window, tx, -1), ty, -2)


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
    out = _to_u8(_resample(planar, crop, (dst_w, dst_h), method)[1])
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
    y_off, ys, r_v, g_u, g_v, b_u = _yuv_coefficients(matrix, full_range)
    used, luma = _resample(y, crop, (dst_w, dst_h), method)  # the method, resolved on luma
    yy = (luma - y_off) * ys
    half = [float(c) / 2 for c in crop]  # chroma: centre siting
    # Both chroma planes share their tables: resample them together.
    uv = _resample(torch.stack((u, v), dim=-3), half, (dst_w, dst_h), used)[1] - 128.0
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


# ---------------------------------------------------------------------------------------------
# Decoded frames on a device, and the render step's backend


def frame_planes(
    frame: Any, device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(Y, U, V) uint8 tensors on ``device`` for an 8-bit 4:2:0 frame, else None.

    Planar frames in system memory are uploaded plane by plane (``pictures.yuv420_planes``
    views). NV12 frames (what NVDEC returns: format ``cuda`` when they stay in GPU memory,
    ``nv12`` when a cuvid decoder copied them back) are taken through DLPack, without a copy
    where they already are on the device.
    """
    fmt = frame.format.name
    if fmt not in ("cuda", "nv12"):
        planes = pictures.yuv420_planes(frame)
        if planes is None:
            return None
        y, u, v = (torch.from_numpy(p).to(device) for p in planes)
        return y, u, v
    luma = _luma(frame, device)
    chroma = _from_plane(frame.planes[1], device)
    rows, columns = (frame.height + 1) // 2, (frame.width + 1) // 2
    # (rows, columns, 2) or (rows, bytes): flatten each row, drop padding, split U and V.
    pairs = chroma.reshape(chroma.shape[0], -1)[:rows, : 2 * columns].reshape(rows, columns, 2)
    return luma, pairs[..., 0], pairs[..., 1]


def _luma(frame: Any, device: str | torch.device) -> torch.Tensor:
    """The (H, W) luma of an NV12 frame (``cuda`` or ``nv12``) on ``device``."""
    if frame.format.name == "cuda":
        sw = frame.sw_format.name if frame.sw_format is not None else None
        if sw != "nv12":
            raise MediaError(f"the GPU decoder returned {sw} frames; only nv12 is supported")
    luma = _from_plane(frame.planes[0], device)
    return luma.reshape(luma.shape[0], -1)[: frame.height, : frame.width]


def _from_plane(plane: Any, device: str | torch.device) -> torch.Tensor:
    """A frame plane as a tensor on ``device``, through DLPack.

    The capsule is taken with ``plane.__dlpack__()`` (no stream): PyAV refuses a stream for
    GPU planes, and ``torch.from_dlpack(plane)`` would pass torch's current one. FFmpeg writes
    the frame on the legacy default stream, which torch's default stream waits for; on any
    other stream the device is synchronized first.
    """
    target = torch.device(device)
    if target.type == "cuda" and torch.cuda.current_stream(target) != torch.cuda.default_stream(
        target
    ):
        torch.cuda.synchronize(target)
    tensor: torch.Tensor = torch.utils.dlpack.from_dlpack(plane.__dlpack__())
    return tensor.to(target)


class RenderBackend:
    """The render step's backend (``transform.Backend``) on a torch device: tensors, the kernels
    of this module. Every 8-bit 4:2:0 frame goes through the fused conversion, at the source
    size too (frames in GPU memory have no FFmpeg conversion); other formats are converted by
    FFmpeg on the CPU and uploaded. ``layout``: the memory order canvases are allocated in
    (``"CHW"``: a CHW tensor seen as HWC, so that the CHW result needs no copy)."""

    exact_at_source_size = False

    def __init__(self, device: str | torch.device, layout: str = "HWC") -> None:
        self.device = torch.device(device)
        self.chw = layout == "CHW"

    def planes(self, frame: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The frame's Y, U, V on the device; None where it is not 8-bit 4:2:0."""
        return frame_planes(frame, self.device)

    def rgb(self, frame: Any, bgr: bool) -> torch.Tensor:
        """FFmpeg's RGB (or BGR) conversion of a frame in system memory, uploaded."""
        return torch.from_numpy(pictures.to_rgb(frame, bgr)).to(self.device)

    def canvas(self, height: int, width: int, zeroed: bool) -> torch.Tensor:
        """An (H, W, 3) uint8 canvas (black when ``zeroed``)."""
        allocate = torch.zeros if zeroed else torch.empty
        if self.chw:
            return allocate((3, height, width), dtype=torch.uint8, device=self.device).permute(
                1, 2, 0
            )
        return allocate((height, width, 3), dtype=torch.uint8, device=self.device)

    def rotate(self, image: torch.Tensor, quarter_turns: int) -> torch.Tensor:
        """The image turned counter-clockwise, as ``np.rot90``."""
        return torch.rot90(image, quarter_turns, dims=(0, 1))

    def yuv420_to_rgb_into(
        self,
        planes: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        crop: Sequence[float],
        dst: torch.Tensor,
        matrix: str,
        full_range: bool,
        bgr: bool,
    ) -> None:
        """As :func:`yuv420_to_rgb_into`."""
        yuv420_to_rgb_into(planes, crop, dst, matrix, full_range, bgr)

    def resize_into(self, src: torch.Tensor, crop: Sequence[float], dst: torch.Tensor) -> None:
        """As :func:`resize_into`."""
        resize_into(src, crop, dst)

    def dhash(self, frame: Any) -> int:
        """The dhash of the frame's luma, on the device where NVDEC left it there, else by the
        native kernel (identical hashes either way)."""
        if frame.format.name in ("cuda", "nv12"):
            return dhash(_luma(frame, self.device))
        return kernels.dhash(pictures.luma_plane(frame))

    def host(self, image: torch.Tensor) -> np.ndarray:
        """The image as a C-contiguous NumPy array."""
        return np.ascontiguousarray(image.cpu().numpy())
