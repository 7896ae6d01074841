"""Encoders from the ``model`` config, shared by the tasks and by the character-level word features."""

from __future__ import annotations

from hydra.utils import instantiate
from torch import nn

from rnnlab.encoders.rnn import RNNEncoder


def build_encoder(model: dict, input_size: int) -> RNNEncoder:
    """The encoder of a ``model`` config: ``model.encoder`` (a partial) given ``model.cell`` (a partial), with
    ``model.dropout_kind`` and ``model.weight_drop`` (absent from older checkpoints and from ``model.chars``:
    standard dropout, no weight drop)."""
    cell = instantiate(model["cell"])  # a cell factory: (input_size, hidden_size) -> cell
    return instantiate(model["encoder"])(cell=cell, input_size=input_size,
                                         dropout_kind=model.get("dropout_kind", "standard"),
                                         weight_drop=model.get("weight_drop", 0.0))


def build_sentence_encoder(model: dict, input_size: int) -> nn.Module:
    """A recurrent encoder when the config has a ``cell``, else ``model.encoder`` alone (the CNN)."""
    if model.get("cell") is not None:
        return build_encoder(model, input_size)
    if model.get("weight_drop", 0.0):
        raise ValueError("model.weight_drop drops a recurrent cell's hidden-to-hidden weights; this encoder has no "
                         "cell: set model.weight_drop=0")
    return instantiate(model["encoder"])(input_size=input_size)
