"""Logger factories that need a decision at run time."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger


def wandb_has_key() -> bool:
    """Whether a W&B API key is configured: ``WANDB_API_KEY`` or an ``api.wandb.ai`` entry in ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(**kwargs) -> WandbLogger:
    """A ``WandbLogger`` that runs offline unless a key is configured or ``WANDB_MODE`` says otherwise."""
    if "WANDB_MODE" not in os.environ:
        kwargs.setdefault("offline", not wandb_has_key())
    return WandbLogger(**kwargs)
