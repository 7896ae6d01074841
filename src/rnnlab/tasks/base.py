"""What every task's LightningModule shares: optimisers, checkpoint contents, epoch-level metrics, and the
interface through which ``eval.py`` and ``predict.py`` use a task without knowing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import lightning as L
import torch.nn.functional as F
from hydra.utils import get_object, instantiate
from torch import Tensor, nn
from torchmetrics import MaxMetric, MinMetric, Metric

from rnnlab.cells import RecurrentCell
from rnnlab.data.pretrained import load_vectors
from rnnlab.data.special import IGNORE_INDEX
from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import UserError
from rnnlab.models.embeddings import Lexicon, WordEmbedder
from rnnlab.registry import class_path, registered_names

# Version of what rnnlab adds to a Lightning checkpoint (``checkpoint["rnnlab"]``); raise it when a change
# makes older rnnlab unable to read new checkpoints.
CHECKPOINT_FORMAT = 1

# predict.py's batches: each input item (a line, or a token list) with its prediction (None for an empty line).
PredictedBatches = Callable[[Iterable[Any]], Iterator[tuple[list, list]]]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def lexicon(vocab: Vocabulary) -> Lexicon:
    """A word or character vocabulary as the model layer takes it."""
    return Lexicon(vocab.items, vocab.pad_id, vocab[vocab.unk])


def implementations(module: nn.Module) -> dict[str, str]:
    """What a model is built from, by kind: the registered name of each part that has one (``{"attention score":
    "general"}``, ``{"language-model network": "rnn"}``), its recurrent cells' classes (``"cell"``: class paths
    rather than ``CELLS`` names, as checkpoints recorded them before cells were registered, and a config's
    ``_target_`` may name an unregistered cell) and its heads' classes (the submodules named ``head`` or ``crf``)."""
    parts = dict(module.named_modules())
    names = registered_names({type(part) for part in parts.values()})
    cells = sorted({class_path(type(part)) for part in parts.values() if isinstance(part, RecurrentCell)})
    heads = [class_path(type(part)) for name, part in parts.items() if name.rsplit(".", 1)[-1] in ("head", "crf")]
    return {**names, **({"cell": ", ".join(cells)} if cells else {}), **({"head": ", ".join(heads)} if heads else {})}


def registered_targets(config: Any) -> dict[str, dict[str, str]]:
    """``{class path: {kind: name}}`` for each ``_target_`` of a config that names a registered implementation (a
    cell), so that a checkpoint is rebuilt from the name wherever the class moves."""
    if not isinstance(config, Mapping):
        return {}
    target = config.get("_target_")
    names = registered_names({get_object(target)}) if isinstance(target, str) else {}
    found = {target: names} if names else {}
    for value in config.values():
        found |= registered_targets(value)
    return found


class TaskModule(L.LightningModule):
    """Base LightningModule.

    Subclasses set ``main_metric`` (e.g. ``"f1"``) and ``higher_is_better``, and build one metric per stage.
    Logged: ``train/loss``, ``<stage>/<metric>`` each epoch, and ``val/<main_metric>_best``.

    A checkpoint holds, besides Lightning's weights and ``hyper_parameters`` (the vocabularies among them),
    ``checkpoint["rnnlab"]``: the ``format`` version, the module's class, ``run_config`` (the resolved run
    config as a plain dict; its ``data`` entry says how text was read and normalised), ``implementations``
    (what the model is built from, by kind: see ``implementations``) and ``registered`` (the registered name of
    each class path of the model config that has one: see ``registered_targets``). So a checkpoint alone
    rebuilds the model and reads new text as training did; see ``rnnlab.cli.inference``.

    ``eval.py`` and ``predict.py`` (``rnnlab.cli``) read a checkpoint through the methods under "inference"
    below, so a new task plugs in by setting ``kind`` and overriding what differs from the defaults; a task
    with ``kind`` None (the synthetic lab) is trained only.

    Args:
        optimizer: a partial optimiser config (``_target_`` + ``_partial_: true``) taking the parameters (the
            task YAML's ``task.optimizer``); None for a model that only predicts.
        scheduler: optional partial scheduler config taking the optimiser; ``ReduceLROnPlateau`` watches
            ``val/<main_metric>`` (give it ``mode: max`` where higher is better) and skips epochs without it.
    """

    main_metric = "loss"
    higher_is_better = False

    kind: str | None = None  # the model's name in messages (e.g. "tagger"); None: eval/predict refuse it
    reads: type | None = None  # the DataModule class (or base) of the data it trains on; None: any (unchecked)
    predictions_extension: str | None = None  # of eval.py's predictions file; None: it writes none
    input_formats: tuple[str, ...] = ("text",)  # predict.py's input_format values it reads
    input_tokens = False  # predict.py hands prediction_example token lists (split lines, CoNLL sentences)
    # An item's prediction does not depend on the batch it is in, so predict.py batches items of similar lengths.
    batch_independent = False
    prediction_modes: tuple[str, ...] = ()  # predict.py's mode values; () : mode= must stay unset

    def __init__(self, optimizer: dict | None = None, scheduler: dict | None = None):
        super().__init__()
        self.optimizer_config = optimizer  # None: a model built to predict only
        self.scheduler_config = scheduler
        self.best = MaxMetric() if self.higher_is_better else MinMetric()
        self.best.persistent(True)  # saved with checkpoints, so a resumed run keeps the best value so far
        self.run_config: dict | None = None  # set by whoever builds the module from a config

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The implementations are a record for readers; loading rebuilds the model from the config, reading the
        # class paths of "registered" by their names. A checkpoint from before either record loads as before.
        checkpoint["rnnlab"] = {"format": CHECKPOINT_FORMAT, "module": class_path(type(self)),
                                "config": self.run_config, "implementations": implementations(self),
                                "registered": registered_targets(self.hparams.get("model"))}

    def configure_optimizers(self) -> Any:
        if self.optimizer_config is None:
            raise UserError("task.optimizer is not set; every conf/task/*.yaml sets one (e.g. torch.optim.Adam with "
                            "_partial_: true)")
        optimizer = instantiate(self.optimizer_config)(self.parameters())
        if not self.scheduler_config:
            return optimizer
        scheduler = instantiate(self.scheduler_config)(optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": f"val/{self.main_metric}", "interval": "epoch",
                                 "strict": False}}  # runs without validation (timing runs) keep the last rate

    def on_fit_start(self) -> None:
        # Pretrained word vectors are read for a fresh run only: a resumed run, like a loaded checkpoint,
        # takes its weights from the checkpoint (restored before this hook) and never reads the vectors.
        if self.trainer.ckpt_path is None:
            self.load_pretrained()

    def load_pretrained(self) -> None:
        """Reads the pretrained vectors of every ``WordEmbedder``; a task with other embeddings extends it."""
        for module in self.modules():
            if isinstance(module, WordEmbedder) and module.pretrained_vectors:
                load_vectors(module.embedding, module.pretrained_vectors, module.words)

    # ------------------------------------------------------------- inference
    def configure_inference(self, options: Mapping[str, Any]) -> None:
        """Takes the options of an ``eval.py`` or ``predict.py`` config that change this model's outputs (e.g.
        a translation model's ``beam_size``); the default reads none.

        Raises:
            ValueError: an option's value is invalid (the message names it).
        """

    def check_prediction_options(self, options: Mapping[str, Any]) -> None:
        """Checks ``predict.py``'s ``mode`` and ``input_format`` against ``prediction_modes`` and ``input_formats``.

        Raises:
            ValueError: what this model cannot do, and what to pass instead.
        """
        mode, modes = options["mode"], self.prediction_modes
        if mode is None and modes:
            raise ValueError(f"set mode= to one of {modes}")
        if mode is not None and not modes:
            raise ValueError(f"drop mode=: a {self.kind} has no modes")
        if mode is not None and mode not in modes:
            raise ValueError(f"mode={mode} is not a mode; use one of {modes}")
        if options["input_format"] not in self.input_formats:
            raise ValueError(f"input_format={options['input_format']} is not for a {self.kind}; use "
                             + " or ".join(f"input_format={name}" for name in self.input_formats))

    def finds_input(self, path: str) -> bool:
        """Whether ``eval.py``'s ``input=`` names something to read: by default, an existing file."""
        return Path(path).is_file()

    def prepare_evaluation(self, data: L.LightningDataModule) -> None:
        """Adapts the model to the evaluation data, once it is read; by default nothing to do."""

    def format_predictions(self, examples: list[dict], outputs: list) -> str:
        """``eval.py``'s predictions file (``predictions_extension`` set): the examples' ``predict_step``
        outputs as text, in order."""
        raise NotImplementedError(f"{type(self).__name__} sets predictions_extension but formats no predictions")

    def prediction_example(self, item: Any) -> dict | None:
        """A ``predict.py`` input item (a line, or a token list with ``input_tokens``) as an example of the
        DataModule's ``encode``; None for an empty input, answered by an empty line."""
        raise NotImplementedError(f"{type(self).__name__} sets a kind but reads no input")

    def render_prediction(self, item: Any, prediction: Any) -> str:
        """One input item and its ``predict_step`` output as ``predict.py``'s output text (an empty input is
        answered by an empty line without asking)."""
        raise NotImplementedError(f"{type(self).__name__} sets a kind but renders no predictions")

    def prediction_output(self, items: Iterable[Any], predicted: PredictedBatches,
                          options: Mapping[str, Any]) -> Iterator[str]:
        """``predict.py``'s output, a chunk per batch (each flushed once written, so it survives a later error).

        Args:
            items: the input items, read lazily.
            predicted: batches of items with their predictions, from ``items``.
            options: the ``predict.py`` config.
        """
        for batch, predictions in predicted(items):
            yield "".join("\n" if prediction is None else self.render_prediction(item, prediction)
                          for item, prediction in zip(batch, predictions))

    # ------------------------------------------------------------- metrics
    def log_metric(self, stage: str, metric: Metric) -> dict[str, Tensor]:
        """Computes, logs and resets an epoch metric; tracks the best validation value."""
        values = metric.compute()
        metric.reset()
        return self.log_values(stage, values if isinstance(values, dict) else {self.main_metric: values})

    def log_values(self, stage: str, values: dict[str, Tensor]) -> dict[str, Tensor]:
        """Logs epoch values as ``<stage>/<name>``; tracks the best validation value of ``main_metric``."""
        self.log_dict({f"{stage}/{name}": value for name, value in values.items()})
        if stage == "val" and not self.trainer.sanity_checking:  # the sanity check is no result
            self.best(values[self.main_metric])
            self.log(f"val/{self.main_metric}_best", self.best.compute())
        return values


class SupervisedTask(TaskModule):
    """A task whose metric compares predictions with ``batch[target_key]``: the train/eval steps, once.

    Subclasses declare the batch entries their ``forward`` reads (``inputs``) and build ``self.metrics``, a
    ``ModuleDict`` with ``val`` and ``test`` metrics; the loss is cross-entropy unless they override
    ``compute_loss``.
    """

    inputs: tuple[str, ...] = ("tokens", "mask")  # what ``forward`` reads, in order (None for an absent entry)
    target_key = "targets"

    def scores(self, batch: dict) -> Tensor:
        """``forward`` on the batch's ``inputs``."""
        return self(*(batch.get(key) for key in self.inputs))

    def compute_loss(self, batch: dict) -> tuple[Tensor, Tensor]:
        """``(loss, predictions)`` of a batch; predictions are what the metrics compare with the targets.

        By default: the mean cross-entropy of the ``(..., C)`` scores over the targets that are not
        ``IGNORE_INDEX``, and the most probable class.
        """
        scores = self.scores(batch)
        targets = batch[self.target_key]
        return F.cross_entropy(scores.flatten(0, -2), targets.flatten(), ignore_index=IGNORE_INDEX), scores.argmax(-1)

    def batch_size(self, batch: dict) -> int:
        """How many targets the batch's mean loss averages over (weights the epoch average of the loss)."""
        return len(batch[self.target_key])

    def training_loss(self, batch: dict) -> Tensor:
        """The loss alone; subclasses whose predictions are costly (Viterbi) skip them here."""
        return self.compute_loss(batch)[0]

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self.training_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=self.batch_size(batch))
        return loss

    def _evaluate(self, stage: str, batch: dict) -> None:
        loss, predictions = self.compute_loss(batch)
        self.log(f"{stage}/loss", loss, batch_size=self.batch_size(batch), sync_dist=True)
        self.metrics[stage].update(predictions, batch[self.target_key])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("test", batch)

    def end_epoch(self, stage: str) -> None:
        """Logs the stage's epoch metrics; subclasses may log more."""
        self.log_metric(stage, self.metrics[stage])

    def on_validation_epoch_end(self) -> None:
        self.end_epoch("val")

    def on_test_epoch_end(self) -> None:
        self.end_epoch("test")
