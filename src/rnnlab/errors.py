"""Errors the user can fix, and how the command-line entry points report them."""

from __future__ import annotations

import functools
import sys
from typing import Callable

USER_ERROR_EXIT = 2  # as argparse exits on a bad command line


class UserError(Exception):
    """A problem with the user's files or options; the message names the file/line or the option and the fix."""


def report_user_errors(main: Callable) -> Callable:
    """Wraps an entry point: a ``UserError`` prints ``error: <message>`` to stderr and exits with status 2.

    The traceback of such an error says nothing the message does not, so it is not shown; any other exception
    keeps its traceback (it is a bug, not a bad input).
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            sys.stderr.flush()
            print(f"error: {error}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT)

    return wrapper
