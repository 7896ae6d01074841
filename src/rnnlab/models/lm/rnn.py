"""The RNN LM (lecture 2): embeddings -> unidirectional encoder -> (MLP) -> softmax over the vocabulary."""

from __future__ import annotations

from torch import Tensor, nn

from rnnlab.dropout import make_dropout
from rnnlab.encoders import build_encoder
from rnnlab.models.embeddings import Lexicon
from rnnlab.models.lm import LM_NETWORKS, output_layer, word_embedder


@LM_NETWORKS.register("rnn")
class RNNLanguageModel(nn.Module):
    """Embeddings -> unidirectional encoder -> (MLP) -> scores over the vocabulary.

    Args:
        model: the ``model`` config: ``embedding_dim``, ``embedding_dropout``, ``word_dropout``, ``cell``,
            ``encoder``, ``head_hidden`` (0 for the lecture's output layer on ``h``), ``head_activation``,
            ``dropout`` (on the encoder output), ``dropout_kind``, ``word_type_dropout``, ``weight_drop``,
            ``tie_weights``, ``adaptive_softmax`` (None, or ``{cutoffs, div_value}``).
        lexicon: the word vocabulary.
    """

    def __init__(self, model: dict, lexicon: Lexicon):
        super().__init__()
        self.embedder = word_embedder(model, lexicon)
        self.encoder = build_encoder(model, self.embedder.embedding_dim)
        if self.encoder.bidirectional or any(direction.reverse for layer in self.encoder.layers
                                             for direction in layer):
            raise ValueError("a language model predicts each word from the words before it, so its encoder "
                             "must read left to right: use a unidirectional model (model=lstm, rnn, cifg, "
                             "peephole) with model.encoder.bidirectional=false and model.encoder.reverse=false")
        self.dropout = make_dropout(model["dropout"], model.get("dropout_kind", "standard"))  # what the head reads
        self.head = output_layer(model, self.encoder.get_output_dim(), self.embedder)

    def hidden(self, tokens: Tensor, mask: Tensor, state: list | None = None) -> tuple[Tensor, list]:
        """``(B, T)`` ids and mask, state from the previous window -> ``(B, T, H)`` the top layer's outputs before
        ``dropout``, new state."""
        encoded = self.encoder(self.embedder(tokens), mask, state)
        return encoded.outputs, encoded.final_states

    def forward(self, tokens: Tensor, mask: Tensor, state: list | None = None) -> tuple[Tensor, list]:
        """``(B, T)`` ids and mask, state from the previous window -> ``(B, T, V)`` scores, new state."""
        hidden, state = self.hidden(tokens, mask, state)
        return self.head(self.dropout(hidden)), state

    @staticmethod
    def detach_state(state: list) -> list:
        """The state with its history cut: the next window back-propagates only into itself."""
        return [[tuple(s.detach() for s in direction) for direction in layer] for layer in state]
