"""ossframe_native: exact, fast video frame capture with the OSS ``video/snapshot(s)`` interface."""

from .api import Image, capture, probe, snapshot, snapshots
from .errors import FrameError, InvalidArgument, MediaError
from .ml import Frame, frames
from .params import ProcessRequest, parse_process

__version__ = "0.1.0"

__all__ = [
    "Frame",
    "FrameError",
    "Image",
    "InvalidArgument",
    "MediaError",
    "ProcessRequest",
    "capture",
    "frames",
    "parse_process",
    "probe",
    "snapshot",
    "snapshots",
]
