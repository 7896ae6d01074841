"""Output layers on top of encoders."""

from rnnlab.heads.crf import CRF
from rnnlab.heads.mlp import MLPHead

__all__ = ["CRF", "MLPHead"]
