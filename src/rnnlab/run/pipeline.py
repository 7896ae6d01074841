"""Training and evaluation from a composed Hydra config; ``train.py`` is a thin wrapper around ``train``."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
from hydra.experimental.callback import Callback
from hydra.utils import get_class, instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from rnnlab.atomic import write_atomic
from rnnlab.config import CONF, check_typed
from rnnlab.data.bucketed import BucketedDataModule
from rnnlab.data.pretrained import vector_words
from rnnlab.errors import Stopped, UserError, report
from rnnlab.metrics.declared import METRICS
from rnnlab.run.callbacks import stop_reason
from rnnlab.run.loggers import finish_wandb
from rnnlab.run.precision import choose_precision
from rnnlab.run.rundir import (AtomicCheckpointIO, check_resumable, make_writable_dir, read_checkpoint,
                               resume_checkpoint)
from rnnlab.tasks.base import count_parameters

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list:
    """Instantiates every entry of a config group holding named ``_target_`` nodes (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def _plain(node: DictConfig | None) -> dict | None:
    """A resolved plain-dict copy, so checkpoints hold no OmegaConf objects."""
    return None if node is None else OmegaConf.to_container(node, resolve=True)


def check_metric_direction(metric: str, mode: str) -> None:
    """Stops a run whose ``task.mode`` contradicts its ``task.optimized_metric`` (e.g. ``val/bleu`` with ``min``)."""
    name = metric.rsplit("/", 1)[-1].split("_", 1)[0]  # val/f1_PER -> f1
    better = METRICS[name].better if name in METRICS else None
    if better is not None and mode != better:
        raise UserError(f"task.optimized_metric={metric} is better when {'higher' if better == 'max' else 'lower'}"
                        f", but task.mode={mode}; set task.mode={better}")


def _data_class(path: Path) -> type:
    """The DataModule class of a ``conf/data`` file, or of the file it extends (``defaults: [sst2, _self_]``)."""
    data = OmegaConf.load(path)
    if "_target_" in data:
        return get_class(data._target_)
    parent = next(entry for entry in data.defaults if entry != "_self_")
    return _data_class(path.with_name(f"{parent}.yaml"))


def check_task_fits_data(task: DictConfig, data: DictConfig) -> None:
    """Stops a run whose task cannot read its data (``task=ner data=sst2``) before any data is read.

    Args:
        task: the ``task`` config; its module class's ``reads`` names the DataModule class it trains on.
        data: the ``data`` config.

    Raises:
        UserError: naming both, and the data configs the task reads.
    """
    reads = get_class(task.module._target_).reads
    data_class = get_class(data._target_)
    if reads is None or issubclass(data_class, reads):
        return
    fitting = sorted(path.stem for path in (CONF / "data").glob("*.yaml") if issubclass(_data_class(path), reads))
    raise UserError(f"task={task.name} trains on {reads.__name__} data, but data={data.get('name', '?')} is "
                    f"{data_class.__name__} data; choose data= one of {fitting}, or a task that reads it")


class CheckTaskFitsData(Callback):
    """Hydra callback: ``check_task_fits_data`` on the composed config of a single run, before Hydra writes its
    ``.hydra/`` files into the run folder (they would replace those of a run already there). Each job of a
    multirun is checked by ``build``, its folder being its own."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        if "task" in config and "data" in config:  # the configs composing train.yaml; others have neither
            try:
                check_task_fits_data(config.task, config.data)
            except UserError as error:  # raised, it would reach the user as Hydra's traceback
                report(error)


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The DataModule (data read, vocabularies built) and the task's LightningModule sized from it.

    With ``model.pretrained_vectors``, validation and test words that the vectors hold join the input
    vocabulary (``BucketedDataModule.extend_vocabulary``); a language model's vocabulary is also its output
    classes, so it is left as train makes it. A resumed run lists the vectors' words again, so that its
    vocabulary comes out as the first run's; their values are read only by a run from scratch.
    """
    check_task_fits_data(cfg.task, cfg.data)
    datamodule = instantiate(cfg.data)
    vectors = cfg.model.get("pretrained_vectors")
    if vectors and isinstance(datamodule, BucketedDataModule):
        datamodule.pretrained_words = vector_words(vectors, cfg.model.embedding_dim)
    datamodule.setup("fit")  # vocabularies are built once, here, before any process is spawned
    module = build_module(cfg, datamodule)
    module.run_config = _plain(cfg)  # saved in checkpoints
    return datamodule, module


def build_module(cfg: DictConfig, datamodule: L.LightningDataModule) -> L.LightningModule:
    """The task's LightningModule of ``cfg``, sized from ``datamodule``'s vocabularies (set up already)."""
    # Called directly, not through instantiate: vocabularies are data, and words such as "???" or "${x}"
    # must not be read as OmegaConf syntax.
    options = _plain(cfg.task.module)
    module_class = get_class(options.pop("_target_"))
    return module_class(**options, model=_plain(cfg.model), optimizer=_plain(cfg.task.optimizer),
                        scheduler=_plain(cfg.task.get("scheduler")), **datamodule.model_kwargs())


def train(cfg: DictConfig, extra_callbacks: list[L.Callback] | None = None) -> dict[str, float]:
    """Trains, then tests the best checkpoint; returns every logged metric as a float.

    The run directory (``paths.output_dir``) receives the resolved config, the vocabularies
    (``vocab.json``) and ``metrics.json``.

    Args:
        cfg: the composed config.
        extra_callbacks: callbacks built in code, after those of ``cfg.callbacks`` (e.g. the pruning callback of
            ``rnnlab.run.tuning``).
    """
    check_typed(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    check_metric_direction(cfg.task.optimized_metric, cfg.task.mode)
    output_dir = make_writable_dir(cfg.paths.output_dir, "paths.output_dir")
    ckpt_path = resume_checkpoint(cfg.get("ckpt_path"), output_dir)
    precision = choose_precision(cfg.trainer.get("precision"), cfg.trainer.get("accelerator", "auto"))
    resumed = read_checkpoint(ckpt_path) if ckpt_path else None  # a damaged checkpoint stops before the data is read
    datamodule, module = build(cfg)
    if resumed is not None:
        check_resumable(resumed, ckpt_path, _plain(cfg.data), datamodule.model_kwargs())
    write_atomic(output_dir / "vocab.json", json.dumps(datamodule.model_kwargs(), ensure_ascii=False))
    num_parameters = count_parameters(module)
    cell = cfg.model.get("cell")
    log.info("model: %s%s, %d trainable parameters", cfg.model.get("name", "?"),
             f" with {cell._target_.rsplit('.', 1)[-1]}" if cell else "", num_parameters)

    loggers = _instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, precision=precision, plugins=[AtomicCheckpointIO()],
                                     callbacks=[*_instantiate_all(cfg.get("callbacks")), *(extra_callbacks or [])],
                                     logger=loggers or False)
    try:
        for logger in trainer.loggers:
            logger.log_hyperparams({**_plain(cfg), "num_parameters": num_parameters})
        metrics = _fit_and_test(cfg, trainer, module, datamodule, ckpt_path)
    except BaseException:
        finish_wandb(trainer.loggers, failed=True)
        raise
    metrics["num_parameters"] = num_parameters
    finish_wandb(trainer.loggers, summary=metrics)  # before the next job of a multirun starts its own run
    write_atomic(output_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    log.info("metrics: %s", json.dumps({k: round(v, 4) for k, v in sorted(metrics.items())}))
    return metrics


def _fit_and_test(cfg: DictConfig, trainer: L.Trainer, module: L.LightningModule,
                  datamodule: L.LightningDataModule, ckpt_path: str | None) -> dict[str, float]:
    """Fits (resuming from ``ckpt_path`` if given), then tests the best checkpoint when ``cfg.test``; returns the
    logged metrics and ``train_seconds``."""
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        raise Stopped(f"stopped by SIGTERM at global step {trainer.global_step} (epoch {trainer.current_epoch}); "
                      f"to resume, run the same command with hydra.run.dir={cfg.paths.output_dir} "
                      "ckpt_path=last") from None
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    metrics["train_seconds"] = time.perf_counter() - started
    log.info("training stopped: %s", stop_reason(trainer))
    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()
                        if name.startswith("test/")})
    return metrics
