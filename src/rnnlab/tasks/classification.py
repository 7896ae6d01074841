"""Sentence classification: embeddings -> sentence representation -> MLP hidden layer -> output weights.

The lecture's classifier: ``z(1)`` is the encoder's sentence representation (unidirectional RNN: the state
after the last real token; BiRNN: last forward state ⊕ backward state at the first token),
``z(2) = σ(U(1) z(1) + b(1))`` and ``w = U(2) z(2) + b(2)`` are the scores before the softmax. The same
module runs the CNN baseline (Kim 2014), whose sentence representation is its pooled features.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from rnnlab.config import with_model_defaults
from rnnlab.data.classification import ClassificationDataModule
from rnnlab.data.vocab import Vocabulary
from rnnlab.models.builder import build_word_model
from rnnlab.tasks.base import SupervisedTask, lexicon

POOLINGS = ("final", "max")


class ClassificationModule(SupervisedTask):
    """A sentence classifier trained with cross-entropy; accuracy and macro-F1 per epoch.

    Args:
        model: the ``model`` config: ``embedding_dim``, ``embedding_dropout``, ``word_dropout``, ``encoder``
            (and ``cell`` for a recurrent one), ``head_hidden`` (0: output weights only, as in Kim's CNN),
            ``head_activation`` (``sigmoid`` is the lecture's σ), ``dropout`` (on the sentence vector and the
            hidden layer), ``pooling`` (recurrent encoders: ``"final"`` states, the lecture's ``z(1)``, or
            ``"max"`` over time of the outputs, as in Conneau et al. 2017's BiLSTM-max),
            ``pretrained_vectors`` and ``freeze_embeddings`` (see ``WordEmbedder.from_config``).
        vocab: word vocabulary (``Vocabulary.to_dict()``), from the DataModule.
        labels: class vocabulary, from the DataModule.
        optimizer: see ``TaskModule``.
        scheduler: see ``TaskModule``.
    """

    main_metric = "acc"
    higher_is_better = True
    target_key = "labels"
    kind = "classifier"
    reads = ClassificationDataModule
    predictions_extension = "tsv"
    batch_independent = True

    def __init__(self, model: dict, vocab: dict, labels: dict, optimizer: dict | None = None,
                 scheduler: dict | None = None):
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        model = with_model_defaults(model)  # a checkpoint from before a model key existed
        self.vocab = Vocabulary.from_dict(vocab)
        self.labels = Vocabulary.from_dict(labels)
        self.pooling = model["pooling"]
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        parts = build_word_model(model, lexicon(self.vocab), len(self.labels), sentence=True)
        self.embedder, self.encoder, self.head = parts.embedder, parts.encoder, parts.head
        classes = len(self.labels)
        self.metrics = nn.ModuleDict({stage: MetricCollection({
            "acc": MulticlassAccuracy(classes, average="micro"),
            "macro_f1": MulticlassF1Score(classes, average="macro"),
        }) for stage in ("val", "test")})

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """``(B, T)`` word ids and mask -> ``(B, C)`` class scores."""
        encoded = self.encoder(self.embedder(tokens), mask)
        # The CNN has no token outputs: its sentence vector is pooled already. With max pooling, padding never wins.
        if self.pooling == "max" and encoded.outputs is not None:
            return self.head(encoded.outputs.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1))
        return self.head(encoded.sentence)

    def predict_step(self, batch: dict, batch_idx: int = 0) -> list[tuple[str, float]]:
        """The most probable class of each sentence of a batch, with its probability."""
        probabilities, ids = self.scores(batch).softmax(-1).max(-1)  # (B,)
        return [(self.labels.items[i], p) for i, p in zip(ids.tolist(), probabilities.tolist())]

    def format_predictions(self, examples: list[dict], outputs: list[tuple[str, float]]) -> str:
        """A TSV table: text, gold label, predicted label, its probability."""
        rows = [f"{example['text']}\t{example['label']}\t{label}\t{probability:.4f}\n"
                for example, (label, probability) in zip(examples, outputs)]
        return "text\tgold\tpredicted\tprobability\n" + "".join(rows)

    def prediction_example(self, item: str) -> dict | None:
        return {"text": item} if item.strip() else None

    def render_prediction(self, item: str, prediction: tuple[str, float]) -> str:
        """``label<TAB>probability<TAB>text``."""
        label, probability = prediction
        return f"{label}\t{probability:.4f}\t{item}\n"
