"""Synthetic long-range tasks, generated from a seed: nothing to download, the distance T is a knob.

- ``recall``: a key symbol, then T distractor symbols; the label is the key. The key sits T steps before the
  end, so a left-to-right reader must carry it across T steps.
- ``adding`` (Hochreiter & Schmidhuber 1997): T steps of ``[value, marker]`` with values U(0, 1) and two
  markers, one in each half; the target is the sum of the two marked values.
- ``copy``: K data symbols, T blanks whose last one is a delimiter, then K blanks during which the K symbols
  must be reproduced; every output symbol is T + K steps from its input.

Every sequence of a task has the same length, so masks are all True; the encoders accept any mask.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from rnnlab.data.resumable import ResumableLoader
from rnnlab.data.special import IGNORE_INDEX

TASKS = ("recall", "adding", "copy")
SPLITS = ("train", "validation", "test")
# Token ids of the copy task below its data symbols.
COPY_BLANK, COPY_DELIMITER, COPY_OFFSET = 1, 2, 3


def generate_recall(rng: np.random.Generator, n: int, distance: int, num_classes: int,
                    vocab_size: int) -> dict[str, Tensor]:
    """Key-recall sequences.

    Ids: 0 padding (unused), ``1..num_classes`` keys, the rest up to ``vocab_size`` distractors.

    Returns:
        ``inputs`` ``(n, T+1)`` long, ``mask`` ``(n, T+1)`` bool, ``targets`` ``(n,)`` long in
        ``[0, num_classes)``.
    """
    keys = rng.integers(0, num_classes, size=n)  # (n,)
    distractors = rng.integers(1 + num_classes, vocab_size, size=(n, distance))  # (n, T)
    inputs = np.concatenate([1 + keys[:, None], distractors], axis=1)  # (n, T+1)
    return _pack(torch.from_numpy(inputs), torch.from_numpy(keys))


def generate_adding(rng: np.random.Generator, n: int, distance: int) -> dict[str, Tensor]:
    """Adding-problem sequences of length ``distance``: one marker in each half.

    Returns:
        ``inputs`` ``(n, T, 2)`` float ``[value, marker]``, ``mask`` ``(n, T)``, ``targets`` ``(n,)`` float.
    """
    if distance < 2:
        raise ValueError(f"the adding task needs distance >= 2, got {distance}")
    values = rng.random((n, distance))  # (n, T)
    half = distance // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, distance, size=n)
    markers = np.zeros((n, distance))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    inputs = np.stack([values, markers], axis=-1)  # (n, T, 2)
    targets = values[rows, first] + values[rows, second]
    return _pack(torch.from_numpy(inputs).float(), torch.from_numpy(targets).float())


def generate_copy(rng: np.random.Generator, n: int, distance: int, copy_length: int,
                  vocab_size: int) -> dict[str, Tensor]:
    """Copy-task sequences of length ``2K + T``.

    Ids: 0 padding (unused), ``COPY_BLANK``, ``COPY_DELIMITER``, then ``vocab_size`` data symbols.

    Returns:
        ``inputs`` ``(n, 2K+T)`` long, ``mask``, ``targets`` ``(n, 2K+T)`` long: the symbol class
        (``0..vocab_size-1``) on the last K steps, ``IGNORE_INDEX`` elsewhere.
    """
    if distance < 1:
        raise ValueError(f"the copy task needs distance >= 1 (the delimiter), got {distance}")
    k = copy_length
    symbols = rng.integers(0, vocab_size, size=(n, k))  # (n, K)
    inputs = np.full((n, 2 * k + distance), COPY_BLANK)
    inputs[:, :k] = COPY_OFFSET + symbols
    inputs[:, k + distance - 1] = COPY_DELIMITER
    targets = np.full_like(inputs, IGNORE_INDEX)
    targets[:, k + distance:] = symbols
    return _pack(torch.from_numpy(inputs), torch.from_numpy(targets))


def _pack(inputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
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
        task: ``"recall"``, ``"adding"`` or ``"copy"``.
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
        if task not in TASKS:
            raise ValueError(f"data.task must be one of {TASKS}, got {task!r}")
        if distance < 1:
            raise ValueError(f"data.distance must be >= 1, got {distance}")
        if task == "recall" and not 2 <= num_classes < vocab_size:
            raise ValueError(f"recall needs 2 <= num_classes < vocab_size (room for distractors), "
                             f"got {num_classes} and {vocab_size}")
        if task == "copy" and (vocab_size < 2 or copy_length < 1):
            raise ValueError(f"copy needs vocab_size >= 2 and copy_length >= 1, got {vocab_size}, {copy_length}")
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
        n = self.sizes[split]
        if self.task == "recall":
            return generate_recall(rng, n, self.distance, self.num_classes, self.vocab_size)
        if self.task == "adding":
            return generate_adding(rng, n, self.distance)
        return generate_copy(rng, n, self.distance, self.copy_length, self.vocab_size)

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            self.datasets = {split: TensorDictDataset(self.generate(split)) for split in SPLITS}

    def chance(self) -> float:
        """The metric of the best input-blind predictor.

        recall: accuracy 1/num_classes (keys are uniform); copy: per-symbol accuracy 1/vocab_size;
        adding: the MSE of always predicting the mean sum 1, i.e. Var(u1 + u2) = 2 * (1/12) = 1/6.
        """
        if self.task == "recall":
            return 1.0 / self.num_classes
        if self.task == "adding":
            return 2.0 / 12.0
        return 1.0 / self.vocab_size

    def model_kwargs(self) -> dict:
        """What the model needs: input ids or features, output size, and the chance level to report."""
        if self.task == "recall":
            inputs, outputs = {"vocab_size": self.vocab_size + 1}, self.num_classes
        elif self.task == "adding":
            inputs, outputs = {"input_dim": 2}, 1
        else:
            inputs, outputs = {"vocab_size": COPY_OFFSET + self.vocab_size}, self.vocab_size
        return {"task": self.task, **inputs, "num_outputs": outputs, "chance": self.chance()}

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
