"""Sequence tagging (POS, NER): word (⊕ character) features -> encoder -> a shared MLP per token -> softmax or CRF."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from rnnlab.config import with_model_defaults
from rnnlab.data.formats import COLUMN_FORMATS
from rnnlab.data.special import IGNORE_INDEX
from rnnlab.data.tagging import TaggingDataModule
from rnnlab.data.vocab import Vocabulary
from rnnlab.heads import CRF
from rnnlab.metrics import SpanF1
from rnnlab.models.builder import build_word_model
from rnnlab.tasks.base import SupervisedTask, lexicon

METRICS = ("accuracy", "span_f1")


def conll_block(columns: list[list[str]]) -> str:
    """One sentence in CoNLL layout: a line per token with the columns tab-separated, then a blank line."""
    return "".join("\t".join(row) + "\n" for row in zip(*columns)) + "\n"


class TaggingModule(SupervisedTask):
    """A tagger: token-level cross-entropy over real (unmasked) tokens, or a linear-chain CRF on top.

    Args:
        model: the ``model`` config: ``embedding_dim``, ``embedding_dropout``, ``word_dropout``,
            ``pretrained_vectors``, ``freeze_embeddings``, ``chars`` (null, or a character encoder: see
            ``CharEncoder.from_config``), ``cell``, ``encoder``, ``head_hidden``, ``head_activation``,
            ``dropout``, ``crf`` (the MLP's scores feed a CRF instead of a per-token softmax), ``reproject`` (a
            square linear layer over the word ⊕ character vectors, as Flair's tagger re-projects its embeddings).
        vocab: word vocabulary (``Vocabulary.to_dict()``), from the DataModule.
        tags: tag vocabulary, from the DataModule.
        chars: character vocabulary, from the DataModule; required when ``model.chars`` is set.
        metric: ``"accuracy"`` (token accuracy, POS) or ``"span_f1"`` (entity-level F1, NER).
        optimizer: see ``TaskModule``.
        scheduler: see ``TaskModule``.
    """

    higher_is_better = True
    inputs = ("tokens", "mask", "chars")
    target_key = "tags"
    kind = "tagger"
    reads = TaggingDataModule
    predictions_extension = "conll"
    batch_independent = True
    input_tokens = True

    def __init__(self, model: dict, vocab: dict, tags: dict, chars: dict | None = None, metric: str = "accuracy",
                 optimizer: dict | None = None, scheduler: dict | None = None):
        if metric not in METRICS:
            raise ValueError(f"task.module.metric must be one of {METRICS}, got {metric!r}")
        if model.get("chars") and chars is None:
            raise ValueError("model.chars needs a character vocabulary: set data.max_word_length > 0 "
                             "(the model/chars options do)")
        self.main_metric = "f1" if metric == "span_f1" else "acc"
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        model = with_model_defaults(model)  # a checkpoint from before a model key existed
        self.vocab = Vocabulary.from_dict(vocab)
        self.tags = Vocabulary.from_dict(tags)
        parts = build_word_model(model, lexicon(self.vocab), len(self.tags),
                                 lexicon(Vocabulary.from_dict(chars)) if chars else None)
        self.embedder, self.char_encoder, self.encoder, self.head = (parts.embedder, parts.char_encoder,
                                                                     parts.encoder, parts.head)
        self.crf = CRF(len(self.tags)) if model["crf"] else None
        # Built last, so the other parts draw the parameters they drew before this option existed.
        features = parts.embedder.embedding_dim + (parts.char_encoder.get_output_dim() if parts.char_encoder else 0)
        self.reproject = nn.Linear(features, features) if model["reproject"] else None
        self.set_gold_tags(self.tags.items)

    @property
    def input_formats(self) -> tuple[str, ...]:
        """Lines of text, or any registered column format."""
        return ("text", *COLUMN_FORMATS)

    def set_gold_tags(self, tags: list[str]) -> None:
        """(Re)builds the metrics over a gold tag set: the model's tags, then any gold tags it lacks.

        Evaluation data may hold tags the model never saw; with ids after the model's, their tokens count as
        wrong and their entities as missed, and an entity type only they carry gets an F1 of 0.

        Args:
            tags: the gold tag vocabulary's items; its first ``len(self.tags)`` are the model's, in order.
        """
        if tags[:len(self.tags)] != self.tags.items:
            raise ValueError(f"gold tags must start with the model's tags {self.tags.items}, got {tags}")
        self.metrics = nn.ModuleDict({stage: self._make_metric(tags) for stage in ("val", "test")})

    def _make_metric(self, tags: list[str]) -> Metric:
        if self.hparams.metric == "span_f1":
            return SpanF1(tags, ignore_index=IGNORE_INDEX)
        return MulticlassAccuracy(len(tags), average="micro", ignore_index=IGNORE_INDEX)

    def forward(self, tokens: Tensor, mask: Tensor, chars: Tensor | None = None) -> Tensor:
        """``(B, T)`` word ids and mask (and ``(B, T, L)`` character ids with ``model.chars``) -> ``(B, T, C)``
        tag scores: the softmax's logits, or the CRF's emission scores."""
        words = self.embedder(tokens)  # (B, T, E)
        if self.char_encoder is not None:
            words = torch.cat([words, self.char_encoder(chars, mask)], dim=-1)  # (B, T, E + D)
        if self.reproject is not None:
            words = self.reproject(words)  # (B, T, E + D)
        return self.head(self.encoder(words, mask).outputs)

    def _loss(self, scores: Tensor, batch: dict) -> Tensor:
        """Mean per real token: the CRF's sentence NLLs are summed and divided by the token count, so both
        heads train at the same learning rates.

        Gold tags the model lacks (ids >= C, only in evaluation data: see ``set_gold_tags``) have no score, so
        their tokens (with the CRF, their sentences) are left out; a batch of nothing else has loss 0.
        """
        tags, mask = batch["tags"], batch["mask"]  # (B, T) each
        lacking = tags >= scores.shape[-1]  # (B, T)
        if self.crf is None:
            targets = tags.masked_fill(lacking, IGNORE_INDEX).flatten()  # (B*T,)
            total = F.cross_entropy(scores.flatten(0, 1), targets, ignore_index=IGNORE_INDEX, reduction="sum")
            return total / targets.ne(IGNORE_INDEX).sum().clamp(min=1)
        kept = ~lacking.any(1)  # (B,)
        # Weighted rather than indexed, so no device sync: a left-out sentence's NLL (any tag will do) counts 0.
        nll = self.crf.nll(scores, tags.masked_fill(lacking, 0), mask)  # (B,)
        return (nll * kept).sum() / (mask & kept.unsqueeze(1)).sum().clamp(min=1)

    def _decode(self, scores: Tensor, mask: Tensor) -> Tensor:
        if self.crf is None:
            return scores.argmax(-1)
        return self.crf.viterbi(scores, mask)

    @torch.no_grad()
    def decode(self, batch: dict) -> Tensor:
        """``(B, T)`` predicted tag ids of a collated batch: per-token argmax, or Viterbi with the CRF.

        Values at padding are meaningless. Runs the model as it is (call ``eval()`` first for predictions).
        """
        return self._decode(self.scores(batch), batch["mask"])

    def predict_step(self, batch: dict, batch_idx: int = 0) -> list[list[str]]:
        """The predicted tags of each sentence of a batch."""
        tags = self.decode(batch).tolist()  # (B, T)
        return [self.tags.decode(row[:length]) for row, length in zip(tags, batch["mask"].sum(1).tolist())]

    def prepare_evaluation(self, data: L.LightningDataModule) -> None:
        self.set_gold_tags(data.tags.items)  # with any gold tags of the data that the model lacks

    def format_predictions(self, examples: list[dict], outputs: list[list[str]]) -> str:
        """CoNLL blocks of token, gold tag, predicted tag."""
        return "".join(conll_block([example["tokens"], example["tags"], tags])
                       for example, tags in zip(examples, outputs))

    def prediction_example(self, item: list[str]) -> dict | None:
        return {"tokens": item} if item else None

    def render_prediction(self, item: list[str], prediction: list[str]) -> str:
        """``token<TAB>tag`` lines, then a blank line."""
        return conll_block([item, prediction])

    def compute_loss(self, batch: dict) -> tuple[Tensor, Tensor]:
        scores = self.scores(batch)  # (B, T, C)
        return self._loss(scores, batch), self._decode(scores, batch["mask"])

    def training_loss(self, batch: dict) -> Tensor:
        return self._loss(self.scores(batch), batch)  # no decoding while training

    def batch_size(self, batch: dict) -> int:
        return int(batch["mask"].sum())  # the loss is a mean over real tokens
