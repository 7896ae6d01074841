"""Bahdanau et al. (2015): ``score(h, k) = v^T tanh(W_q h + W_k k)``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.models.attention import SCORES, Attention


@SCORES.register("additive")
class AdditiveAttention(Attention):
    """A one-hidden-layer MLP over query and key, ``attention_size`` wide (None: the decoder's hidden size)."""

    def __init__(self, query_size: int, key_size: int, attention_size: int | None = None):
        super().__init__(query_size, key_size, attention_size)
        size = attention_size or query_size
        self.query = nn.Linear(query_size, size, bias=False)
        self.key = nn.Linear(key_size, size)
        self.v = nn.Linear(size, 1, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return self.key(keys)  # (B, S, A): W_k k

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        hidden = torch.tanh(self.query(query).unsqueeze(2) + prepared.unsqueeze(1))  # (B, T, S, A)
        return self.v(hidden).squeeze(-1)  # (B, T, S)
