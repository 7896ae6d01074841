"""Predictions of a checkpoint on new text, streamed in batches; ``predict.py`` is a thin wrapper around ``predict``.

Input: one sentence a line (``input_format=text``, tokens split on whitespace), or CoNLL / CoNLL-U sentences
for taggers. Output, one record per input sentence, in order:

- tagger: ``token<TAB>tag`` lines, a blank line after each sentence;
- classifier: ``label<TAB>probability<TAB>text``;
- translation model: the detokenised translation;
- language model, ``mode=score``: ``perplexity<TAB>tokens<TAB>text`` (tokens: the words and ``<eos>``), then a
  last line ``perplexity<TAB>tokens<TAB><total>`` over all lines; ``mode=generate``: ``num_samples`` lines per
  prompt line, the prompt and its sampled continuation (sample ``i`` drawn with seed ``seed + i``).

An empty (whitespace-only) line is answered by an empty line for taggers, classifiers and translation (so
output stays aligned with input); a language model scores it as the empty sentence ``<bos> <eos>`` and
generates from ``<bos>`` alone. Output is flushed after every batch, so what was written survives a later error.
"""

from __future__ import annotations

import math
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from omegaconf import DictConfig
from tqdm import tqdm

from rnnlab.data.readers import read_conll, read_conllu, read_lines
from rnnlab.errors import UserError
from rnnlab.evaluate import conll_block, decoding_overrides
from rnnlab.inference import Loaded, batched, data_overrides, datamodule, load_checkpoint
from rnnlab.tasks.classification import ClassificationModule
from rnnlab.tasks.lm import LanguageModelModule
from rnnlab.tasks.tagging import TaggingModule
from rnnlab.tasks.translation import TranslationModule

MODES = ("generate", "score")
INPUT_FORMATS = ("text", "conll", "conllu")
STDIN = "-"


def _check_options(cfg: DictConfig, loaded: Loaded) -> None:
    module = loaded.module
    if isinstance(module, LanguageModelModule) != (cfg.mode is not None):
        advice = (f"set mode= to one of {MODES}" if cfg.mode is None
                  else "drop mode=: it is for language models")
        raise UserError(f"{loaded.describe()}; {advice}")
    if cfg.mode is not None and cfg.mode not in MODES:
        raise UserError(f"mode={cfg.mode} is not a mode; use one of {MODES}")
    if cfg.input_format not in INPUT_FORMATS:
        raise UserError(f"input_format={cfg.input_format} is not a format; use one of {INPUT_FORMATS}")
    if cfg.input_format != "text" and not isinstance(module, TaggingModule):
        raise UserError(f"{loaded.describe()}; input_format={cfg.input_format} is for taggers, use "
                        f"input_format=text (one sentence a line)")
    if cfg.batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.input != STDIN and not Path(cfg.input).is_file():
        raise UserError(f"input {cfg.input} not found; pass input= a file, or input=- to read stdin")


def _items(cfg: DictConfig, data: Any, tokens: bool) -> Iterator[Any]:
    """The input sentences: lines (token lists when ``tokens``), or CoNLL sentences as token lists.

    CoNLL columns are read with the tagger's data options (``token_column``, ``delimiter``,
    ``comment_prefix``: the checkpoint's, or ``+data.*`` overrides); tags, if any, are not read.
    """
    if cfg.input_format != "text":
        path = "/dev/stdin" if cfg.input == STDIN else cfg.input
        sentences = (read_conll(path, data.token_column, encoding=cfg.encoding, delimiter=data.delimiter,
                                comment_prefix=data.comment_prefix) if cfg.input_format == "conll"
                     else read_conllu(path, encoding=cfg.encoding))
        yield from (sentence["tokens"] for sentence in sentences)
        return
    lines = ((line.rstrip("\r\n") for line in sys.stdin) if cfg.input == STDIN
             else (line for _, line in read_lines(cfg.input, cfg.encoding)))
    yield from ((line.split() for line in lines) if tokens else lines)


def _example(module: Any, item: Any) -> dict | None:
    """An input sentence as a DataModule example; None for an empty line (answered by an empty line)."""
    if isinstance(module, LanguageModelModule):
        return {"tokens": item.split()}
    if not (item if isinstance(module, TaggingModule) else item.strip()):
        return None
    if isinstance(module, TaggingModule):
        return {"tokens": item}
    if isinstance(module, ClassificationModule):
        return {"text": item}
    return {"source": item.strip(), "target": "", "index": 0}


def _render(module: Any, item: Any, prediction: Any) -> str:
    """One input sentence and its prediction as output text."""
    if prediction is None:
        return "\n"
    if isinstance(module, TaggingModule):
        return conll_block([item, prediction])
    if isinstance(module, ClassificationModule):
        label, probability = prediction
        return f"{label}\t{probability:.4f}\t{item}\n"
    if isinstance(module, LanguageModelModule):
        nll, count = prediction
        return f"{math.exp(nll / count):.4f}\t{count}\t{item}\n"
    return prediction + "\n"


def _predict_batch(loaded: Loaded, data: Any, items: list, device: str) -> list:
    """The prediction of each item (None for an empty line), through the DataModule's encoding and collate."""
    examples = [_example(loaded.module, item) for item in items]
    kept = [example for example in examples if example is not None]
    if not kept:
        return [None] * len(items)
    batch = move_data_to_device(data.collate_fn()(data.encode(kept)), device)
    with torch.inference_mode():
        predictions = iter(loaded.module.predict_step(batch))
    return [None if example is None else next(predictions) for example in examples]


def _generate(cfg: DictConfig, module: LanguageModelModule, prompts: Iterable[str], output: IO[str]) -> None:
    max_length = 50 if cfg.max_length is None else cfg.max_length
    try:
        for prompt in prompts:
            words = prompt.split()
            for i in range(cfg.num_samples):
                sample = module.sample(words, max_length, cfg.temperature, cfg.top_k, cfg.seed + i)
                output.write(" ".join([*words, *sample]) + "\n")
            output.flush()
    except ValueError as error:  # the sampling options, checked by LanguageModelModule.sample
        raise UserError(str(error)) from None


def _open_output(path: str | None) -> AbstractContextManager[IO[str]]:
    if path is None or path == STDIN:
        return nullcontext(sys.stdout)
    try:
        return open(path, "w", encoding="utf-8")
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
    if isinstance(module, TranslationModule):
        decoding_overrides(module, cfg.beam_size, cfg.max_length)
    data = datamodule(loaded, data_overrides(cfg.data))
    items = tqdm(_items(cfg, data, tokens=isinstance(module, TaggingModule)), unit=" sentences", file=sys.stderr,
                 disable=not sys.stderr.isatty())
    with _open_output(cfg.output) as output:
        if cfg.mode == "generate":
            _generate(cfg, module, items, output)
            return
        total_nll, total_count = 0.0, 0
        for batch in batched(items, cfg.batch_size):
            for item, prediction in zip(batch, _predict_batch(loaded, data, batch, cfg.device)):
                output.write(_render(module, item, prediction))
                if cfg.mode == "score":
                    total_nll, total_count = total_nll + prediction[0], total_count + prediction[1]
            output.flush()
        if cfg.mode == "score":
            output.write(f"{math.exp(total_nll / max(total_count, 1)):.4f}\t{total_count}\t<total>\n")
