"""Attention of a decoder state over the encoder's token outputs, one score per module of this package.

At each output step the decoder's top-layer state ``h`` (the query) scores every source position's encoder
output ``k`` (a key); a softmax over the real source positions turns the scores into weights ``a`` and the
context ``c = sum_s a_s k_s`` is their weighted average. Luong et al. (2015) then form the attentional state
``tanh(W_c [c; h])``, which the output layer reads (``RNNDecoder`` does that part).

A score is an ``Attention`` subclass registered in ``SCORES`` (``@SCORES.register("name")``) in a module of this
package, plus ``conf/model/attention/<name>.yaml``; ``model/attention=<name>`` then selects it. Everything that
depends on the keys alone is computed once per sentence by ``prepare``, so a generation step costs one
projection of the query and the scores.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.registry import Registry


class Attention(nn.Module):
    """Masking and the weighted average of the keys around a score, which subclasses define.

    Args:
        query_size: ``H``, the decoder's hidden size.
        key_size: ``D``, the size of the encoder's token outputs.
        attention_size: a hidden width for scores that have one (None: ``query_size``).
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int | None = None):
        super().__init__()

    def prepare(self, keys: Tensor) -> Tensor:
        """``(B, S, D)`` keys -> their query-independent part of the score (the keys themselves by default)."""
        return keys

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        """``(B, T, H)`` queries and ``prepare(keys)`` -> ``(B, T, S)`` unnormalised scores."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, prepared: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Attends from each query over its sentence's source positions.

        Args:
            query: ``(B, H)`` one decoder state per sentence, or ``(B, T, H)`` one per output position.
            keys: ``(B, S, D)`` the encoder's token outputs.
            prepared: ``prepare(keys)``.
            mask: ``(B, S)`` bool, True at real source tokens.

        Returns:
            The context ``(B, D)`` / ``(B, T, D)`` and the weights ``(B, S)`` / ``(B, T, S)``; padding gets
            exactly zero weight.
        """
        single = query.dim() == 2
        if single:
            query = query.unsqueeze(1)  # (B, 1, H)
        scores = self.score(query, prepared)  # (B, T, S)
        # -inf before the softmax: padding gets weight exp(-inf) = 0, not merely a small one.
        scores = scores.masked_fill(~mask.unsqueeze(1), -torch.inf)
        weights = torch.softmax(scores, dim=-1)  # (B, T, S)
        context = weights @ keys  # (B, T, D)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights


SCORES: Registry[type[Attention]] = Registry("attention score", "model.decoder.attention.kind", package=__name__)


def build_attention(kind: str, query_size: int, key_size: int, attention_size: int | None = None) -> Attention:
    """The score registered as ``kind``, sized for the decoder and the encoder (see ``Attention``).

    Raises:
        UserError: an unknown kind, or sizes the score cannot take.
    """
    return SCORES[kind](query_size, key_size, attention_size)
