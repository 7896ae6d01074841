"""A DataLoader that continues an interrupted epoch where its checkpoint left it."""

from __future__ import annotations

from itertools import islice
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler


class _SkippingSampler(Sampler):
    """Wraps the sampler of whole batches; its next pass leaves out the first ``start`` batches.

    Lightning calls ``set_epoch`` before every epoch on a loader's ``sampler`` and on its batch sampler's
    ``sampler``; this wrapper is one or the other (see ``sampler``), keeps the epoch for the loader's state and
    passes it on to a wrapped sampler that has ``set_epoch`` (``BucketBatchSampler`` derives the epoch's order
    from its seed and the epoch).
    """

    def __init__(self, batches: Sampler):
        self.batches = batches
        self.epoch = 0
        self.start = 0

    @property
    def sampler(self) -> _SkippingSampler:
        """Itself: where Lightning looks for the sampler of a batch sampler, so that ``set_epoch`` reaches it."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def __iter__(self) -> Iterator:
        start, self.start = self.start, 0
        return islice(iter(self.batches), start, None)

    def __len__(self) -> int:
        return len(self.batches)  # the whole epoch: Lightning counts the skipped batches as done


class ResumableLoader(DataLoader):
    """A DataLoader whose position within the epoch is saved in checkpoints, for an exact resume.

    Lightning saves ``state_dict()`` of every training loader that has one with each checkpoint and, when a fit
    resumes, passes it to ``load_state_dict`` before the epoch starts. The state is the epoch and the number of
    batches handed out in it; when the resumed epoch is that epoch, it skips as many entries of the batch
    sampler, so the batches already trained on are neither read nor collated again (a checkpoint from the end
    of an epoch resumes with a whole next epoch). Batches are counted where they leave the loader, not the
    sampler, because worker processes read ahead.

    Each pass draws a seed for its workers, from ``generator`` or else from torch's global generator, whose
    state ``rnnlab.run.callbacks.RNGState`` restores when training starts. The run that wrote the checkpoint
    drew the seed of its current epoch before saving and the seed of the next epoch after it, so a resumed
    pass inside the saved epoch draws from a copy of the global generator, and ``generator`` (which may also
    order the batches, e.g. through a ``RandomSampler``) is set back to its state at the start of the saved
    epoch or at the checkpoint.

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
        self._generator_at_epoch_start: torch.Tensor | None = None
        self._resume: dict | None = None

    def __iter__(self) -> Iterator:
        # A generator: nothing is drawn before the first batch, i.e. before Lightning's set_epoch.
        resume, self._resume = self._resume, None
        same_epoch = resume is not None and resume["epoch"] == self._batches.epoch
        self.position = self._batches.start = resume["position"] if same_epoch else 0
        if self.generator is not None:
            if resume is not None:
                self.generator.set_state(resume["generator_at_epoch_start" if same_epoch else "generator"])
            self._generator_at_epoch_start = self.generator.get_state()
        with torch.random.fork_rng(devices=[], enabled=same_epoch and self.generator is None):
            batches = super().__iter__()  # draws the workers' seed
        for batch in batches:
            self.position += 1
            yield batch

    def state_dict(self) -> dict:
        state = {"epoch": self._batches.epoch, "position": self.position}
        if self.generator is not None:
            state.update(generator=self.generator.get_state(), generator_at_epoch_start=self._generator_at_epoch_start)
        return state

    def load_state_dict(self, state: dict) -> None:
        self._resume = dict(state)
