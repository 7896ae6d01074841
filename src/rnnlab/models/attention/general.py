"""Luong et al. (2015): ``score(h, k) = h^T W k``, any pair of sizes."""

from __future__ import annotations

from torch import Tensor, nn

from rnnlab.models.attention import SCORES, Attention


@SCORES.register("general")
class GeneralAttention(Attention):
    """A bilinear score; ``W k`` is computed once per sentence."""

    def __init__(self, query_size: int, key_size: int, attention_size: int | None = None):
        super().__init__(query_size, key_size, attention_size)
        self.key = nn.Linear(key_size, query_size, bias=False)

    def prepare(self, keys: Tensor) -> Tensor:
        return self.key(keys)  # (B, S, H): W k

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        return query @ prepared.transpose(1, 2)  # (B, T, S): h^T (W k)
