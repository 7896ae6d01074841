"""Word embeddings with the dropouts that recurrent NLP models use on their input."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class WordEmbedder(nn.Module):
    """Looks up word vectors.

    Args:
        vocab_size: number of word ids.
        embedding_dim: size of each vector.
        pad_id: padding id (its vector stays zero).
        unk_id: id that word dropout substitutes.
        dropout: dropout on the vectors.
        word_dropout: training-time probability of replacing a real word by ``<unk>``, so the model learns a
            useful unknown-word vector for the rare and unseen words of test data.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, pad_id: int, unk_id: int, dropout: float = 0.0,
                 word_dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.unk_id = unk_id
        self.pad_id = pad_id
        self.word_dropout = word_dropout

    @property
    def embedding_dim(self) -> int:
        return self.embedding.embedding_dim

    def forward(self, tokens: Tensor) -> Tensor:
        """``(B, T)`` ids -> ``(B, T, E)`` vectors."""
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout) & (tokens != self.pad_id)
            tokens = tokens.masked_fill(drop, self.unk_id)
        return self.dropout(self.embedding(tokens))
