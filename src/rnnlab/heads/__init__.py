"""Output layers on top of encoders."""

from rnnlab.heads.mlp import MLPHead

__all__ = ["MLPHead"]
