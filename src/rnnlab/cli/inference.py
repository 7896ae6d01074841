"""A trained model from its checkpoint alone: the task module, and a DataModule that reads text as training did.

A checkpoint written by ``train.py`` holds the weights, the vocabularies (``hyper_parameters``) and
``checkpoint["rnnlab"]``: a format version, the module's class, the resolved run config, whose ``data`` entry
holds every reading and normalisation setting (format, columns, ``lowercase``, languages), and the registered
name of each registered class the model config names (its cells), which loading prefers to the class path.
``load_checkpoint`` checks it and rebuilds the module; ``datamodule`` rebuilds the run's DataModule with the
model's vocabularies, so new text is encoded and batched by the very code that encoded the training data, without
that data.
"""

from __future__ import annotations

import inspect
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from rnnlab.errors import UserError
from rnnlab.registry import class_path, registered
from rnnlab.run.rundir import load_checkpoint_file
from rnnlab.tasks.base import CHECKPOINT_FORMAT, TaskModule

# Modules moved when the package root was split into models/, run/ and cli/, then when modules moved down so that
# no package imports one above it (tests/test_layers.py). Checkpoints written before store class paths in them (the
# run config's callback and logger ``_target_``s); they are read as the new paths, so those checkpoints load
# unchanged, with no format change.
MOVED_MODULES = {f"rnnlab.{name}": f"rnnlab.{package}.{name}" for package, names in {
    "models": ("embeddings", "chars", "decoding"),
    "data": ("pretrained",),
    "run": ("pipeline", "callbacks", "loggers", "rundir", "precision"),
    "cli": ("inference", "evaluate", "predict"),
}.items() for name in names} | {
    "rnnlab.run.errors": "rnnlab.errors",
    "rnnlab.models.pretrained": "rnnlab.data.pretrained",
    "rnnlab.encoders.batch": "rnnlab.kernels.batch",
}


@dataclass
class Loaded:
    """A checkpoint's model and the resolved config of the run that trained it."""

    module: TaskModule
    config: dict
    path: Path

    @property
    def task(self) -> str:
        return self.config["task"]["name"]

    def describe(self) -> str:
        return f"{self.path} holds a {self.task} {self.module.kind}"


def _device(name: str) -> torch.device:
    """``name`` as a device this machine has; checked before reading, so torch's errors are not taken for a bad
    checkpoint."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device={name} is not a device name; use cpu, cuda or cuda:N (the N-th GPU)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise UserError(f"device={name}, but torch {torch.__version__} finds no CUDA GPU; use device=cpu")
        if device.index is not None and device.index >= count:
            raise UserError(f"device={name}, but torch finds {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return device


def _read(path: Path, device: torch.device) -> dict:
    if not path.is_file():
        raise UserError(f"checkpoint {path} {'is a directory' if path.is_dir() else 'not found'}; pass ckpt_path= "
                        f"a .ckpt file written by train.py, e.g. outputs/<task>/<time>/checkpoints/last.ckpt")
    if not zipfile.is_zipfile(path):  # what torch.save writes; torch's own errors on other files are cryptic
        raise UserError(f"{path} is not a checkpoint (not a zip archive, as torch.save writes); pass ckpt_path= "
                        f"a .ckpt file written by train.py")
    try:
        checkpoint = load_checkpoint_file(path, map_location=device)
    except ValueError as reason:
        raise UserError(f"{path} is not a readable checkpoint ({reason}); pass ckpt_path= a .ckpt file written "
                        f"by train.py") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict); pass ckpt_path= a .ckpt file "
                        f"written by train.py")
    return checkpoint


def current_path(path: str, registered_as: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """A class path as this rnnlab names it: that of the implementation ``registered_as`` names it (a
    checkpoint's ``registered``: ``{path: {kind: name}}``), else the path, moved if its module is in
    ``MOVED_MODULES``."""
    if registered_as and path in registered_as:
        [(kind, name)] = registered_as[path].items()
        return class_path(registered(kind, name))
    module, _, name = path.rpartition(".")
    return f"{MOVED_MODULES.get(module, module)}.{name}"


def current_targets(node: Any, registered_as: Mapping[str, Mapping[str, str]] | None = None) -> Any:
    """A stored config (dicts, lists, values) with every ``_target_`` read by ``current_path``."""
    if isinstance(node, dict):
        return {key: current_path(value, registered_as) if key == "_target_" and isinstance(value, str)
                else current_targets(value, registered_as) for key, value in node.items()}
    if isinstance(node, list):
        return [current_targets(item, registered_as) for item in node]
    return node


def _check_format(path: Path, checkpoint: dict) -> dict:
    info = checkpoint.get("rnnlab")
    version = info.get("format") if isinstance(info, dict) else None
    if version is None:
        raise UserError(f"{path} has no rnnlab format version: it was written by an older rnnlab or another "
                        f"program, and lacks what rebuilding the model needs; train it again with this rnnlab")
    if version != CHECKPOINT_FORMAT:
        advice = ("update rnnlab to read it" if version > CHECKPOINT_FORMAT
                  else "train it again, or read it with the rnnlab that wrote it")
        raise UserError(f"{path} has rnnlab checkpoint format {version}, but this rnnlab reads format "
                        f"{CHECKPOINT_FORMAT}; {advice}")
    if not info.get("config"):
        raise UserError(f"{path} holds no run config (its model was not built by train.py), so how to read its "
                        f"text is unknown; train it with train.py")
    return info


def load_checkpoint(path: str | Path, task: str | None = None, device: str = "cpu") -> Loaded:
    """Reads and checks a checkpoint and rebuilds its model, in eval mode on ``device``.

    Args:
        path: the ``.ckpt`` file.
        task: the task the caller expects (e.g. ``ner``); None accepts any supported one.
        device: where the weights go (``cpu``, ``cuda``, ``cuda:1``).

    Raises:
        UserError: ``device`` is no device of this machine; the file is missing or no checkpoint, its format
            version is not this rnnlab's, its task is not supported or not ``task``.
    """
    device = _device(device)
    path = Path(path)
    checkpoint = _read(path, device)
    info = _check_format(path, checkpoint)
    module_class = get_class(current_path(info["module"]))
    registered_as = info.get("registered")  # None in checkpoints from before the record
    config = current_targets(info["config"], registered_as)
    if not (issubclass(module_class, TaskModule) and module_class.kind):
        raise UserError(f"{path} holds a {config['task']['name']} model ({module_class.__name__}); eval.py and "
                        f"predict.py read the task modules that say how (TaskModule.kind and its inference "
                        f"methods)")
    module = module_class(**current_targets(checkpoint["hyper_parameters"], registered_as))
    module.load_state_dict(checkpoint["state_dict"])
    module.run_config = config
    loaded = Loaded(module.to(device).eval(), config, path)
    if task is not None and task != loaded.task:
        raise UserError(f"{loaded.describe()}, not a {task} model; drop task_name= or pass a {task} checkpoint")
    return loaded


def configure(module: TaskModule, options: DictConfig) -> None:
    """Applies the options of an eval.py or predict.py config that change the model's outputs (see
    ``TaskModule.configure_inference``)."""
    try:
        module.configure_inference(options)
    except ValueError as error:
        raise UserError(str(error)) from None


def _merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, key by key down nested dicts."""
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


# The keys conf/eval.yaml declares as null placeholders: null there keeps the checkpoint's value. Any other key
# given null (e.g. +data.comment_prefix=null) sets it to null.
CHECKPOINT_DATA_KEYS = ("format", "encoding", "eval_batch_size", "suffix")


def data_overrides(data: DictConfig) -> dict[str, Any]:
    """The ``data`` entry of an eval.py or predict.py config as overrides, less the placeholders left null."""
    return {key: value for key, value in OmegaConf.to_container(data).items()
            if value is not None or key not in CHECKPOINT_DATA_KEYS}


def datamodule(loaded: Loaded, overrides: dict[str, Any] | None = None):
    """The run's DataModule (its ``data`` config updated by ``overrides``), holding the model's vocabularies.

    Nothing is read: ``read_splits``/``read_file`` then ``add_split`` or ``encode`` bring in data.
    """
    options = _merge(loaded.config["data"], overrides or {})
    data_class = get_class(options.pop("_target_"))
    unknown = sorted(set(overrides or {}) - set(inspect.signature(data_class).parameters))
    if unknown:
        raise UserError(f"data.{unknown[0]} is not an option of {data_class.__name__}, the data of "
                        f"{loaded.describe()}; its options are {sorted(options)}")
    data = data_class(**options)
    data.set_vocabularies(loaded.module.hparams)
    return data


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
