"""Errors for bad data, each naming the file (and line) and saying how to fix it."""

from rnnlab.errors import UserError


class DataError(UserError, ValueError):
    """Bad or missing data; the message names the file/line or the option and how to fix it."""
