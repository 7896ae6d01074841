"""The MLP n-gram LM (lecture 1, Bengio et al. 2003): the softmax reads the last ``n-1`` words' embeddings."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.dropout import make_dropout
from rnnlab.models.embeddings import Lexicon
from rnnlab.models.lm import LM_NETWORKS, output_layer, word_embedder


@LM_NETWORKS.register("ngram_mlp")
class NGramMLPLanguageModel(nn.Module):
    """The MLP n-gram LM: ``p(y_i | y_{i-1} ... y_{i-n+1})`` from the concatenated embeddings.

    Args:
        model: the ``model`` config: ``order`` (n; 3 is the lecture's 2nd-order Markov chain),
            ``embedding_dim``, ``embedding_dropout``, ``word_dropout``, ``head_hidden`` (size of ``z``),
            ``head_activation`` (``sigmoid``: the lecture's σ), ``dropout``, ``tie_weights``, ``adaptive_softmax``.
        lexicon: the word vocabulary.
    """

    def __init__(self, model: dict, lexicon: Lexicon):
        super().__init__()
        self.order = int(model["order"])
        if self.order < 2:
            raise ValueError(f"model.order of an n-gram LM must be >= 2 (n-1 previous words), got {self.order}")
        if model["head_hidden"] <= 0:
            raise ValueError("model.head_hidden of the MLP n-gram LM must be positive: the size of its hidden layer")
        self.pad_id = lexicon.pad_id
        self.embedder = word_embedder(model, lexicon)
        self.dropout = make_dropout(model["dropout"], model.get("dropout_kind", "standard"))  # what the head reads
        self.head = output_layer(model, (self.order - 1) * self.embedder.embedding_dim, self.embedder)

    def hidden(self, tokens: Tensor, mask: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(B, T)`` ids, the previous window's last ``n-2`` ids -> ``(B, T, (n-1)E)`` the concatenated
        embeddings before ``dropout``, new state.

        Before the first window the context is padding (a zero vector), as for any unknown history.
        """
        if state is None:
            state = tokens.new_full((tokens.shape[0], self.order - 2), self.pad_id)
        context = torch.cat([state, tokens], dim=1)  # (B, n-2+T)
        # Window t holds y_{t-n+2} ... y_t; flipped so the most recent word comes first, as on the slide.
        windows = context.unfold(1, self.order - 1, 1).flip(-1)  # (B, T, n-1)
        x = self.embedder(windows).flatten(2)  # (B, T, (n-1)E)
        return x, context[:, context.shape[1] - (self.order - 2):]

    def forward(self, tokens: Tensor, mask: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(B, T)`` ids, the previous window's last ``n-2`` ids -> ``(B, T, V)`` scores, new state."""
        hidden, state = self.hidden(tokens, mask, state)
        return self.head(self.dropout(hidden)), state

    @staticmethod
    def detach_state(state: Tensor) -> Tensor:
        return state  # word ids: no history to cut
