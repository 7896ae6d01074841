"""Predictions of a checkpoint on new text, streamed in batches; ``predict.py`` is a thin wrapper around ``predict``.

Input: one sentence a line (``input_format=text``), or CoNLL / CoNLL-U sentences for tasks that read tokens
(taggers). What each input becomes and how its prediction is written is the task module's (see
``TaskModule.prediction_output`` and its overrides):

- tagger: ``token<TAB>tag`` lines, a blank line after each sentence;
- classifier: ``label<TAB>probability<TAB>text``;
- translation model: the detokenised translation;
- language model, ``mode=score``: ``perplexity<TAB>tokens<TAB>text`` (tokens: the words and ``<eos>``), then a
  last line ``perplexity<TAB>tokens<TAB><total>`` over all lines; ``mode=generate``: ``num_samples`` lines per
  prompt line, the prompt and its sampled continuation (sample ``i`` drawn with seed ``seed + i``).

An empty (whitespace-only) line is answered by an empty line for taggers, classifiers and translation (so
output stays aligned with input); a language model scores it as the empty sentence ``<bos> <eos>`` and
generates from ``<bos>`` alone. Output is flushed after every batch, so what was written survives a later error.
Taggers and classifiers read ``sort_window`` batches at a time and predict them in batches of similar lengths
(``TaskModule.batch_independent``), writing them in input order.
"""

from __future__ import annotations

import dataclasses
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from omegaconf import DictConfig
from tqdm import tqdm

from rnnlab.atomic import replacing
from rnnlab.cli.inference import Loaded, batched, configure, data_overrides, datamodule, load_checkpoint
from rnnlab.data.formats import COLUMN_FORMATS
from rnnlab.data.readers import read_lines
from rnnlab.errors import UserError

STDIN = "-"


def _check_options(cfg: DictConfig, loaded: Loaded) -> None:
    formats = ("text", *COLUMN_FORMATS)
    if cfg.input_format not in formats:
        raise UserError(f"input_format={cfg.input_format} is not a format; use one of {formats}")
    try:
        loaded.module.check_prediction_options(cfg)
    except ValueError as error:
        raise UserError(f"{loaded.describe()}; {error}") from None
    for option in ("batch_size", "sort_window"):
        if cfg[option] < 1:
            raise UserError(f"{option} must be >= 1, got {cfg[option]}")
    if cfg.input != STDIN and not Path(cfg.input).is_file():
        state = "is a directory" if Path(cfg.input).is_dir() else "not found"
        raise UserError(f"input {cfg.input} {state}; pass input= a file, or input=- to read stdin")


def _items(cfg: DictConfig, data: Any, tokens: bool) -> Iterator[Any]:
    """The input sentences: lines (token lists when ``tokens``), or the token lists of a column format's sentences.

    Columns are read with the DataModule's options (``token_column``, ``delimiter``, ``comment_prefix``: the
    checkpoint's, or ``+data.*`` overrides) and ``encoding``; tags, if any, are not read.
    """
    if cfg.input_format != "text":
        path = Path("/dev/stdin" if cfg.input == STDIN else cfg.input)
        options = dataclasses.replace(data.columns, tag_column=None, encoding=cfg.encoding)
        yield from (sentence["tokens"] for sentence in COLUMN_FORMATS[cfg.input_format](path, options))
        return
    lines = ((line.rstrip("\r\n") for line in sys.stdin) if cfg.input == STDIN
             else (line for _, line in read_lines(cfg.input, cfg.encoding)))
    yield from ((line.split() for line in lines) if tokens else lines)


def _predict_batch(loaded: Loaded, data: Any, items: list, device: str) -> list:
    """The prediction of each item (None for an empty line), through the DataModule's encoding and collate."""
    examples = [loaded.module.prediction_example(item) for item in items]
    kept = [example for example in examples if example is not None]
    if not kept:
        return [None] * len(items)
    batch = move_data_to_device(data.collate_fn()(data.encode(kept)), device)
    with torch.inference_mode():
        predictions = iter(loaded.module.predict_step(batch))
    return [None if example is None else next(predictions) for example in examples]


def _predict_by_length(loaded: Loaded, data: Any, items: list, batch_size: int, device: str) -> list:
    """The predictions of ``items`` in their order, computed in batches of items of similar lengths: less
    padding (CoNLL-2003's test set: about twice the sentences per second on a CPU)."""
    order = sorted(range(len(items)), key=lambda i: len(items[i]))  # tokens, or characters of a line
    predictions: list = [None] * len(items)
    for batch in batched(order, batch_size):
        for i, prediction in zip(batch, _predict_batch(loaded, data, [items[i] for i in batch], device)):
            predictions[i] = prediction
    return predictions


@contextmanager
def _open_output(path: str | None) -> Iterator[IO[str]]:
    """Standard output, or a file written beside ``path`` and renamed to it once every prediction is in it: a
    failure on the way leaves an earlier file at ``path`` as it was."""
    if path is None or path == STDIN:
        yield sys.stdout
        return
    try:
        with replacing(path) as temporary, open(temporary, "w", encoding="utf-8") as output:
            yield output
    except OSError as error:
        raise UserError(f"cannot write output={path} ({error.strerror}); choose a writable file, or leave output "
                        f"unset to print to stdout") from None


def predict(cfg: DictConfig) -> None:
    """Reads ``cfg.input`` and writes the predictions of ``cfg.ckpt_path`` to ``cfg.output`` (or stdout).

    See the module docstring for the formats and conf/predict.yaml for the options. Everything about the
    checkpoint and the options is checked before the output file is opened, so a mistake truncates nothing.
    """
    loaded = load_checkpoint(cfg.ckpt_path, cfg.get("task_name"), cfg.device)
    _check_options(cfg, loaded)
    module = loaded.module
    configure(module, cfg)
    data = datamodule(loaded, data_overrides(cfg.data))
    items = tqdm(_items(cfg, data, tokens=module.input_tokens), unit=" sentences", file=sys.stderr,
                 disable=not sys.stderr.isatty())

    def predicted(items: Iterable) -> Iterator[tuple[list, list]]:
        if not module.batch_independent:
            for batch in batched(items, cfg.batch_size):
                yield batch, _predict_batch(loaded, data, batch, cfg.device)
            return
        for window in batched(items, cfg.batch_size * cfg.sort_window):
            yield window, _predict_by_length(loaded, data, window, cfg.batch_size, cfg.device)

    with _open_output(cfg.output) as output:
        for chunk in module.prediction_output(items, predicted, cfg):
            output.write(chunk)
            output.flush()
