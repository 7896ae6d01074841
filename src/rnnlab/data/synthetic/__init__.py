"""Synthetic long-range tasks, generated from a seed: nothing to download, the distance T is a knob.

One module of this package per task (``recall``, ``adding``, ``copy``; see each), registered in
``SYNTHETIC_TASKS``. Every sequence of a task has the same length, so masks are all True; the encoders accept
any mask.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from rnnlab.data.resumable import ResumableLoader
from rnnlab.registry import Registry

SPLITS = ("train", "validation", "test")


class SyntheticTask:
    """One synthetic task: how its sequences are drawn and what a model predicts from them.

    A task is a subclass registered in ``SYNTHETIC_TASKS`` (``@SYNTHETIC_TASKS.register("name")``) in a module of
    this package; ``data.task=<name>`` selects it.

    Attributes:
        target: ``"class"`` (cross-entropy, accuracy) or ``"value"`` (squared error, MSE): the model's loss and
            metric follow it.
        per_step: the model predicts at every step (``targets`` ``(n, T)``, ``IGNORE_INDEX`` where nothing is
            due) rather than once from the sentence representation (``targets`` ``(n,)``).

    Args:
        distance: T, the number of steps the information must travel.
        vocab_size: input symbols, as the task reads it.
        num_classes: labels, as the task reads it.
        copy_length: symbols to reproduce, as the task reads it.

    Raises:
        ValueError: options the task cannot be drawn with.
    """

    target = "class"
    per_step = False

    def __init__(self, distance: int, vocab_size: int, num_classes: int, copy_length: int):
        self.distance, self.vocab_size, self.num_classes, self.copy_length = (distance, vocab_size, num_classes,
                                                                              copy_length)
        self.check()

    def check(self) -> None:
        """Raises ``ValueError`` for options the task cannot use; any by default."""

    def generate(self, rng: np.random.Generator, n: int) -> dict[str, Tensor]:
        """``n`` sequences drawn from ``rng``: ``inputs`` ids ``(n, T)`` or features ``(n, T, F)``, ``mask`` and
        ``targets`` (see ``pack``)."""
        raise NotImplementedError

    def chance(self) -> float:
        """The metric of the best input-blind predictor."""
        raise NotImplementedError

    def model_kwargs(self) -> dict:
        """The inputs (``vocab_size`` of ids, or ``input_dim`` of features) and ``num_outputs`` of the model."""
        raise NotImplementedError


SYNTHETIC_TASKS: Registry[type[SyntheticTask]] = Registry("synthetic task", "data.task", package=__name__)


def pack(inputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """A split's tensors; every sequence of a task has the same length, so the mask is all True."""
    mask = torch.ones(inputs.shape[:2], dtype=torch.bool)
    return {"inputs": inputs, "mask": mask, "targets": targets}


class TensorDictDataset(Dataset):
    """Rows of equally long tensors, one dict per example."""

    def __init__(self, tensors: dict[str, Tensor]):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {name: tensor[index] for name, tensor in self.tensors.items()}


class SyntheticDataModule(L.LightningDataModule):
    """Fixed train/validation/test sets of one synthetic task, each drawn from its own stream of ``seed``.

    Args:
        task: a name of ``SYNTHETIC_TASKS``: ``"recall"``, ``"adding"``, ``"copy"``, ...
        distance: T, the number of steps the information must travel (see the module docstring).
        vocab_size: recall: keys plus distractor symbols; copy: data symbols. Unused by adding.
        num_classes: recall: number of keys (labels).
        copy_length: copy: K, the number of symbols to reproduce.
        num_train: training sequences.
        num_val: validation sequences.
        num_test: test sequences.
        batch_size: training batch size.
        eval_batch_size: validation/test batch size.
        num_workers: DataLoader workers.
        seed: generation seed; the same seed gives the same sets, and the batch order follows it too.
    """

    def __init__(self, task: str = "recall", distance: int = 20, vocab_size: int = 16, num_classes: int = 8,
                 copy_length: int = 5, num_train: int = 2000, num_val: int = 500, num_test: int = 500,
                 batch_size: int = 64, eval_batch_size: int = 256, num_workers: int = 0, seed: int = 0):
        super().__init__()
        if distance < 1:
            raise ValueError(f"data.distance must be >= 1, got {distance}")
        self.definition = SYNTHETIC_TASKS[task](distance, vocab_size, num_classes, copy_length)
        self.task, self.distance = task, distance
        self.vocab_size, self.num_classes, self.copy_length = vocab_size, num_classes, copy_length
        self.sizes = {"train": num_train, "validation": num_val, "test": num_test}
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed = num_workers, seed
        self.datasets: dict[str, TensorDictDataset] = {}
        self._train_loader: ResumableLoader | None = None
        self._train_state: dict | None = None  # from a checkpoint, for the next training loader

    def generate(self, split: str) -> dict[str, Tensor]:
        """The tensors of one split; deterministic in ``(seed, split)``."""
        rng = np.random.default_rng([self.seed, SPLITS.index(split)])
        return self.definition.generate(rng, self.sizes[split])

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            self.datasets = {split: TensorDictDataset(self.generate(split)) for split in SPLITS}

    def chance(self) -> float:
        """The metric of the best input-blind predictor (see each task's ``chance``)."""
        return self.definition.chance()

    def model_kwargs(self) -> dict:
        """What the model needs: input ids or features, output size, and the chance level to report."""
        return {"task": self.task, **self.definition.model_kwargs(), "chance": self.chance()}

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if not shuffle:
            return DataLoader(self.datasets[split], batch_size=batch_size, num_workers=self.num_workers)
        # The batches of DataLoader(shuffle=True, generator=...), resumable within and across epochs.
        generator = torch.Generator().manual_seed(self.seed)
        batches = BatchSampler(RandomSampler(self.datasets[split], generator=generator), batch_size, drop_last=False)
        return ResumableLoader(self.datasets[split], batch_sampler=batches, generator=generator,
                               num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        self._train_loader = self._loader("train", self.batch_size, shuffle=True)
        if self._train_state is not None:
            self._train_loader.load_state_dict(self._train_state)
        return self._train_loader

    def state_dict(self) -> dict:
        """The training loader's state, with the generator of its batch order.

        Lightning gives a loader its saved state only to resume inside an epoch; this generator must also come
        back after a checkpoint at an epoch's end, so the checkpoint keeps it here too.
        """
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._train_state = state_dict.get("train_loader")

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
