"""Gradient flow through time: the norm of d loss / d h(t) at every step t, for every layer and direction.

The total derivative with respect to ``h(t)`` sums every path from the step to the loss, through the layer
above and through the recurrence. It shrinks geometrically with the distance to the loss for an Elman cell
(the vanishing gradient the lecture describes), while the LSTM's additive memory keeps it alive.

The fused kernels keep the intermediate states inside one call, so the measurement has the encoder run its
per-step loop (tested equal to the kernels) and record each step's ``h(t)`` (``RNNEncoder.record_steps``).
Works on any ``TaskModule`` with an ``RNNEncoder`` at ``module.encoder`` and a ``compute_loss(batch) ->
(loss, predictions)`` method.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import lightning as L
import torch
from torch import Tensor

from rnnlab.encoders import RNNEncoder

log = logging.getLogger(__name__)


def curve_name(layer: int, reverse: bool) -> str:
    """``"layer0"`` for the first layer read left to right; ``"layer0/backward"`` read right to left."""
    return f"layer{layer}" + ("/backward" if reverse else "")


@contextmanager
def recorded_states(encoder: RNNEncoder) -> Iterator[dict[str, list[Tensor]]]:
    """Runs the encoder's step loop (``RNNEncoder.record_steps``) and collects each step's ``h(t)`` ``(B, H)``.

    Yields:
        Curve name -> the hidden states in the order the cell produced them (reading order).
    """
    with encoder.record_steps() as recorded:
        yield {curve_name(k, reverse): recorded[k][d] for k in range(encoder.num_layers)
               for d, reverse in enumerate(encoder.directions)}


def gradient_norms(module: L.LightningModule, batch: dict) -> dict[str, list[float]]:
    """``||d loss / d h(t)||`` (Frobenius over batch and units) for each step t, in eval mode.

    Args:
        module: a task module with ``encoder`` (an ``RNNEncoder``) and ``compute_loss(batch)``.
        batch: a batch as its dataloaders yield it, on the module's device.

    Returns:
        Curve name (see ``curve_name``) -> one norm per position t = 0..T-1, in sentence order whatever the
        reading direction.
    """
    if not isinstance(getattr(module, "encoder", None), RNNEncoder):
        raise TypeError(f"{type(module).__name__} has no RNNEncoder at .encoder; gradient flow needs one")
    was_training = module.training
    module.eval()  # no dropout: the same batch gives the same curve
    try:
        with torch.enable_grad(), recorded_states(module.encoder) as states:
            loss, _ = module.compute_loss(batch)
            names = list(states)
            flat = [h for name in names for h in states[name]]
            # A step nothing downstream reads (none in practice) gets no gradient: count it as zero.
            grads = torch.autograd.grad(loss, flat, allow_unused=True)
    finally:
        module.train(was_training)
    curves, start = {}, 0
    for name in names:
        norms = [0.0 if g is None else float(g.norm()) for g in grads[start:start + len(states[name])]]
        start += len(norms)
        curves[name] = norms[::-1] if name.endswith("/backward") else norms
    return curves


def plot_gradient_flow(records: list[dict], path: str | Path, title: str = "") -> None:
    """One panel per layer/direction: the norm against the step, one line per recorded epoch (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(records[0]["curves"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    colours = plt.cm.viridis([i / max(1, len(records) - 1) for i in range(len(records))])
    for ax, name in zip(axes[0], names):
        for record, colour in zip(records, colours):
            ax.semilogy(record["curves"][name], color=colour, label=f"epoch {record['epoch']}")
        ax.set_title(f"{title} {name}".strip())
        ax.set_xlabel("step t")
        ax.set_ylabel("||d loss / d h(t)||")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class GradientFlow(L.Callback):
    """Measures the gradient flow on a fixed validation batch before training and every N epochs.

    Writes ``gradient_flow.json`` (``[{"epoch", "curves": {name: [norm per step]}}]``, epoch = training
    epochs done) and, at the end of fitting, ``gradient_flow.png``; logs each curve's norms at the first and
    last step (``grad_flow/<name>/first``, ``.../last``) to the trainer's loggers.

    Args:
        out_dir: where the files go.
        every_n_epochs: measure after every N training epochs (and once before training).
        plot: draw the PNG at the end of fitting.
    """

    def __init__(self, out_dir: str, every_n_epochs: int = 1, plot: bool = True):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.out_dir = Path(out_dir)
        self.every_n_epochs = every_n_epochs
        self.plot = plot
        self.batch: dict | None = None
        self.records: list[dict] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.datamodule is None:
            raise ValueError("GradientFlow takes its fixed batch from the datamodule's val_dataloader()")
        self.batch = pl_module.transfer_batch_to_device(next(iter(trainer.datamodule.val_dataloader())),
                                                        pl_module.device, 0)
        self.records = []
        self._measure(trainer, pl_module, epochs_done=0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epochs_done = trainer.current_epoch + 1
        if epochs_done % self.every_n_epochs == 0:
            self._measure(trainer, pl_module, epochs_done)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.plot and self.records and trainer.is_global_zero:
            plot_gradient_flow(self.records, self.out_dir / "gradient_flow.png",
                               title=pl_module.encoder.state_layout.cell)

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule, epochs_done: int) -> None:
        curves = gradient_norms(pl_module, self.batch)
        self.records.append({"epoch": epochs_done, "curves": curves})
        if not trainer.is_global_zero:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "gradient_flow.json").write_text(json.dumps(self.records))
        summary = {f"grad_flow/{name}/{end}": norms[index] for name, norms in curves.items()
                   for end, index in (("first", 0), ("last", -1))}
        for logger in trainer.loggers:
            logger.log_metrics(summary, step=trainer.global_step)
