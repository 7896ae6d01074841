"""The word-level language-model networks, one module each: an RNN LM and the lecture's MLP n-gram LM.

RNN LM (lecture 2): ``p(y1 ... yn) = prod_i p(y_i | <bos>, y_1 ... y_{i-1})``, the hidden state read by a
softmax output layer. MLP n-gram LM (lecture 1, Bengio et al. 2003): ``x = [emb(y_{i-1}); ...; emb(y_{i-n+1})]``,
``z = σ(U1 x + b1)``, ``p(y_i | ...) = softmax(U2 z + b2)``. Each carries a state across windows of a stream
(the RNN its hidden state, the n-gram model its last ``n-2`` input words); ``rnnlab.tasks.lm`` trains them.

The output layer is a full softmax, or on request (``model.adaptive_softmax``) the adaptive softmax of Grave et
al. (2017): the most frequent words in a head softmax with one entry per tail cluster, rarer words in clusters
of shrinking projection size. It is a proper distribution over the whole vocabulary, so its perplexity is as
exact as the full softmax's; the vocabulary is already sorted by frequency (``Vocabulary.from_counts``).

A network is an ``nn.Module`` built as ``Network(model, lexicon)`` (the vocabulary as plain data:
``rnnlab.models.embeddings.Lexicon``), registered in ``LM_NETWORKS`` (``@LM_NETWORKS.register("name")``) in a
module of this package; ``model.architecture=<name>`` then selects it.
It has ``forward(tokens, mask, state) -> (scores, state)``, ``hidden`` (the same before the output layer and its
dropout), ``detach_state``, and ``head`` and ``dropout`` (the output layer and what it reads), as the two here do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.dropout import make_dropout
from rnnlab.heads import MLPHead
from rnnlab.heads.mlp import ACTIVATIONS
from rnnlab.models.embeddings import Lexicon, WordEmbedder
from rnnlab.registry import Registry

INIT_RANGE = 0.1  # embeddings uniform in ±0.1 (Zaremba et al. 2014; PyTorch's word_language_model)


def word_embedder(model: dict, lexicon: Lexicon) -> WordEmbedder:
    """The word embeddings of the ``model`` config, initialised uniformly in ``±INIT_RANGE``, padding zero."""
    embedder = WordEmbedder.from_config(model, lexicon)
    with torch.no_grad():
        embedder.embedding.weight.uniform_(-INIT_RANGE, INIT_RANGE)
        embedder.embedding.weight[lexicon.pad_id].zero_()
    return embedder


class SoftmaxHead(MLPHead):
    """``MLPHead`` whose scores are the logits of a full softmax over the vocabulary."""

    def token_nll(self, features: Tensor, targets: Tensor, ignore_index: int) -> Tensor:
        """``(B, T, H)`` features and ``(B, T)`` targets (``ignore_index`` where none is predicted) -> ``(N,)``
        NLL of every predicted token.

        The softmax is float32 even under bf16 autocast: the perplexity is only as exact as the log-probabilities.
        """
        targets = targets.flatten()
        nll = F.cross_entropy(self(features).flatten(0, 1).float(), targets, ignore_index=ignore_index,
                              reduction="none")
        return nll[targets != ignore_index]


class AdaptiveSoftmaxHead(nn.Module):
    """(Hidden layer ->) adaptive softmax (``torch.nn.AdaptiveLogSoftmaxWithLoss``) on features the language
    model has dropped already.

    Args:
        input_dim: size of the features.
        vocab_size: ``V``; ids must be sorted by decreasing frequency (the head holds the first ``cutoffs[0]``).
        cutoffs: increasing ids where the head and each tail cluster end, all in ``(0, V)``.
        div_value: each tail cluster's projection is ``div_value`` times smaller than the previous one's.
        hidden_dim: size of a hidden layer before the softmax; 0 for none.
        activation: of the hidden layer.
        dropout: on the hidden layer.
        dropout_kind: ``standard`` or ``locked`` (``rnnlab.dropout.make_dropout``).
    """

    def __init__(self, input_dim: int, vocab_size: int, cutoffs: list[int], div_value: float = 4.0,
                 hidden_dim: int = 0, activation: str = "tanh", dropout: float = 0.0, dropout_kind: str = "standard"):
        super().__init__()
        cutoffs = [int(cutoff) for cutoff in cutoffs]
        if not cutoffs or cutoffs != sorted(set(cutoffs)) or cutoffs[0] <= 0 or cutoffs[-1] >= vocab_size:
            raise ValueError(f"model.adaptive_softmax.cutoffs must increase strictly within (0, {vocab_size}) "
                             f"(the vocabulary's size), got {cutoffs}; drop the cut-offs at or past the "
                             f"vocabulary size, or set model.adaptive_softmax=null for the full softmax")
        # An identity where the features' dropout was (the language model applies it), so parameters keep their names.
        layers: list[nn.Module] = [nn.Identity()]
        if hidden_dim > 0:
            layers += [nn.Linear(input_dim, hidden_dim), ACTIVATIONS[activation](), make_dropout(dropout, dropout_kind)]
            input_dim = hidden_dim
        self.features = nn.Sequential(*layers)
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(input_dim, vocab_size, cutoffs, div_value=div_value)

    def forward(self, features: Tensor) -> Tensor:
        """``(..., H)`` -> ``(..., V)`` log-probabilities over the whole vocabulary."""
        hidden = self.features(features)
        with torch.autocast(hidden.device.type, enabled=False):
            return self.softmax.log_prob(hidden.flatten(0, -2).float()).view(*hidden.shape[:-1], -1)

    def token_nll(self, features: Tensor, targets: Tensor, ignore_index: int) -> Tensor:
        """``(B, T, H)`` features and ``(B, T)`` targets (``ignore_index`` where none is predicted) -> ``(N,)``
        NLL of every predicted token: only the clusters that hold a target are computed.

        The softmax layers run in float32, autocast or not (the module mixes its clusters' outputs in one
        float32 tensor, and the perplexity is only as exact as the log-probabilities).
        """
        targets = targets.flatten()
        predicted = targets != ignore_index
        hidden = self.features(features).flatten(0, 1)[predicted]  # (N, H)
        with torch.autocast(hidden.device.type, enabled=False):
            return -self.softmax(hidden.float(), targets[predicted]).output


def output_layer(model: dict, input_dim: int, embedder: WordEmbedder) -> SoftmaxHead | AdaptiveSoftmaxHead:
    """The softmax layer (optionally after the head's hidden layer), its weights tied to the embeddings on
    request (Press & Wolf 2017; Inan et al. 2017); or the adaptive softmax when ``model.adaptive_softmax`` holds
    its ``cutoffs`` (and optionally ``div_value``). It reads features dropped by the language model's ``dropout``."""
    vocab_size = embedder.embedding.num_embeddings
    kind = model.get("dropout_kind", "standard")
    adaptive = model.get("adaptive_softmax")
    if adaptive:
        if model["tie_weights"]:
            raise ValueError("model.tie_weights ties the embeddings to a full softmax; the adaptive softmax has "
                             "no single output matrix to tie: set model.tie_weights=false, or "
                             "model.adaptive_softmax=null")
        return AdaptiveSoftmaxHead(input_dim, vocab_size, adaptive["cutoffs"], adaptive.get("div_value", 4.0),
                                   model["head_hidden"], model["head_activation"], model["dropout"], kind)
    head = SoftmaxHead(input_dim, vocab_size, model["head_hidden"], model["head_activation"], model["dropout"], kind,
                       input_dropout=False)
    output = head.layers[-1]
    nn.init.zeros_(output.bias)
    if model["tie_weights"]:
        if output.in_features != embedder.embedding_dim:
            raise ValueError(
                f"model.tie_weights needs the output layer's input size ({output.in_features}: "
                f"head_hidden, or the encoder's hidden size when head_hidden=0) to equal "
                f"model.embedding_dim ({embedder.embedding_dim}); set model.head_hidden="
                f"{embedder.embedding_dim} to project, or make the sizes equal")
        output.weight = embedder.embedding.weight
    return head


LM_NETWORKS: Registry[type[nn.Module]] = Registry("language-model network", "model.architecture", package=__name__)
