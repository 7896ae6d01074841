"""A DataLoader that continues an interrupted epoch where its checkpoint left it."""

from __future__ import annotations

from itertools import islice
from typing import Iterator

from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler


class _SkippingSampler(Sampler):
    """Wraps the sampler of whole batches; its next pass leaves out the first ``start`` batches.

    Lightning calls ``set_epoch`` before every epoch; it is passed on to a wrapped sampler that has one
    (``BucketBatchSampler`` derives the epoch's order from its seed and the epoch).
    """

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator:
        start, self.start = self.start, 0
        return islice(iter(self.sampler), start, None)

    def __len__(self) -> int:
        return len(self.sampler)  # the whole epoch: Lightning counts the skipped batches as done


class ResumableLoader(DataLoader):
    """A DataLoader whose position within the epoch is saved in checkpoints, for an exact mid-epoch resume.

    Lightning saves ``state_dict()`` of every training loader that has one with each checkpoint and, when a fit
    resumes, passes it to ``load_state_dict`` before the epoch starts. The state is the epoch and the number of
    batches handed out in it; when the resumed epoch is that epoch, it skips as many entries of the batch
    sampler, so the batches already trained on are neither read nor collated again (a checkpoint from the end
    of an epoch resumes with a whole next epoch). Batches are counted where they leave the loader, not the
    sampler, because worker processes read ahead.

    Each entry of the sampler must be one whole batch: give ``batch_sampler``, or ``batch_size=None`` with items
    that are batches (then ``sampler`` defaults to the sequential order).
    """

    def __init__(self, dataset: Dataset, batch_sampler: Sampler | None = None, sampler: Sampler | None = None,
                 **kwargs):
        if batch_sampler is not None:
            batch_sampler = self._batches = _SkippingSampler(batch_sampler)
        elif "batch_size" in kwargs and kwargs["batch_size"] is None:
            sampler = self._batches = _SkippingSampler(sampler or SequentialSampler(dataset))
        else:
            raise ValueError("ResumableLoader needs a batch_sampler, or batch_size=None with items that are batches")
        super().__init__(dataset, batch_sampler=batch_sampler, sampler=sampler, **kwargs)
        self.position = 0  # batches handed out in the current epoch
        self._resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator:
        # A generator: nothing is drawn before the first batch, i.e. before Lightning's set_epoch.
        resume, self._resume = self._resume, None
        same_epoch = resume is not None and resume["epoch"] == self._batches.epoch
        self.position = self._batches.start = resume["position"] if same_epoch else 0
        for batch in super().__iter__():
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._batches.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = dict(state)
