"""The one error class for mistakes in what a user gave: a file, an option, a parameter value.

Every tool and node reports a :class:`UserError` as one line naming the file, option or
parameter and the reason, and exits with status 2 (``docs/ros.md``, "Start-up errors"). Any
other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class UserError(ValueError):
    """Something the user gave cannot be used; the message names it and says why.

    A ``ValueError``, so code that validates and catches ``ValueError`` keeps working.
    """


class MessageDecodeError(ValueError):
    """A received message (image, point cloud) that cannot be used; not the user's mistake
    at start-up but bad input at run time: counted and reported, never fatal.

    :ivar kind: a short stable string naming the defect, for throttled logging and counters.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@contextmanager
def user_input(what: str = '') -> Iterator[None]:
    """Treat a ``ValueError`` or ``OSError`` raised inside the block as the user's mistake.

    Wrap only code that reads or validates what the user named (a file, an option value), so
    that a bug elsewhere still surfaces with its traceback.

    :param what: prefixed to the message when it does not already name it (``'--config'``).
    :raises UserError: instead of the ``ValueError`` / ``OSError``.
    """
    try:
        yield
    except UserError:
        raise
    except (ValueError, OSError) as error:
        message = str(error) or type(error).__name__
        if isinstance(error, OSError) and error.filename is not None and error.strerror:
            message = f'{error.filename}: {error.strerror}'
        if what and what not in message:
            message = f'{what}: {message}'
        raise UserError(message) from error
