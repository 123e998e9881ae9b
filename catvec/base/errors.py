"""The one exception type for user errors: a single line saying what and how to fix it."""


class CatvecError(Exception):
    """A problem with the user's input, config or files.

    The message is one line that names the file, column or value and what to do.
    The CLI prints it without a traceback and exits with status 2.
    """


class InputNotFound(CatvecError):
    """An input file or weight directory does not exist (yet).

    Scheduled flows retry on this one, since an upstream job may still be writing it;
    every other CatvecError fails at once.
    """
