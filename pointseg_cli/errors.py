"""Exception hierarchy.

Every error a user can cause derives from :class:`PointsegError`; the CLI maps it to exit code 2
with one line of text. Messages name what was expected and what was found.
"""

from __future__ import annotations


class PointsegError(Exception):
    """Base class for errors caused by invalid input or usage (exit code 2).

    The message is kept on one line: line breaks that come from the user's own data (a header
    field, a class name) are shown as ``\\n`` so the CLI's one-line promise holds for any input.
    """

    exit_code = 2

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], str):
            args = (_one_line(args[0]), *args[1:])
        super().__init__(*args)


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


class InputError(PointsegError):
    """An input file or argument is missing, malformed or inconsistent."""


class ImageFormatError(InputError):
    """An image cannot be read, or its axes/shape are not what was expected."""


class ImageReadError(ImageFormatError):
    """An image file is truncated, corrupt, unreadable or holds pixels that cannot be used (NaN/Inf).

    Raised when the file is opened and also while its pixels are read region by region, so a
    batch can report the one file and go on.
    """


class PointsError(InputError):
    """A points file is malformed or inconsistent with its images."""


class ConfigError(PointsegError):
    """A configuration value is out of range or an option has an unknown value."""


class ModelError(PointsegError):
    """A model file is missing, corrupt, has the wrong hash or unexpected metadata."""


class OutputError(PointsegError):
    """An output folder or file cannot be written (a file or folder in the way, no permission)."""


class DeviceError(PointsegError):
    """A requested device (for example CUDA) is not available."""


class ParityError(ModelError):
    """An exported model disagrees with its PyTorch source beyond tolerance."""


class BatchError(Exception):
    """A batch finished but some inputs failed (exit code 1)."""

    exit_code = 1

    def __init__(self, failed: int, total: int) -> None:
        super().__init__(f"{failed} of {total} inputs failed")
        self.failed = failed
        self.total = total


def check_choice(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ConfigError` listing them."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value
