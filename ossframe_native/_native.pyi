"""Stubs of the compiled kernels (``csrc/``, bound in ``csrc/module.cpp``).

Arrays are used in place, never copied or converted: they must be ``uint8`` with packed pixels
(channel stride 1, pixel stride = channels); the row stride is free, so decoder planes with
padded rows (``np.frombuffer(plane, np.uint8).reshape(h, line_size)[:, :w]``) and views into a
larger canvas work as they are. Anything else raises ``ValueError`` naming the parameter and the
value; a non-array raises ``TypeError``. Every kernel releases the GIL while it runs. Outputs
must not share memory with the inputs (not checked).

Integer blocks (dhash): a length ``L`` split into ``n`` cells, cell ``i`` covering
``[floor(i * L / n), floor((i + 1) * L / n))``.
"""

from typing import SupportsIndex

import numpy as np
import numpy.typing as npt

__version__: str

def dhash(plane: npt.NDArray[np.uint8]) -> int:
    """64-bit difference hash of a luma plane of shape (H, W).

    The plane is reduced to 8 rows x 9 columns of integer blocks; bit (j, i) is set when block
    (j, i) has a larger average than block (j, i + 1), compared exactly (integer sums cross-
    multiplied by the block widths). Row 0 column 0 is the most significant bit (bit 63), which
    is imagehash's hex order: on a 9x8 plane ``dhash(p) == int(str(imagehash.dhash(
    Image.fromarray(255 - p))), 16)`` (imagehash sets right > left, hence the inversion).
    A plane narrower than 9 (shorter than 8) pixels is hashed as if each pixel were repeated
    9 times across (8 times down), so each block is an exact ninth (eighth) of the picture.
    """

def hash_distance(a: SupportsIndex, b: SupportsIndex) -> float:
    """Percentage (0..100) of the 64 bits in which hashes ``a`` and ``b`` differ.

    Both must be integers (int, numpy.uint64, ...) in [0, 2**64); else ValueError.
    """

_Table = tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]

def resize_tables(
    crop: tuple[float, float, float, float],
    src_w: int,
    src_h: int,
    dst_w: int,
    dst_h: int,
    method: str = "auto",
) -> tuple[str, _Table, _Table]:
    """The tables :func:`resize` (and :func:`yuv420_to_rgb`, for luma) filters with.

    Returns ``(method, (x_ofs, x_weights), (y_ofs, y_weights))``: ``method`` is ``"area"`` or
    ``"bilinear"`` as resolved from ``method`` for this crop and size; output ``d`` of an axis
    is ``sum_k src[ofs[d] + k] * weights[d, k]``, ``ofs`` (dst,) and ``weights`` (dst, taps)
    unrounded (each row sums to 1; :func:`resize` rounds them to Q14). The crop and method are
    checked as :func:`resize` checks them.
    """

def resize(
    src: npt.NDArray[np.uint8],
    crop: tuple[float, float, float, float],
    dst: npt.NDArray[np.uint8],
    method: str = "auto",
) -> None:
    """Resize the ``crop = (x, y, w, h)`` rectangle of ``src`` onto all of ``dst``, in place.

    ``src`` is (H, W) or (H, W, C) with C in 1..4; ``dst`` is writeable with the same channel
    count, shape (dh, dw[, C]), and may be a view into a larger canvas (nothing outside it is
    written). The crop is in pixel units (pixel i covers [i, i + 1)), may be fractional, must
    have w, h > 0 and lie inside ``src``.

    Methods:

    * ``"bilinear"``: cv2.resize INTER_LINEAR semantics generalised to a crop: dst pixel dx
      samples x + (dx + 0.5) * w / dw - 0.5, clamped to the crop's pixels [floor(x),
      ceil(x + w) - 1]; same for y. Within 1 level of ``cv2.resize(src[y:y+h, x:x+w], (dw, dh),
      interpolation=cv2.INTER_LINEAR)`` for integer crops.
    * ``"area"``: exact area averaging, dst pixel dx averaging [x + dx * s, x + (dx + 1) * s),
      s = w / dw, pixels weighted by overlap (cv2 INTER_AREA for downscales, within 1 level).
      An axis that is upscaled (w < dw or h < dh) uses bilinear on that axis.
    * ``"auto"``: area when the crop is at least 2x dst on either axis and not smaller on
      either, else bilinear.

    Fixed point: Q14 weights, 16-bit intermediate rows with 7 fraction bits.
    """

def yuv420_to_rgb(
    y: npt.NDArray[np.uint8],
    u: npt.NDArray[np.uint8],
    v: npt.NDArray[np.uint8],
    crop: tuple[float, float, float, float],
    dst: npt.NDArray[np.uint8],
    matrix: str = "bt601",
    full_range: bool = False,
    bgr: bool = False,
    method: str = "auto",
) -> None:
    """Crop, resize and convert planar YUV 4:2:0 to RGB into ``dst`` (dh, dw, 3), in one pass.

    ``y`` is (H, W); ``u`` and ``v`` are ((H + 1) // 2, (W + 1) // 2). ``crop`` is in luma
    pixels (as in :func:`resize`); ``method`` is resolved once from the luma crop and ``dst``.
    No full-size RGB image is made: Y is resampled to (dh, dw), U and V likewise from the crop
    halved (chroma siting "centre": chroma sample (i, j) sits at the centre of luma pixels
    2i..2i+1 x 2j..2j+1, as cv2.cvtColor's I420 conversion assumes), each keeping 7 fraction
    bits, then converted at output size:

        Y' = (Y - 16) * 255/219,  C' = (C - 128) * 255/224   (full_range: Y' = Y, C' = C - 128)
        R = Y' + 2 (1 - Kr) V'
        G = Y' - (2 (1 - Kb) Kb U' + 2 (1 - Kr) Kr V') / Kg
        B = Y' + 2 (1 - Kb) U'

    with (Kr, Kb) = (0.299, 0.114) for ``"bt601"`` and (0.2126, 0.0722) for ``"bt709"``.
    Channels are R, G, B unless ``bgr``. Within 1 level of that definition computed in float;
    vs ``cv2.resize(cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420), (dw, dh))``, which repeats each
    chroma sample over its 2x2 block where this interpolates it, PSNR is about 42-47 dB on
    natural content (max abs difference 7-13 at sharp chroma edges).
    """
