"""The convolutional sentence encoder of Kim (2014), "Convolutional Neural Networks for Sentence Classification".

Filters of several widths slide over the word vectors; each feature map is max-pooled over time, and the
pooled features of all maps, concatenated, are the sentence vector.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from rnnlab.encoders.output import EncoderOutput

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}


class CNNEncoder(nn.Module):
    """Convolutions of several widths with masked max-over-time pooling.

    Every convolution is "wide": a sentence is zero-padded by ``width - 1`` vectors on each side, so each
    filter sees every token at every offset and a sentence shorter than the widest filter still has windows.
    A window is pooled only if it overlaps a real token, so padding never wins the max, and a sentence's
    vector does not depend on the batch it is in. The activation is applied after pooling, which is the
    same as before it because every allowed activation is monotone.

    Args:
        input_size: size of each word vector.
        filter_widths: window sizes in tokens (Kim: 3, 4, 5).
        num_filters: feature maps per width (Kim: 100).
        activation: ``relu`` (Kim), ``tanh`` or ``identity``.
    """

    def __init__(self, input_size: int, filter_widths: Sequence[int] = (3, 4, 5), num_filters: int = 100,
                 activation: str = "relu"):
        super().__init__()
        if not filter_widths or min(filter_widths) < 1:
            raise ValueError(f"filter_widths must be positive window sizes, got {list(filter_widths)}")
        if num_filters < 1:
            raise ValueError(f"num_filters must be >= 1, got {num_filters}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.filter_widths = list(filter_widths)
        self.num_filters = num_filters
        self.convolutions = nn.ModuleList(nn.Conv1d(input_size, num_filters, width, padding=width - 1)
                                          for width in self.filter_widths)
        self.activation = ACTIVATIONS[activation]()

    def get_output_dim(self) -> int:
        """Size of the sentence vector: one pooled feature per map."""
        return self.num_filters * len(self.filter_widths)

    def forward(self, x: Tensor, mask: Tensor) -> EncoderOutput:
        """Encodes a padded batch.

        Args:
            x: ``(B, T, I)`` right-padded word vectors.
            mask: ``(B, T)`` bool, True at real tokens (a prefix of each row).

        Returns:
            ``EncoderOutput`` whose ``sentence`` is the ``(B, D)`` pooled vectors, ``D = get_output_dim()``
            (zeros for an empty sentence); no token outputs, no states.
        """
        lengths = mask.sum(dim=1, keepdim=True)  # (B, 1)
        x = (x * mask.unsqueeze(-1)).transpose(1, 2)  # (B, I, T): padding reads as the zero vectors of a wide conv
        pooled = []
        for width, convolution in zip(self.filter_widths, self.convolutions):
            maps = convolution(x)  # (B, F, T + width - 1); window t covers tokens t - width + 1 .. t
            windows = torch.arange(maps.shape[-1], device=x.device)  # (T + width - 1,)
            real = windows < lengths + width - 1  # (B, T + width - 1): overlaps a real token
            maps = maps.masked_fill(~real.unsqueeze(1), torch.finfo(maps.dtype).min)
            pooled.append(maps.max(dim=-1).values)  # (B, F)
        sentence = torch.cat(pooled, dim=-1)  # (B, D)
        return EncoderOutput(None, self.activation(sentence) * (lengths > 0), [])
