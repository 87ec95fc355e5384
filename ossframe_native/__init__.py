"""ossframe_native: exact, fast video frame capture with the OSS ``video/snapshot(s)`` interface."""

from .api import Image, capture, probe, snapshot, snapshots
from .batch import process_many
from .errors import FrameError, InvalidArgument, MediaError
from .ml import Batch, Frame, frames, frames_batch
from .params import ProcessRequest, parse_process
from .store import FsspecStore, LocalStore, Store
from .task import TaskResult, process

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "Frame",
    "FrameError",
    "FsspecStore",
    "Image",
    "InvalidArgument",
    "LocalStore",
    "MediaError",
    "ProcessRequest",
    "Store",
    "TaskResult",
    "capture",
    "frames",
    "frames_batch",
    "parse_process",
    "probe",
    "process",
    "process_many",
    "snapshot",
    "snapshots",
]


def __getattr__(name: str) -> object:
    if name == "FrameDataset":  # subclasses a torch class: defined on first use
        from . import ml

        return ml.FrameDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
