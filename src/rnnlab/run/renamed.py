"""Config choices that were renamed: an old command line stops with one line that names its replacement."""

from __future__ import annotations

from rnnlab.errors import UserError

# "group=old choice": what replaces it on the command line
RENAMED = {
    "task=sst2": "task=classify data=sst2",
    "task=sst5": "task=classify data=sst5",
}


def refuse_renamed(overrides: list[str]) -> None:
    """Stops a command line that picks a renamed choice, also inside a sweep list (``task=ner,sst2``).

    Raises:
        UserError: naming the old choice and its replacement.
    """
    for override in overrides:
        key, _, values = override.lstrip("+~").partition("=")
        for value in values.split(","):
            replacement = RENAMED.get(f"{key}={value}")
            if replacement:
                raise UserError(f"{key}={value} is now {replacement}: task= picks the task family, data= its "
                                f"dataset")
