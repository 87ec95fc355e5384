"""The one exception tree of ossframe_native (docs/BEHAVIOUR.md, "Errors and exit codes")."""

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


class InvalidObjectName(InvalidArgument):
    """A valid object name that the store cannot hold: a part of it is already an object (an
    object cannot also be a folder), it is the folder of other objects, or it is too long for
    the file system under the store. Nothing is written."""

    code = "InvalidObjectName"


class MediaError(FrameError):
    """The input is unreadable, corrupt, unsupported or has no picture to capture."""

    code = "MediaError"


# Exit status of the command line by error code (docs/BEHAVIOUR.md, "Command line"); anything
# else is 1.
EXIT_STATUS = {InvalidArgument.code: 2, InvalidObjectName.code: 2, MediaError.code: 3}


def error_code(exc: BaseException) -> str:
    """The code an error is reported under: its FrameError code, else ``InternalError``."""
    return exc.code if isinstance(exc, FrameError) else "InternalError"
