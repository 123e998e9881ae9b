"""The one exception type for user errors: a single line saying what and how to fix it,
and the exit status each kind of failure gives (the CLI and the flow scripts alike)."""

EXIT_INTERNAL = 1      # a bug or an unexpected failure: not the user's to fix
EXIT_USER_ERROR = 2    # a CatvecError: bad input, config or files
EXIT_NOT_PROMOTED = 3  # NotPromoted: a candidate version was written, latest did not move


class CatvecError(Exception):
    """A problem with the user's input, config or files.

    The message is one line that names the file, column or value and what to do.
    The CLI prints it without a traceback and exits with status 2 (`exit_code`).
    """

    exit_code = EXIT_USER_ERROR


class InputNotFound(CatvecError):
    """An input file or weight directory does not exist (yet).

    Scheduled flows retry on this one, since an upstream job may still be writing it;
    every other CatvecError fails at once.
    """


class NotPromoted(CatvecError):
    """A new version was written in full but `latest` did not move to it: the promotion gate
    found its drift or its quality out of bounds. The version stays as a candidate
    (`catvec promote OUT VERSION` publishes it); the CLI exits with status 3."""

    exit_code = EXIT_NOT_PROMOTED

    def __init__(self, message: str, version: str = "", path=None, gate: dict | None = None):
        super().__init__(message)
        self.version, self.path, self.gate = version, path, gate or {}


class WriteError(CatvecError, OSError):
    """A file could not be written (no space, a read-only file system, no permission): one
    line naming the path and why. Also an OSError, so code that tolerates a failed optional
    write (a cache, a baseline) keeps tolerating it; nothing half-written is left behind."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library messages can run to many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
