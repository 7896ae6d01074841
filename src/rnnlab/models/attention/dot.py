"""Luong et al. (2015): ``score(h, k) = h^T k``, which needs the decoder's hidden size to equal the key size."""

from __future__ import annotations

from torch import Tensor

from rnnlab.errors import UserError
from rnnlab.models.attention import SCORES, Attention


@SCORES.register("dot")
class DotAttention(Attention):
    """No parameters: the query is compared with the keys as they are.

    Raises:
        UserError: ``query_size != key_size``.
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int | None = None):
        super().__init__(query_size, key_size, attention_size)
        if query_size != key_size:
            raise UserError(f"model.decoder.attention.kind=dot needs the decoder's hidden size ({query_size}) to "
                            f"equal the encoder's output size ({key_size}); use kind=general or additive, or "
                            f"set model.decoder.hidden_size={key_size}")

    def score(self, query: Tensor, prepared: Tensor) -> Tensor:
        return query @ prepared.transpose(1, 2)  # (B, T, S)
