"""Metrics and predictions of a checkpoint on a split or a file; ``eval.py`` is a thin wrapper around ``evaluate``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from rnnlab.atomic import write_atomic
from rnnlab.cli.inference import Loaded, configure, data_overrides, datamodule, load_checkpoint
from rnnlab.errors import UserError
from rnnlab.run.precision import choose_precision
from rnnlab.run.rundir import make_writable_dir

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def _data_overrides(cfg: DictConfig) -> dict:
    overrides = data_overrides(cfg.data)
    if cfg.paths.get("data_dir"):
        overrides["data_dir"] = cfg.paths.data_dir
    return overrides


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Tests a checkpoint on ``cfg.split`` of its data (or on the file ``cfg.input``) and writes into
    ``paths.output_dir``: ``metrics.json`` and, for tasks with a ``predictions_extension`` (not language
    models), ``predictions/<name>.<ext>``.

    ``<name>`` is the split, or the input file's stem; the metrics are keyed ``<name>/<metric>``, so
    ``split=test`` reproduces the ``test/...`` metrics training logged for the same checkpoint.

    Returns:
        The metrics.
    """
    output_dir = make_writable_dir(cfg.paths.output_dir, "paths.output_dir")
    loaded: Loaded = load_checkpoint(cfg.ckpt_path, cfg.get("task_name"))
    module = loaded.module
    configure(module, cfg)
    data = datamodule(loaded, _data_overrides(cfg))
    if cfg.get("input"):
        if not module.finds_input(cfg.input):
            raise UserError(f"input {cfg.input} not found; pass input= a file in the model's data format")
        name = Path(cfg.input).name.split(".")[0] or "input"
        examples = data.read_file(cfg.input)
    elif cfg.split in SPLITS:
        name = cfg.split
        examples = data.read_splits((name,))[name]
    else:
        raise UserError(f"split={cfg.split} is not a split; use one of {', '.join(SPLITS)}, or input=FILE")
    data.add_split(name, examples)
    module.prepare_evaluation(data)
    log.info("%s; evaluating on %s (%d examples)", loaded.describe(), name, len(examples))

    precision = choose_precision(cfg.trainer.get("precision"), cfg.trainer.get("accelerator", "auto"))
    trainer: L.Trainer = instantiate(cfg.trainer, precision=precision)
    loader = data.ordered_dataloader(name)
    trainer.test(module, dataloaders=loader, verbose=False)
    metrics = {f"{name}/{key.split('/', 1)[1]}": float(value) for key, value in trainer.callback_metrics.items()
               if key.startswith("test/")}
    if module.predictions_extension:
        outputs = [item for batch in trainer.predict(module, dataloaders=loader) for item in batch]
        text = module.format_predictions(examples, outputs)
        (output_dir / "predictions").mkdir(exist_ok=True)
        write_atomic(output_dir / "predictions" / f"{name}.{module.predictions_extension}", text)
    write_atomic(output_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    log.info("metrics: %s", json.dumps({k: round(v, 4) for k, v in sorted(metrics.items())}))
    return metrics
