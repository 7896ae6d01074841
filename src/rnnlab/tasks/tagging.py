"""Sequence tagging (POS, NER): embeddings -> encoder -> a shared MLP per token -> softmax."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from rnnlab.data.tagging import IGNORE_INDEX
from rnnlab.data.vocab import Vocabulary
from rnnlab.embeddings import WordEmbedder
from rnnlab.heads import MLPHead
from rnnlab.metrics import SpanF1
from rnnlab.tasks.base import SupervisedTask, build_encoder

METRICS = ("accuracy", "span_f1")


class TaggingModule(SupervisedTask):
    """A tagger trained with token-level cross-entropy over real (unmasked) tokens.

    Args:
        model: the ``model`` config: ``embedding_dim``, ``embedding_dropout``, ``word_dropout``, ``cell``,
            ``encoder``, ``head_hidden``, ``head_activation``, ``dropout``.
        vocab: word vocabulary (``Vocabulary.to_dict()``), from the DataModule.
        tags: tag vocabulary, from the DataModule.
        metric: ``"accuracy"`` (token accuracy, POS) or ``"span_f1"`` (entity-level F1, NER).
        optimizer: see ``TaskModule``.
        scheduler: see ``TaskModule``.
    """

    higher_is_better = True
    target_key = "tags"

    def __init__(self, model: dict, vocab: dict, tags: dict, metric: str = "accuracy",
                 optimizer: dict | None = None, scheduler: dict | None = None):
        if metric not in METRICS:
            raise ValueError(f"task.module.metric must be one of {METRICS}, got {metric!r}")
        self.main_metric = "f1" if metric == "span_f1" else "acc"
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        self.vocab = Vocabulary.from_dict(vocab)
        self.tags = Vocabulary.from_dict(tags)
        self.embedder = WordEmbedder(len(self.vocab), model["embedding_dim"], self.vocab.pad_id,
                                     self.vocab[self.vocab.unk], model.get("embedding_dropout", 0.0),
                                     model.get("word_dropout", 0.0))
        self.encoder = build_encoder(model, self.embedder.embedding_dim)
        self.head = MLPHead(self.encoder.get_output_dim(), len(self.tags), model.get("head_hidden", 0),
                            model.get("head_activation", "tanh"), model.get("dropout", 0.0))
        self.metrics = nn.ModuleDict({stage: self._make_metric(metric) for stage in ("val", "test")})

    def _make_metric(self, metric: str) -> Metric:
        if metric == "span_f1":
            return SpanF1(self.tags.items, ignore_index=IGNORE_INDEX)
        return MulticlassAccuracy(len(self.tags), average="micro", ignore_index=IGNORE_INDEX)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """``(B, T)`` word ids and mask -> ``(B, T, C)`` tag scores."""
        encoded = self.encoder(self.embedder(tokens), mask)
        return self.head(encoded.outputs)

    def decode(self, batch: dict) -> Tensor:
        """``(B, T)`` the predicted tag id of every position (padding positions hold arbitrary ids)."""
        return self(batch["tokens"], batch["mask"]).argmax(-1)

    def predict_step(self, batch: dict, batch_idx: int = 0) -> list[list[str]]:
        """The predicted tags of each sentence of a batch."""
        tags = self.decode(batch).tolist()  # (B, T)
        return [self.tags.decode(row[:length]) for row, length in zip(tags, batch["mask"].sum(1).tolist())]

    def compute_loss(self, batch: dict) -> tuple[Tensor, Tensor]:
        logits = self(batch["tokens"], batch["mask"])  # (B, T, C)
        loss = F.cross_entropy(logits.flatten(0, 1), batch["tags"].flatten(), ignore_index=IGNORE_INDEX)
        return loss, logits.argmax(-1)

    def batch_size(self, batch: dict) -> int:
        return int(batch["mask"].sum())  # the loss is a mean over real tokens
