"""Attention of a decoder state over the encoder's token outputs: additive and multiplicative scores.

At each output step the decoder's top-layer state ``h`` (the query) scores every source position's encoder
output ``k`` (a key); a softmax over the real source positions turns the scores into weights ``a`` and the
context ``c = sum_s a_s k_s`` is their weighted average. Luong et al. (2015) then form the attentional state
``tanh(W_c [c; h])``, which the output layer reads (``RNNDecoder`` does that part).

- ``additive`` (Bahdanau et al. 2015): ``v^T tanh(W_q h + W_k k)``;
- ``dot`` (Luong et al. 2015): ``h^T k``, which needs the decoder's hidden size to equal the key size;
- ``general`` (Luong et al. 2015): ``h^T W k``.

Everything that depends on the keys alone (``W_k k``, ``W k``) is computed once per sentence by ``prepare``, so
a generation step costs one projection of the query and the scores.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.errors import UserError

SCORES = ("additive", "dot", "general")
KINDS = ("none", *SCORES)


class Attention(nn.Module):
    """One of the three scores, with masking and the weighted average of the keys.

    Args:
        kind: one of ``SCORES``.
        query_size: ``H``, the decoder's hidden size.
        key_size: ``D``, the size of the encoder's token outputs.
        attention_size: width of the additive score's hidden layer (None: ``query_size``); unused otherwise.

    Raises:
        UserError: an unknown kind, or ``dot`` with ``H != D``.
    """

    def __init__(self, kind: str, query_size: int, key_size: int, attention_size: int | None = None):
        super().__init__()
        if kind not in SCORES:
            raise UserError(f"model.decoder.attention.kind must be one of {SCORES} (or none), got {kind!r}")
        if kind == "dot" and query_size != key_size:
            raise UserError(f"model.decoder.attention.kind=dot needs the decoder's hidden size ({query_size}) to "
                            f"equal the encoder's output size ({key_size}); use kind=general or additive, or "
                            f"set model.decoder.hidden_size={key_size}")
        self.kind = kind
        if kind == "additive":
            size = attention_size or query_size
            self.query = nn.Linear(query_size, size, bias=False)
            self.key = nn.Linear(key_size, size)
            self.v = nn.Linear(size, 1, bias=False)
        elif kind == "general":
            self.key = nn.Linear(key_size, query_size, bias=False)  # W k: h^T (W k) = h^T W k

    def prepare(self, keys: Tensor) -> Tensor:
        """``(B, S, D)`` keys -> their query-independent part of the score: ``W_k k`` (additive, ``(B, S, A)``),
        ``W k`` (general, ``(B, S, H)``) or the keys themselves (dot)."""
        return keys if self.kind == "dot" else self.key(keys)

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
        if self.kind == "additive":
            hidden = torch.tanh(self.query(query).unsqueeze(2) + prepared.unsqueeze(1))  # (B, T, S, A)
            scores = self.v(hidden).squeeze(-1)  # (B, T, S)
        else:
            scores = query @ prepared.transpose(1, 2)  # (B, T, S)
        # -inf before the softmax: padding gets weight exp(-inf) = 0, not merely a small one.
        scores = scores.masked_fill(~mask.unsqueeze(1), -torch.inf)
        weights = torch.softmax(scores, dim=-1)  # (B, T, S)
        context = weights @ keys  # (B, T, D)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights
