"""User errors: mistakes in the input or the environment that a message fixes, shown without a traceback.

Raise ``UserError`` (or a subclass such as ``rnnlab.data.errors.DataError``) with a message that names the file,
the option or the step and says what to do; wrap an entry point in ``main_guard``::

    @hydra.main(...)
    @main_guard
    def main(cfg): ...
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, NoReturn, TypeVar

F = TypeVar("F", bound=Callable)

USER_ERROR_EXIT = 2  # as argparse exits on a bad command line
SIGTERM_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process a SIGTERM ended
BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a reader that stopped early


class UserError(Exception):
    """An error the user fixes; its message is one paragraph, ``exit_code`` the process's exit status.

    Args:
        message: what went wrong, naming the file/option/step, and how to fix it.
        exit_code: status to exit with (2; ``Stopped`` exits with 143).
    """

    def __init__(self, message: str, exit_code: int = USER_ERROR_EXIT):
        super().__init__(message)
        self.exit_code = exit_code


class Stopped(UserError):
    """A run stopped by SIGTERM after saving its checkpoint; exits with 143 (128 + SIGTERM).

    Args:
        message: where the checkpoint is and how to resume.
    """

    def __init__(self, message: str):
        super().__init__(message, exit_code=SIGTERM_EXIT)


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
    sweeper records the job as failed and applies its own failure policy. A reader that closes stdout early
    (``predict.py ... | head``) ends the run quietly with status 141, as a shell tool would.
    """

    @functools.wraps(main)
    def guarded(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            if _in_sweep():
                raise
            report(error)
        except BrokenPipeError:
            # Point stdout at /dev/null so that flushing it at exit does not raise a second time.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(BROKEN_PIPE_EXIT)

    return guarded  # type: ignore[return-value]
