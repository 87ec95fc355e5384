"""ossframe_native: exact, fast video frame capture with the OSS ``video/snapshot(s)`` interface.

The public names are ``__all__``: what users call, the results and stores they get back, the
errors they catch and ``collect_stats`` (frames decoded, for benchmarks). The engine's own
interfaces (``pipeline.open_capture``, ``decode.VideoSource``, ...) live in their modules and may
change. Names are imported on first use (PEP 562), so the command line and light users load only
the modules they need: start-up time counts when a whole process captures one frame.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import FrameError, InvalidArgument, MediaError

__version__ = "0.1.0"

_LAZY = {
    "Image": "api",
    "capture": "api",
    "probe": "pipeline",
    "snapshot": "api",
    "snapshots": "api",
    "Sprite": "sprites",
    "sprite": "sprites",
    "process_many": "batch",
    "DecodeStats": "index",
    "collect_stats": "pipeline",
    "Batch": "ml",
    "Frame": "ml",
    "FrameDataset": "ml",  # subclasses a torch class: defined on first use
    "frames": "ml",
    "frames_batch": "ml",
    "ProcessRequest": "params",
    "parse_process": "params",
    "FsspecStore": "store",
    "LocalStore": "store",
    "Store": "store",
    "StoreError": "store",
    "TaskResult": "task",
    "process": "task",
}

__all__ = [
    "Batch",
    "DecodeStats",
    "Frame",
    "FrameDataset",
    "FrameError",
    "FsspecStore",
    "Image",
    "InvalidArgument",
    "LocalStore",
    "MediaError",
    "ProcessRequest",
    "Sprite",
    "Store",
    "StoreError",
    "TaskResult",
    "capture",
    "collect_stats",
    "frames",
    "frames_batch",
    "parse_process",
    "probe",
    "process",
    "process_many",
    "snapshot",
    "snapshots",
    "sprite",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    if name != "FrameDataset":  # FrameDataset must stay lazy: it needs torch
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .api import Image, capture, snapshot, snapshots
    from .batch import process_many
    from .index import DecodeStats
    from .ml import Batch, Frame, FrameDataset, frames, frames_batch
    from .params import ProcessRequest, parse_process
    from .pipeline import collect_stats, probe
    from .sprites import Sprite, sprite
    from .store import FsspecStore, LocalStore, Store, StoreError
    from .task import TaskResult, process
