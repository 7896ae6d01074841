"""The run directory: checked to be writable before anything runs, checkpoints written whole, and the checkpoint
``ckpt_path=last`` means, checked to fit the run that resumes it."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from hydra.experimental.callback import Callback
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from omegaconf import DictConfig

from rnnlab.atomic import replacing
from rnnlab.errors import UserError, report


def make_writable_dir(path: str | Path, option: str) -> Path:
    """Creates ``path`` if needed and checks that files can be written there.

    Raises:
        UserError: naming the path and ``option``, the setting that chose it.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the output directory {path} ({error.strerror}); set {option}=... to a "
                        f"writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"the output directory {path} is not writable; set {option}=... to a writable folder")
    return path


class CheckRunDir(Callback):
    """Hydra callback: a clear error, before Hydra creates it, when the run (or sweep) directory cannot be written."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")

    @staticmethod
    def _check(path: str, option: str) -> None:
        try:
            make_writable_dir(path, option)
        except UserError as error:  # raised, it would reach the user as Hydra's traceback
            report(error)


def resume_checkpoint(ckpt_path: str | None, output_dir: Path) -> str | None:
    """The checkpoint to resume from: ``last`` is ``<output_dir>/checkpoints/last.ckpt``; any path must exist.

    Raises:
        UserError: the checkpoint does not exist.
    """
    if not ckpt_path:
        return None
    path = output_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        found = f"{path} is a directory" if path.is_dir() else f"no checkpoint at {path}"
        raise UserError(f"ckpt_path={ckpt_path}: {found}; to resume a run, give its folder with "
                        f"hydra.run.dir=<run folder> (or paths.output_dir) and ckpt_path=last, or a checkpoint file")
    return str(path)


# Data options a resumed run may set anew: they change neither the examples, their order nor the vocabularies.
FREE_DATA_OPTIONS = frozenset({"num_workers", "eval_batch_size", "data_dir"})


def load_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict:
    """A checkpoint's content, read without running code (``weights_only``) once every member of its archive
    has passed its checksum.

    Raises:
        ValueError: why the file cannot be read, in one line (truncated, a failed checksum, not an archive).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
        if damaged is not None:
            raise zipfile.BadZipFile(f"{damaged} fails its checksum")
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # zipfile and torch raise several types for files they cannot read
        raise ValueError(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__) from None


def read_checkpoint(path: str) -> dict:
    """The content of the checkpoint a run resumes from (memory-mapped).

    Raises:
        UserError: the file is damaged.
    """
    try:
        return load_checkpoint_file(path, mmap=True)
    except ValueError as reason:
        raise UserError(f"cannot resume from {path}: it is damaged ({reason}). Resume from another checkpoint "
                        f"(ckpt_path=<file>, e.g. checkpoints/best.ckpt of the run) or start again in a new "
                        f"folder") from None


def _describe(value: Any) -> str:
    items = value.get("items") if isinstance(value, dict) else None
    return f"{len(items)} entries" if isinstance(items, list) else repr(value)


def check_resumable(checkpoint: dict, path: str, data: dict, model_kwargs: dict) -> None:
    """Stops a resume from a checkpoint written by a run on other data.

    Args:
        checkpoint: the checkpoint's content (``read_checkpoint``).
        path: its path, for the message.
        data: this run's resolved ``data`` config.
        model_kwargs: this run's vocabularies and sizes (``model_kwargs()`` of its DataModule).

    Raises:
        UserError: naming the checkpoint and the first option or vocabulary that differs.
    """
    advice = ("resume with the options of the run that wrote it (its .hydra/config.yaml lists them), or start a "
              "new run in another folder (hydra.run.dir=...)")
    stored = ((checkpoint.get("rnnlab") or {}).get("config") or {}).get("data") or {}
    for key in sorted(set(stored) | set(data) if stored else ()):
        if key not in FREE_DATA_OPTIONS and stored.get(key) != data.get(key):
            raise UserError(f"cannot resume from {path}: it was written with data.{key}={stored.get(key)!r}, this "
                            f"run has data.{key}={data.get(key)!r}; {advice}")
    saved = checkpoint.get("hyper_parameters") or {}
    for name, value in model_kwargs.items():
        if name in saved and saved[name] != value:
            raise UserError(f"cannot resume from {path}: the {name} built from the data ({_describe(value)}) differs "
                            f"from the checkpoint's ({_describe(saved[name])}), so the data files changed since; "
                            f"{advice}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but a local checkpoint is written beside its path and renamed over it.

    Lightning writes into the file itself, so a full disk or a kill while writing left a truncated ``last.ckpt``
    where a good one was. Here the previous checkpoint stays whole until the new one is complete; a failed write
    stops the run with an error that names the path.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        serialized = io.BytesIO()  # in memory first, as Lightning does: a failed write is then an OSError
        torch.save(checkpoint, serialized)
        try:
            with replacing(path) as temporary:
                temporary.write_bytes(serialized.getbuffer())
        except OSError as error:
            raise UserError(f"could not write the checkpoint {path} ({error.strerror or error}); the checkpoint "
                            f"that was there is unchanged. Free disk space in {Path(path).parent} (or set "
                            f"paths.output_dir=... elsewhere) and resume with ckpt_path=last") from None
