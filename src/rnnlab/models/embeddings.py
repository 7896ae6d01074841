"""Word embeddings with the dropouts that recurrent NLP models use on their input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.dropout import make_dropout


@dataclass(frozen=True)
class Lexicon:
    """What a model needs of a vocabulary, as plain data: the model layer never reads the data layer's classes.

    Attributes:
        words: the entries in id order; their number sizes the embedding, and pretrained vectors are found by them.
        pad_id: the padding id (its vector stays zero).
        unk_id: the id that stands for unknown words (word dropout substitutes it).
    """

    words: Sequence[str]
    pad_id: int
    unk_id: int


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
        pretrained_vectors: optional vectors: a named source or a file (see ``rnnlab.data.pretrained``), read
            by the task at the start of a fresh training run, never when weights come from a checkpoint.
        words: the vocabulary in id order; needed with ``pretrained_vectors``.
        freeze: keep the vectors fixed during training.
        dropout_kind: of ``dropout``: ``standard`` or ``locked`` (one mask per sentence; ``rnnlab.dropout``).
        word_type_dropout: training-time probability of dropping a word type: its vector is zero at every
            occurrence in the batch, the kept vectors scaled by ``1/(1-p)`` (Gal & Ghahramani 2016; Merity et al.
            2018). The matrix itself stays as it is, so a tied output layer reads it whole.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, pad_id: int, unk_id: int, dropout: float = 0.0,
                 word_dropout: float = 0.0, pretrained_vectors: str | None = None, words: Sequence[str] = (),
                 freeze: bool = False, dropout_kind: str = "standard", word_type_dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout}")
        if not 0.0 <= word_type_dropout < 1.0:
            raise ValueError(f"model.word_type_dropout must be in [0, 1), got {word_type_dropout}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.dropout = make_dropout(dropout, dropout_kind)
        self.word_type_dropout = word_type_dropout
        self.unk_id = unk_id
        self.pad_id = pad_id
        self.word_dropout = word_dropout
        if pretrained_vectors and len(words) != vocab_size:
            raise ValueError(f"pretrained vectors need the {vocab_size} vocabulary words, got {len(words)}")
        self.pretrained_vectors = pretrained_vectors
        self.words = list(words) if pretrained_vectors else []
        self.embedding.weight.requires_grad_(not freeze)

    @classmethod
    def from_config(cls, model: dict, lexicon: Lexicon) -> "WordEmbedder":
        """From a ``model`` config: ``embedding_dim``, ``embedding_dropout``, ``word_dropout``,
        ``pretrained_vectors`` (a named source, a file path or null), ``freeze_embeddings``, ``dropout_kind`` and
        ``word_type_dropout``."""
        # .get for the later options: checkpoints older than them lack the keys.
        return cls(len(lexicon.words), model["embedding_dim"], lexicon.pad_id, lexicon.unk_id,
                   model["embedding_dropout"], model["word_dropout"],
                   model.get("pretrained_vectors"), lexicon.words, model.get("freeze_embeddings", False),
                   model.get("dropout_kind", "standard"), model.get("word_type_dropout", 0.0))

    @property
    def embedding_dim(self) -> int:
        return self.embedding.embedding_dim

    def forward(self, tokens: Tensor) -> Tensor:
        """``(B, T)`` ids -> ``(B, T, E)`` vectors."""
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout) & (tokens != self.pad_id)
            tokens = tokens.masked_fill(drop, self.unk_id)
        weight = self.embedding.weight  # (V, E)
        if self.training and self.word_type_dropout > 0:
            keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1.0 - self.word_type_dropout)  # (V, 1): per type
            weight = weight * keep / (1.0 - self.word_type_dropout)
        return self.dropout(F.embedding(tokens, weight, self.pad_id))
