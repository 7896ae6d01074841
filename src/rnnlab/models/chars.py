"""Character-level word features: each word read as a "sentence" of characters by a sentence encoder.

With the CNN encoder (one width, max-pooled over the word) this is the character CNN of Ma & Hovy (2016); with a
BiLSTM encoder, whose sentence vector is the last forward state ⊕ the backward state at the first character,
the character BiLSTM of Lample et al. (2016). The tagger concatenates the feature to the word vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.encoders import build_sentence_encoder
from rnnlab.models.embeddings import Lexicon


class CharEncoder(nn.Module):
    """Character vectors -> an encoder over the characters of each real word -> one vector per word.

    Args:
        num_chars: size of the character vocabulary.
        pad_id: character padding id (its vector stays zero).
        embedding_dim: size of each character vector.
        encoder: reads ``(N, L, embedding_dim)`` characters with their ``(N, L)`` mask and returns a word
            vector per row (``EncoderOutput.sentence``), of size ``encoder.get_output_dim()``.
        dropout: dropout on the character vectors.
    """

    def __init__(self, num_chars: int, pad_id: int, embedding_dim: int, encoder: nn.Module, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, embedding_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.encoder = encoder
        self.pad_id = pad_id

    @classmethod
    def from_config(cls, chars: dict, lexicon: Lexicon) -> "CharEncoder":
        """From a ``model.chars`` config: ``embedding_dim``, ``dropout``, ``encoder`` (and ``cell`` if recurrent)."""
        encoder = build_sentence_encoder(chars, chars["embedding_dim"])
        return cls(len(lexicon.words), lexicon.pad_id, chars["embedding_dim"], encoder, chars["dropout"])

    def get_output_dim(self) -> int:
        return self.encoder.get_output_dim()

    def forward(self, chars: Tensor, mask: Tensor) -> Tensor:
        """Word features of a padded batch.

        Args:
            chars: ``(B, T, L)`` character ids of each word, right-padded with ``pad_id``.
            mask: ``(B, T)`` bool, True at real tokens.

        Returns:
            ``(B, T, D)`` word features, zero at padding; a word's feature does not depend on its batch.
        """
        # Only the real words, each spelling once: padding costs nothing and frequent words are read once.
        words, inverse = torch.unique(chars[mask], dim=0, return_inverse=True)  # (N, L), (W,)
        char_mask = words != self.pad_id  # (N, L)
        features = self.encoder(self.dropout(self.embedding(words)), char_mask).sentence  # (N, D)
        out = features.new_zeros(*mask.shape, features.shape[-1])  # (B, T, D)
        out[mask] = features[inverse]
        return out
