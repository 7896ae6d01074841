"""The one model builder: word embedder (⊕ character features) → encoder → MLP head, from the ``model`` config.

The tagging, classification and translation tasks assemble their models here and keep the parts under the same
names (``embedder``, ``char_encoder``, ``encoder``, ``head``), so checkpoints load as before. The parts are built
in this order, the order their parameters are drawn in, so a seed gives the model it always gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from torch import nn

from rnnlab.encoders import build_encoder, build_sentence_encoder
from rnnlab.heads import MLPHead
from rnnlab.models.chars import CharEncoder
from rnnlab.models.embeddings import Lexicon, WordEmbedder


@dataclass
class WordModel:
    """The parts of a model over words.

    Attributes:
        embedder: word ids ``(B, T)`` -> vectors ``(B, T, E)``.
        char_encoder: character ids ``(B, T, L)`` -> word features ``(B, T, D)``, concatenated to the word
            vectors; None without ``model.chars``.
        encoder: the encoder over the word features.
        head: the MLP over the encoder's outputs; None when the task brings its own (the translation decoder).
    """

    embedder: WordEmbedder
    char_encoder: CharEncoder | None
    encoder: nn.Module
    head: MLPHead | None


def build_word_model(model: Mapping[str, Any], words: Lexicon, num_outputs: int | None = None,
                     chars: Lexicon | None = None, sentence: bool = False) -> WordModel:
    """Assembles a model from the ``model`` config.

    Args:
        model: the ``model`` config: ``embedding_dim`` and the embedder's options, ``chars`` (null or a character
            encoder, see ``CharEncoder.from_config``), ``cell``, ``encoder``, ``head_hidden``, ``head_activation``,
            ``dropout``.
        words: the input words' vocabulary.
        num_outputs: classes of the MLP head; None for no head.
        chars: the characters' vocabulary, with ``model.chars``.
        sentence: the task reads sentence vectors, so an encoder without a cell (the CNN) may serve.
    """
    embedder = WordEmbedder.from_config(model, words)
    char_encoder = CharEncoder.from_config(model["chars"], chars) if model.get("chars") else None
    input_size = embedder.embedding_dim + (char_encoder.get_output_dim() if char_encoder else 0)
    encoder = (build_sentence_encoder if sentence else build_encoder)(model, input_size)
    head = None if num_outputs is None else MLPHead(encoder.get_output_dim(), num_outputs, model["head_hidden"],
                                                    model["head_activation"], model["dropout"],
                                                    model.get("dropout_kind", "standard"))
    return WordModel(embedder, char_encoder, encoder, head)
