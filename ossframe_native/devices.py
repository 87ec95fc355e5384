"""Devices a capture decodes and renders on, by the names users give (``"cpu"``, ``"cuda"``,
``"cuda:N"``, ``"auto"``): checked, and resolved against the CUDA devices torch sees.

A leaf: the front ends (``ml.py``, ``ray.py``) and the batch scheduler (``loader.py``) import
it. torch is imported only where a name needs it resolved (anything but ``"cpu"``).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidArgument

__all__ = ["DEVICES", "TORCH_MISSING", "check_device", "device_of", "import_torch"]

DEVICES = ("cpu", "cuda", "cuda:<index>", "auto")

TORCH_MISSING = (
    "{what} needs PyTorch, which is not installed; install it with "
    "`pip install 'ossframe_native[torch]'` (or see https://pytorch.org for a CUDA build)"
)

_NAME = re.compile(r"cpu|auto|cuda(?::(\d+))?")


def import_torch(what: str = "output='torch'") -> Any:
    """The ``torch`` module; an ``ImportError`` saying how to install it, naming ``what``
    needs it, where it is missing."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(TORCH_MISSING.format(what=what)) from exc
    return torch


def check_device(device: Any) -> str:
    """``device`` as a name of :data:`DEVICES` (``InvalidArgument`` otherwise); nothing is
    imported."""
    name = device if isinstance(device, str) else str(device)
    if _NAME.fullmatch(name) is None:
        raise InvalidArgument("device", f"must be one of {', '.join(DEVICES)}, got {device!r}")
    return name


def device_of(device: Any) -> str:
    """``device`` resolved: ``"cpu"`` or ``"cuda:N"`` (``"cuda"``: torch's current device;
    ``"auto"``: that one where CUDA is available, else the CPU); ``InvalidArgument`` where CUDA
    is asked for and unavailable, or ``N`` is not a device."""
    name = check_device(device)
    if name == "cpu":
        return "cpu"
    torch = import_torch()
    available = torch.cuda.is_available()
    if name == "auto" and not available:
        return "cpu"
    if not available:
        raise InvalidArgument(
            "device",
            f"{name!r} was asked for but CUDA is not available (torch {torch.__version__}: "
            "torch.cuda.is_available() is False - a CPU-only build of torch, or no GPU or "
            "driver); use device='cpu', or device='auto' to take CUDA only where present",
        )
    count = torch.cuda.device_count()
    match = _NAME.fullmatch(name)
    assert match is not None
    index = int(match.group(1)) if match.group(1) else torch.cuda.current_device()
    if index >= count:
        raise InvalidArgument(
            "device", f"{name!r}: only {count} CUDA device(s), cuda:0..cuda:{count - 1}"
        )
    return f"cuda:{index}"
