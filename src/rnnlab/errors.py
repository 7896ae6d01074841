"""User errors: mistakes in the input or the environment that a message fixes, shown without a traceback.

Raise ``UserError`` (or a subclass such as ``rnnlab.data.errors.DataError``) with a message that names the file,
the option or the step and says what to do; wrap an entry point in ``main_guard``::

    @hydra.main(...)
    @main_guard
    def main(cfg): ...
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, NoReturn, TypeVar

F = TypeVar("F", bound=Callable)

USER_ERROR_EXIT = 2  # as argparse exits on a bad command line


class UserError(Exception):
    """An error the user fixes; its message is one paragraph, ``exit_code`` the process's exit status.

    Args:
        message: what went wrong, naming the file/option/step, and how to fix it.
        exit_code: status to exit with (2; 143 = 128 + SIGTERM for a run stopped by SIGTERM).
    """

    def __init__(self, message: str, exit_code: int = USER_ERROR_EXIT):
        super().__init__(message)
        self.exit_code = exit_code


def report(error: UserError) -> NoReturn:
    """Prints ``error: <message>`` to stderr and exits with the error's code."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def main_guard(main: F) -> F:
    """Runs an entry point so that a ``UserError`` prints ``error: <message>`` to stderr and exits with its code.

    Files already written (checkpoints, logs) stay. In a Hydra multirun the error is raised on instead, so the
    sweeper records the job as failed and applies its own failure policy.
    """

    @functools.wraps(main)
    def guarded(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            if _in_sweep():
                raise
            report(error)

    return guarded  # type: ignore[return-value]
