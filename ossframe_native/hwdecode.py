"""GPU decode selection: which FFmpeg GPU decoder, if any, may decode a video stream.

Pure decisions, no FFmpeg calls: ``decode.open_gpu`` (decode.py is the only module that imports
``av``) asks :func:`choose` with what the demuxer says about the stream and what the loaded
FFmpeg offers, and opens the decoder it names (a ``decode.GpuDecoder``), or decodes on the CPU.
Two FFmpeg routes lead to NVIDIA's NVDEC:

* ``hwaccel``: the regular software decoder with the ``cuda`` hwaccel (PyAV >= 14,
  ``av.open(..., hwaccel=HWAccel("cuda", is_hw_owned=True))``). Frames stay in GPU memory and
  reach torch through DLPack, without a copy through the host. Preferred.
* ``cuvid``: FFmpeg's ``h264_cuvid`` / ``hevc_cuvid`` / ... wrapper decoders. Frames come back
  to system memory as NV12 and are uploaded again; used only where the hwaccel is missing.

The GPU path takes 8-bit 4:2:0 streams of even size inside NVDEC's limits only. Anything else
decodes on the CPU (the frames are still converted and resized on the GPU), and the reason is
logged: at WARNING the first time a reason occurs in a process, at DEBUG afterwards, so a
dataset of 10-bit files does not flood the log.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# FFmpeg codec name -> the name stem of its cuvid decoder.
_CUVID = {
    "h264": "h264",
    "hevc": "hevc",
    "av1": "av1",
    "vp9": "vp9",
    "vp8": "vp8",
    "mpeg1video": "mpeg1",
    "mpeg2video": "mpeg2",
    "mpeg4": "mpeg4",
    "vc1": "vc1",
}

# NVDEC's coded-size limits per codec (NVIDIA Video Codec SDK, "NVDEC capabilities", Turing
# and later): (min width, min height, max width, max height).
_LIMITS = {
    "h264": (48, 16, 4096, 4096),
    "hevc": (144, 144, 8192, 8192),
    "av1": (128, 128, 8192, 8192),
    "vp9": (128, 128, 8192, 8192),
    "vp8": (48, 16, 4096, 4096),
    "mpeg1video": (48, 16, 4080, 4080),
    "mpeg2video": (48, 16, 4080, 4080),
    "mpeg4": (48, 16, 2032, 2032),
    "vc1": (48, 16, 2032, 2032),
}

# Pixel formats of 8-bit 4:2:0 content: what the GPU conversion (NV12 -> RGB) takes.
EIGHT_BIT_420 = frozenset({"yuv420p", "yuvj420p", "nv12"})


@dataclass(frozen=True)
class HwDecoder:
    """A GPU decoder to open: ``method`` is ``"hwaccel"`` (``name`` = FFmpeg device type,
    ``"cuda"``) or ``"cuvid"`` (``name`` = decoder, e.g. ``"h264_cuvid"``); ``device`` is the
    CUDA device index."""

    method: str
    name: str
    device: int = 0


@dataclass(frozen=True)
class HwChoice:
    """The decision for one stream: ``decoder`` is None when it decodes on the CPU."""

    decoder: HwDecoder | None
    reason: str


def choose(
    codec: str,
    pix_fmt: str | None,
    width: int,
    height: int,
    *,
    hwaccel_devices: Collection[str] = (),
    decoders: Collection[str] = (),
    device: int = 0,
    cover_art: bool = False,
) -> HwChoice:
    """Picks the GPU decoder for a stream, or None with the reason it decodes on the CPU.

    ``codec`` / ``pix_fmt`` / ``width`` / ``height`` are the stream's (``pix_fmt`` None when the
    demuxer does not say). ``hwaccel_devices`` is ``av.codec.hwaccel.hwdevices_available()`` and
    ``decoders`` is ``av.codecs_available`` of the loaded FFmpeg. The reason is logged.
    """
    choice = _decide(codec, pix_fmt, width, height, hwaccel_devices, decoders, device, cover_art)
    if choice.decoder is None:
        _log_fallback(choice.reason)
    else:
        logger.debug("GPU decoder chosen: %s", choice.reason)
    return choice


def _decide(
    codec: str,
    pix_fmt: str | None,
    width: int,
    height: int,
    hwaccel_devices: Collection[str],
    decoders: Collection[str],
    device: int,
    cover_art: bool,
) -> HwChoice:
    def cpu(reason: str) -> HwChoice:
        return HwChoice(None, f"decoding {codec} {width}x{height} on the CPU: {reason}")

    if cover_art:
        return cpu("the picture is a cover image, not a video")
    if codec not in _CUVID:
        return cpu(f"NVDEC has no decoder for codec {codec!r}")
    if pix_fmt is None:
        return cpu("the stream's pixel format is unknown")
    if pix_fmt not in EIGHT_BIT_420:
        if any(tag in pix_fmt for tag in ("10", "12", "16", "p010", "p016")):
            return cpu(f"pixel format {pix_fmt} is more than 8 bits per sample")
        return cpu(f"pixel format {pix_fmt} is not 8-bit 4:2:0")
    if width % 2 or height % 2:
        return cpu("the size is odd (4:2:0 chroma of odd sizes is not exact on NVDEC)")
    min_w, min_h, max_w, max_h = _LIMITS[codec]
    if not (min_w <= width <= max_w and min_h <= height <= max_h):
        return cpu(f"NVDEC decodes {codec} from {min_w}x{min_h} to {max_w}x{max_h} only")
    if "cuda" in hwaccel_devices:
        return HwChoice(HwDecoder("hwaccel", "cuda", device), f"{codec} via the cuda hwaccel")
    name = f"{_CUVID[codec]}_cuvid"
    if name in decoders:
        return HwChoice(HwDecoder("cuvid", name, device), f"{codec} via {name}")
    return cpu(
        f"no GPU decoder in this PyAV/FFmpeg build (needs the cuda hwaccel, PyAV >= 14, or the "
        f"{name} decoder)"
    )


_logged: set[str] = set()


def _log_fallback(reason: str) -> None:
    kind = reason.split(": ", 1)[-1]
    if kind in _logged:
        logger.debug("%s", reason)
        return
    _logged.add(kind)
    logger.warning("%s (further streams with this reason are logged at DEBUG)", reason)


def device_failed(decoder: HwDecoder, error: BaseException) -> None:
    """Logs that opening ``decoder`` failed (no GPU, driver, out of decode sessions) and the
    stream decodes on the CPU instead."""
    _log_fallback(
        f"decoding on the CPU: the {decoder.method} {decoder.name!r} decoder on CUDA device "
        f"{decoder.device} could not be opened ({type(error).__name__}: {error})"
    )
