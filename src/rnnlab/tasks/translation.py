"""Machine translation with the lecture's encoder-decoder: the source representation initialises a conditional LM."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import sacrebleu
import torch
import torch.distributed as dist
import torch.nn.functional as F
from hydra.utils import instantiate
from sacremoses import MosesDetokenizer
from torch import Tensor
from torchmetrics import MaxMetric

from rnnlab.config import DecoderConfig, DecodingConfig, complete, with_model_defaults
from rnnlab.data.batching import pad_sequences
from rnnlab.data.pretrained import load_vectors
from rnnlab.data.special import BOS, EOS
from rnnlab.data.translation import TranslationDataModule
from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import UserError
from rnnlab.metrics import Perplexity
from rnnlab.models.builder import build_word_model
from rnnlab.models.decoding import LENGTH_NORMS, STRATEGIES, Bridge, RNNDecoder, States, beam_hypotheses, decode
from rnnlab.tasks.base import PredictedBatches, TaskModule, lexicon


def corpus_scores(hypotheses: list[str], references: list[str], lowercase: bool = False) -> dict[str, float]:
    """Corpus BLEU and chrF of detokenised hypotheses against raw references (sacrebleu's defaults: 13a, chrF2).

    Args:
        hypotheses: one output sentence per reference.
        references: the raw target sentences.
        lowercase: compare case-insensitively.

    Returns:
        ``{"bleu", "chrf"}``, each in [0, 100].
    """
    if lowercase:
        hypotheses, references = [h.lower() for h in hypotheses], [r.lower() for r in references]
    bleu = sacrebleu.corpus_bleu(hypotheses, [references])
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    return {"bleu": bleu.score, "chrf": chrf.score}


def plot_attention(source: list[str], output: list[str], weights: Tensor, path: Path) -> None:
    """Writes a heatmap of ``(len(output), len(source))`` attention weights: one row per output word, one
    column per source word, darker where the decoder looked."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(0.4 * len(source) + 1.5, 0.4 * len(output) + 1.2))
    axes.imshow(weights.numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source)), source, rotation=60, ha="right")
    axes.set_yticks(range(len(output)), output)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _gather(items: list) -> list:
    """Every process's items (one process: these)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    parts: list[list | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


class TranslationModule(TaskModule):
    """Encoder-decoder trained with teacher forcing (token cross-entropy), evaluated by decoding.

    Logged each epoch: ``train/loss``, ``val/loss`` and ``val/ppl`` (per target token, ``<eos>`` included),
    ``val/loss_best``; every ``bleu_every_n_epochs`` epochs: ``val/bleu``, ``val/chrf`` and ``val/bleu_best`` on
    the first ``bleu_max_sentences`` validation pairs; after training: ``test/loss``, ``test/ppl``,
    ``test/bleu``, ``test/chrf`` on the whole test set. Outputs are detokenised (Moses) before scoring against
    the raw references.

    Args:
        model: the ``model`` config: ``embedding_dim``, ``embedding_dropout``, ``word_dropout``, ``dropout``,
            ``cell``, ``encoder`` (the source side) and ``decoder``: ``cell`` (None: the encoder's),
            ``hidden_size`` / ``num_layers`` (None: the encoder's), ``embedding_dim`` (None: the model's),
            ``dropout`` (None: ``model.dropout``), ``bridge`` (see ``rnnlab.models.decoding.Bridge``),
            ``feed_context`` (also read the encoder's sentence representation at every step, Cho et al.
            2014; false: the lecture's model, where the source enters only through the initial states),
            ``attention``: ``kind`` (``none`` | ``additive`` | ``dot`` | ``general``, see
            ``rnnlab.models.attention``), ``size`` (additive score width, None: the decoder's hidden size),
            ``input_feeding`` (Luong et al. 2015); ``implementation``, ``pretrained_vectors`` (target-side
            vectors, as ``model.pretrained_vectors`` gives the source side: see ``rnnlab.data.pretrained``).
        source_vocab: source vocabulary (``Vocabulary.to_dict()``), from the DataModule.
        target_vocab: target vocabulary with ``<bos>`` and ``<eos>``, from the DataModule.
        target_lang: language of the Moses detokeniser.
        lowercase: the data was lowercased; score case-insensitively.
        decoding: ``strategy`` (``greedy`` | ``beam``), ``beam_size``, ``length_penalty`` and ``length_norm``
            (see ``rnnlab.models.decoding.length_normaliser``), ``max_length``.
        bleu_every_n_epochs: decode the validation set every this many epochs (0: never).
        bleu_max_sentences: decode only the first this many validation pairs (None: all).
        val_bleu: decode the validation set (its first ``bleu_max_sentences`` pairs) greedily at every
            validation, whatever ``decoding`` and ``bleu_every_n_epochs`` say, so that ``val/bleu`` exists for checkpointing and early stopping
            (``task.optimized_metric=val/bleu task.mode=max``) and costs one greedy pass.
        optimizer: see ``TaskModule``.
        scheduler: see ``TaskModule``.
    """

    main_metric = "loss"
    higher_is_better = False
    kind = "translation model"
    reads = TranslationDataModule
    predictions_extension = "hyp"

    def __init__(self, model: dict, source_vocab: dict, target_vocab: dict, target_lang: str = "en",
                 lowercase: bool = False, decoding: dict | None = None, bleu_every_n_epochs: int = 1,
                 bleu_max_sentences: int | None = None, val_bleu: bool = False, optimizer: dict | None = None,
                 scheduler: dict | None = None):
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        model = with_model_defaults(model)  # a checkpoint from before a model key existed
        # A checkpoint from before an option existed decodes as it did then (e.g. length_norm): its default.
        self.decoding = complete(DecodingConfig, decoding, "task.decoding")
        if self.decoding["strategy"] not in STRATEGIES:
            raise ValueError(f"task.decoding.strategy must be one of {STRATEGIES}, "
                             f"got {self.decoding['strategy']!r}")
        if self.decoding["length_norm"] not in LENGTH_NORMS:
            raise UserError(f"task.decoding.length_norm must be one of {LENGTH_NORMS}, "
                            f"got {self.decoding['length_norm']!r}")
        if bleu_every_n_epochs < 0:
            raise ValueError(f"bleu_every_n_epochs must be >= 0, got {bleu_every_n_epochs}")
        self.bleu_every_n_epochs, self.bleu_max_sentences = bleu_every_n_epochs, bleu_max_sentences
        self.val_bleu = val_bleu
        self.lowercase = lowercase
        self.source_vocab = Vocabulary.from_dict(source_vocab)
        self.target_vocab = Vocabulary.from_dict(target_vocab)
        self.bos, self.eos = self.target_vocab[BOS], self.target_vocab[EOS]
        self.detokenizer = MosesDetokenizer(target_lang)

        parts = build_word_model(model, lexicon(self.source_vocab))  # pretrained vectors: source side
        self.embedder, self.encoder = parts.embedder, parts.encoder
        options = complete(DecoderConfig, model.get("decoder"), "model.decoder")  # null: the encoder's
        attention = options["attention"]
        self.decoder = RNNDecoder(
            instantiate(options["cell"] or model["cell"]), len(self.target_vocab),
            options["embedding_dim"] or model["embedding_dim"], options["hidden_size"] or self.encoder.hidden_size,
            options["num_layers"] or self.encoder.num_layers, self.target_vocab.pad_id,
            model["dropout"] if options["dropout"] is None else options["dropout"], options["implementation"],
            self.encoder.get_output_dim() if options["feed_context"] else 0, attention["kind"],
            self.encoder.get_output_dim(), attention["size"], attention["input_feeding"])
        self.bridge = Bridge(self.encoder, self.decoder.rnn, options["bridge"])
        self.target_vectors = options["pretrained_vectors"]
        self.ppl = torch.nn.ModuleDict({stage: Perplexity() for stage in ("val", "test")})
        self.bleu_best = MaxMetric()
        self.bleu_best.persistent(True)  # kept by a resumed run, like ``best``
        self._outputs: list[tuple[int, str, str]] = []  # (index, hypothesis, reference) of this epoch
        self.n_best, self.attention_plot = 1, None  # predict.py's options (configure_inference)
        self._maps: list[tuple[list[str], list[str], Tensor]] = []  # the attention of the last predicted batch

    # ----------------------------------------------------------------- model
    def load_pretrained(self) -> None:
        """The source vectors (``model.pretrained_vectors``), then the target ones
        (``model.decoder.pretrained_vectors``) into the decoder's input embedding; the output layer keeps its own
        weights."""
        super().load_pretrained()
        if self.target_vectors:
            load_vectors(self.decoder.embedding, self.target_vectors, self.target_vocab.items, "model.decoder")

    def encode(self, source: Tensor, source_mask: Tensor) -> tuple[States, tuple[Tensor, ...]]:
        """``(B, S)`` source ids and mask -> the decoder's initial states, and what the decoder reads at every
        step (``RNNDecoder.memory``: the sentence vector with ``feed_context``, the token outputs with attention)."""
        encoded = self.encoder(self.embedder(source), source_mask)
        states = self.decoder.initial_states(self.bridge(encoded.final_states))
        return states, self.decoder.memory(encoded.sentence, encoded.outputs, source_mask)

    def forward(self, source: Tensor, source_mask: Tensor, target: Tensor,
                target_mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing over ``<bos> y_1 .. y_T``: the ``(B, T + 1, H)`` vectors the output layer reads and the
        ``(B, T + 1, S)`` attention weights (None without attention)."""
        states, memory = self.encode(source, source_mask)
        return self.decoder(target[:, :-1], target_mask[:, 1:], states, *memory)

    def _nll(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Summed token NLL and the number of predicted tokens."""
        hidden, _ = self(batch["source"], batch["source_mask"], batch["target"], batch["target_mask"])
        predicted = batch["target_mask"][:, 1:]  # (B, T + 1): every word and <eos>
        # Scores only at real positions: the output layer is the costliest part, padding need not pay for it.
        logits = self.decoder.scores(hidden[predicted])  # (N, V)
        nll = F.cross_entropy(logits, batch["target"][:, 1:][predicted], reduction="sum")
        return nll, predicted.sum()

    @torch.no_grad()
    def translate(self, source: Tensor, source_mask: Tensor, **overrides: Any) -> list[list[int]]:
        """Target ids (no ``<bos>``/``<eos>``) for a ``(B, S)`` source batch, with ``task.decoding`` options
        updated by ``overrides``."""
        options = {**self.decoding, **overrides}
        states, memory = self.encode(source, source_mask)
        return decode(self.decoder.step, states, self.bos, self.eos, memory=memory, **options)

    @torch.no_grad()
    def attention_maps(self, source: Tensor, source_mask: Tensor,
                       outputs: list[list[int]]) -> list[tuple[list[str], list[str], Tensor]]:
        """Where the decoder looked while producing ``outputs``, by teacher-forcing them (the weights are those
        of the search, as the decoder's two paths compute the same function).

        Args:
            source: ``(B, S)`` source ids.
            source_mask: ``(B, S)`` bool, True at real tokens.
            outputs: ``B`` output id lists, without ``<bos>``/``<eos>``.

        Returns:
            Per sentence: its source tokens (as the model reads them: unknown words as ``<unk>``, then
            ``<eos>``), the output tokens and ``<eos>``, and the ``(outputs + 1, source)`` weights.
        """
        target, target_mask = pad_sequences([[self.bos, *ids, self.eos] for ids in outputs],
                                            self.target_vocab.pad_id)
        _, weights = self(source, source_mask, target.to(source.device), target_mask.to(source.device))
        maps = []
        for row, ids in enumerate(outputs):
            length = int(source_mask[row].sum())
            words = self.source_vocab.decode(source[row, :length].tolist())
            maps.append((words, [*self.target_vocab.decode(ids), EOS], weights[row, :len(ids) + 1, :length].cpu()))
        return maps

    def detokenise(self, ids: list[int]) -> str:
        return self.detokenizer.detokenize(self.target_vocab.decode(ids))

    def predict_step(self, batch: dict, batch_idx: int = 0) -> list[str]:
        """The detokenised translation of each source of a batch, decoded as ``self.decoding`` says; with
        ``n_best > 1`` (``predict.py``) the ``n_best`` best as ``score<TAB>translation`` lines, best first.
        With ``attention_plot`` set, the attention maps of the batch wait in ``self._maps`` for
        ``prediction_output``, which knows the input line numbers."""
        source, source_mask = batch["source"], batch["source_mask"]
        if self.n_best == 1:
            outputs = self.translate(source, source_mask)
            texts = [self.detokenise(ids) for ids in outputs]
        else:
            options = {k: v for k, v in self.decoding.items() if k != "strategy"}
            states, memory = self.encode(source, source_mask)
            hypotheses = beam_hypotheses(self.decoder.step, states, self.bos, self.eos, memory=memory,
                                         n_best=self.n_best, **options)
            outputs = [sentence[0][1] for sentence in hypotheses]
            texts = ["\n".join(f"{score:.4f}\t{self.detokenise(ids)}" for score, ids in sentence)
                     for sentence in hypotheses]
        if self.attention_plot is not None:
            self._maps = self.attention_maps(source, source_mask, outputs)
        return texts

    # ------------------------------------------------------------- inference
    def configure_inference(self, options: Mapping[str, Any]) -> None:
        """``beam_size`` 1 is greedy search, more is beam search; ``max_length`` caps the output. None keeps the
        checkpoint's ``task.decoding``. ``predict.py`` also takes ``n_best`` (outputs per input, from the beam)
        and ``attention_plot`` (a folder for one attention heatmap per input)."""
        beam_size, max_length = options.get("beam_size"), options.get("max_length")
        if beam_size is not None:
            if beam_size < 1:
                raise ValueError(f"beam_size must be >= 1 (1: greedy search), got {beam_size}")
            self.decoding.update(strategy="greedy" if beam_size == 1 else "beam", beam_size=beam_size)
        if max_length is not None:
            self.decoding["max_length"] = max_length
        n_best = options.get("n_best") or 1
        if n_best > 1 and (self.decoding["strategy"] != "beam" or self.decoding["beam_size"] < n_best):
            raise ValueError(f"n_best={n_best} takes the best outputs of a beam search; set beam_size >= {n_best} "
                             f"(now: {self.decoding['strategy']} search, beam_size {self.decoding['beam_size']})")
        if n_best < 1:
            raise ValueError(f"n_best must be >= 1, got {n_best}")
        self.n_best = n_best
        plot = options.get("attention_plot")
        if plot is not None and self.decoder.attention is None:
            raise ValueError(f"attention_plot={plot} draws attention weights, and this {self.kind} has none "
                             "(trained with model/attention=none)")
        self.attention_plot = None if plot is None else Path(plot)

    def finds_input(self, path: str) -> bool:
        return True  # a file stem: the DataModule names the files it lacks

    def format_predictions(self, examples: list[dict], outputs: list[str]) -> str:
        """A translation a line."""
        return "".join(hypothesis + "\n" for hypothesis in outputs)

    def prediction_example(self, item: str) -> dict | None:
        return {"source": item.strip(), "target": "", "index": 0} if item.strip() else None

    def render_prediction(self, item: str, prediction: str) -> str:
        return prediction + "\n"

    def prediction_output(self, items: Iterable[Any], predicted: PredictedBatches,
                          options: Mapping[str, Any]) -> Iterator[str]:
        """A translation a line, or ``n_best`` lines ``score<TAB>translation`` per input (an empty input: as many
        empty lines). With ``attention_plot=DIR``, ``DIR/<line>.png`` (1-based input line, 5 digits) shows the
        attention of the best output of each non-empty line."""
        if self.attention_plot is not None:
            self.attention_plot.mkdir(parents=True, exist_ok=True)
        line = 0
        for batch, predictions in predicted(items):
            maps = iter(self._maps if self.attention_plot is not None else ())
            chunk = []
            for prediction in predictions:
                line += 1
                if prediction is None:
                    chunk.append("\n" * self.n_best)
                    continue
                chunk.append(prediction + "\n")
                if self.attention_plot is not None:
                    plot_attention(*next(maps), self.attention_plot / f"{line:05d}.png")
            yield "".join(chunk)

    # ----------------------------------------------------------------- steps
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        nll, count = self._nll(batch)
        loss = nll / count
        self.log("train/loss", loss, prog_bar=True, batch_size=int(count))
        return loss

    def _bleu_epoch(self) -> bool:
        if self.trainer.sanity_checking:
            return False
        every = 1 if self.val_bleu else self.bleu_every_n_epochs
        return every > 0 and (self.current_epoch + 1) % every == 0

    def _evaluate(self, stage: str, batch: dict, decode_rows: Tensor | None, **overrides: Any) -> None:
        nll, count = self._nll(batch)
        self.ppl[stage].update(nll / count, weight=count)
        if decode_rows is None or not bool(decode_rows.any()):
            return
        rows = decode_rows.nonzero().squeeze(1)
        outputs = self.translate(batch["source"][rows], batch["source_mask"][rows], **overrides)
        for row, ids in zip(rows.tolist(), outputs):
            self._outputs.append((batch["index"][row], self.detokenise(ids), batch["references"][row]))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        rows = None
        if self._bleu_epoch():
            limit = self.bleu_max_sentences
            rows = torch.tensor([limit is None or i < limit for i in batch["index"]], dtype=torch.bool)
        self._evaluate("val", batch, rows, **({"strategy": "greedy"} if self.val_bleu else {}))

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("test", batch, torch.ones(len(batch["index"]), dtype=torch.bool))

    def _log_scores(self, stage: str) -> None:
        outputs = sorted(_gather(self._outputs))
        self._outputs = []
        if not outputs:
            return
        scores = corpus_scores([h for _, h, _ in outputs], [r for _, _, r in outputs], self.lowercase)
        self.log_dict({f"{stage}/{name}": value for name, value in scores.items()}, sync_dist=False)
        if stage == "val":
            self.bleu_best(scores["bleu"])
            self.log("val/bleu_best", self.bleu_best.compute())

    def _log_perplexity(self, stage: str) -> None:
        ppl = self.ppl[stage].compute()
        self.ppl[stage].reset()
        self.log_values(stage, {"loss": ppl.log().float(), "ppl": ppl.float()})

    def on_validation_epoch_end(self) -> None:
        self._log_perplexity("val")
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_perplexity("test")
        self._log_scores("test")
