"""The one exception tree of ossframe_native (SPEC §5)."""

from __future__ import annotations


class FrameError(Exception):
    """Base of every error ossframe_native raises on purpose."""

    code = "FrameError"


class InvalidArgument(FrameError, ValueError):
    """A parameter is missing, malformed or out of range; ``.param`` names it."""

    code = "InvalidArgument"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}" if param else message)
        self.param = param


class MediaError(FrameError):
    """The input is unreadable, corrupt, unsupported or has no picture to capture."""

    code = "MediaError"
