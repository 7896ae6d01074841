"""Looking inside the memory: the gates and the state of a trained recurrent model's cell, step by step.

    python -m rnnlab.diagnostics.memory_heatmap ckpt_path=RUN/checkpoints/last.ckpt \\
        sentence="Anna Korhonen flew from Oslo to Nairobi for the World Bank ." out=memory.png [units=32] [module=...]

Works with any Lightning checkpoint of a task module whose ``forward(tokens (B, T), mask (B, T))`` reads
token ids and whose encoder's first layer runs a cell: one panel per gate the cell declares (``gate_names``,
e.g. forget, input, output) and per state tensor (``state_names``: ``h``, and ``c`` for the LSTM family). Words
are looked up in the
module's ``vocab`` when it has one (taggers); otherwise the sentence is a list of token ids (the synthetic
tasks). The module class is read from the run's ``.hydra/config.yaml`` next to the checkpoint, or given as
``module=rnnlab.tasks.tagging.TaggingModule``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

def module_class(ckpt_path: str | Path) -> type[L.LightningModule]:
    """The task module class of a run's checkpoint, from ``task.module._target_`` in its Hydra config."""
    for folder in Path(ckpt_path).resolve().parents:
        config = folder / ".hydra" / "config.yaml"
        if config.exists():
            return get_class(OmegaConf.load(config).task.module._target_)
    raise FileNotFoundError(f"no .hydra/config.yaml above {ckpt_path}; pass module=<class path>")


def encode_sentence(module: L.LightningModule, sentence: str) -> tuple[list[str], torch.Tensor]:
    """Whitespace tokens and their ids ``(1, T)``: through ``module.vocab`` if any, else read as integers."""
    words = sentence.split()
    if not words:
        raise ValueError("the sentence is empty")
    vocab = getattr(module, "vocab", None)
    ids = vocab.encode(words) if vocab is not None else [int(w) for w in words]
    return words, torch.tensor([ids], device=module.device)


@torch.no_grad()
def gate_trace(module: L.LightningModule, sentence: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """Runs the sentence and steps the encoder's first layer (forward) to record its gates and states.

    Returns:
        The tokens, and a ``(T, H)`` array for each of the cell's ``gate_names`` and ``state_names`` (in that
        order: gates first, the state last).
    """
    encoder, layout = module.encoder, module.encoder.state_layout
    words, tokens = encode_sentence(module, sentence)
    captured = {}
    hook = encoder.register_forward_pre_hook(lambda encoder, args: captured.update(x=args[0]))
    try:
        module.eval()
        module(tokens, torch.ones_like(tokens, dtype=torch.bool))
    finally:
        hook.remove()
    x = captured["x"]  # (1, T, I): what the encoder read
    states = None
    trace: dict[str, list[np.ndarray]] = {name: [] for name in (*layout.gates, *layout.names)}
    for t in range(x.shape[1]):
        step = encoder.step(x[:, t], states, num_layers=1, gates=True)
        states = step.states
        for name, value in (*step.gates[0].items(), *zip(layout.names, states[0])):
            trace[name].append(value[0].cpu().numpy())
    return words, {name: np.stack(rows) for name, rows in trace.items()}


def plot_memory(words: list[str], trace: dict[str, np.ndarray], states: tuple[str, ...], path: str | Path,
                units: int = 32, title: str = "") -> None:
    """Heatmaps (units x tokens), one per entry of ``trace``: gates in 0..1, states diverging around 0.

    Args:
        trace: as ``gate_trace`` returns, the cell's state last.
        states: which entries of ``trace`` are states (the rest are gates).
        units: how many units to show: those whose last state (the LSTM's memory c) varies most.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(trace)
    shown = np.argsort(-trace[panels[-1]].std(axis=0))[:units]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 0.45 * len(words) + 2), 2.2 * len(panels) + 0.8),
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, name in zip(axes, panels):
        values = trace[name][:, shown].T  # (units, T)
        if name in states:
            bound = float(np.abs(values).max()) or 1.0
            image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
        else:
            image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_yticks(range(len(shown)), [str(unit) for unit in shown], fontsize=6)
        ax.set_ylabel(f"{name}\n(unit)")
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    axes[-1].set_xticks(range(len(words)))
    axes[-1].set_xticklabels(words, rotation=60, ha="right", fontsize=8)
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
    """``key=value`` arguments: ``ckpt_path``, ``sentence``, ``out``; optional ``units``, ``module``."""
    args = OmegaConf.from_cli(sys.argv[1:] if argv is None else argv)
    missing = [key for key in ("ckpt_path", "sentence", "out") if key not in args]
    if missing:
        raise SystemExit(f"missing arguments: {', '.join(f'{k}=...' for k in missing)}")
    cls = get_class(args.module) if "module" in args else module_class(args.ckpt_path)
    module = cls.load_from_checkpoint(args.ckpt_path, map_location="cpu", weights_only=True)
    words, trace = gate_trace(module, str(args.sentence))
    layout = module.encoder.state_layout
    run = Path(args.ckpt_path).resolve().parent.parent.name
    plot_memory(words, trace, layout.names, args.out, int(args.get("units", 32)),
                title=f"{layout.cell}, first layer, forward ({run})")
    return Path(args.out)


if __name__ == "__main__":
    print(main())
