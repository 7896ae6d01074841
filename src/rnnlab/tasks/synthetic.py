"""The synthetic long-range tasks: a model reads the sentence representation, or every step (``per_step``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanSquaredError, Metric
from torchmetrics.classification import MulticlassAccuracy

from rnnlab.data.special import IGNORE_INDEX
from rnnlab.data.synthetic import SYNTHETIC_TASKS, SyntheticDataModule
from rnnlab.dropout import make_dropout
from rnnlab.encoders import build_encoder
from rnnlab.heads import MLPHead
from rnnlab.tasks.base import SupervisedTask


class SyntheticModule(SupervisedTask):
    """Inputs -> encoder -> MLP head, on the sentence vector (recall, adding) or on every step (copy).

    The task's ``target`` chooses the loss and metric: cross-entropy and accuracy for classes, squared error and
    MSE for values.

    Logged beside the metric: ``<stage>/chance``, the metric of a predictor that ignores the input.

    Args:
        model: the ``model`` config: ``embedding_dim`` (token tasks), ``cell``, ``encoder``, ``head_hidden``,
            ``head_activation``, ``dropout``, ``embedding_dropout``.
        task: a name of ``rnnlab.data.synthetic.SYNTHETIC_TASKS`` (``"recall"``, ``"adding"``, ``"copy"``, ...).
        num_outputs: classes (recall, copy) or 1 (adding), from the DataModule.
        chance: chance level of the main metric, from the DataModule.
        vocab_size: number of input ids for token tasks, from the DataModule; 0 for feature inputs.
        input_dim: size of each input feature vector (adding), from the DataModule.
        optimizer: see ``rnnlab.tasks.base.TaskModule``.
        scheduler: see ``rnnlab.tasks.base.TaskModule``.
    """

    reads = SyntheticDataModule
    inputs = ("inputs", "mask")

    def __init__(self, model: dict, task: str, num_outputs: int, chance: float, vocab_size: int = 0,
                 input_dim: int = 0, optimizer: dict | None = None, scheduler: dict | None = None):
        definition = SYNTHETIC_TASKS[task]
        self.regression, self.per_step = definition.target == "value", definition.per_step
        self.main_metric = "mse" if self.regression else "acc"
        self.higher_is_better = not self.regression
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        self.task = task
        self.chance = chance
        kind = model.get("dropout_kind", "standard")
        if vocab_size > 0:
            self.embedder: nn.Module = nn.Sequential(nn.Embedding(vocab_size, model["embedding_dim"]),
                                                     make_dropout(model["embedding_dropout"], kind))
            input_dim = model["embedding_dim"]
        else:
            self.embedder = nn.Identity()
        self.encoder = build_encoder(model, input_dim)
        self.head = MLPHead(self.encoder.get_output_dim(), num_outputs, model["head_hidden"],
                            model["head_activation"], model["dropout"], kind)
        self.metrics = nn.ModuleDict({stage: self._make_metric(num_outputs) for stage in ("val", "test")})

    def _make_metric(self, num_outputs: int) -> Metric:
        if self.regression:
            return MeanSquaredError()
        return MulticlassAccuracy(num_outputs, average="micro", ignore_index=IGNORE_INDEX)

    def forward(self, inputs: Tensor, mask: Tensor) -> Tensor:
        """Ids ``(B, T)`` or features ``(B, T, F)`` and mask ``(B, T)`` -> scores.

        Returns:
            ``(B, C)`` class scores (recall), ``(B,)`` values (adding), or ``(B, T, C)`` per step (copy).
        """
        encoded = self.encoder(self.embedder(inputs), mask)
        if self.per_step:
            return self.head(encoded.outputs)
        scores = self.head(encoded.sentence)
        return scores.squeeze(-1) if self.regression else scores

    def compute_loss(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Cross-entropy for classes; for values, squared error and the values themselves as predictions."""
        if not self.regression:
            return super().compute_loss(batch)
        scores = self.scores(batch)
        return F.mse_loss(scores, batch["targets"]), scores

    def end_epoch(self, stage: str) -> None:
        super().end_epoch(stage)
        self.log(f"{stage}/chance", self.chance)
