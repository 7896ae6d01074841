"""Word-level language modeling: an RNN LM with truncated BPTT, and the lecture's MLP n-gram LM baseline.

The networks are in ``rnnlab.models.lm``. Both read the same contiguous stream of windows
(``rnnlab.data.lm``) and carry a state across windows: the RNN its hidden state (detached, so gradients stop
at the window: truncated BPTT), the n-gram model its last ``n-2`` input words. The states restart at the
start of every training, validation and test epoch.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import apply_to_collection
from torch import Tensor, nn

from rnnlab.data.lm import LMDataModule
from rnnlab.data.special import BOS, EOS, IGNORE_INDEX
from rnnlab.data.vocab import Vocabulary
from rnnlab.metrics import Perplexity
from rnnlab.models.lm import LM_NETWORKS
from rnnlab.tasks.base import PredictedBatches, TaskModule, lexicon

GENERATED_WORDS = 50  # predict.py's mode=generate without max_length


def _check_sampling(max_length: int, temperature: float, top_k: int) -> None:
    if temperature < 0 or top_k < 0 or max_length < 0:
        raise ValueError(f"temperature, top_k and max_length must be >= 0, got {temperature}, {top_k}, "
                         f"{max_length}")


class LanguageModelModule(TaskModule):
    """A word-level LM trained with next-word cross-entropy; evaluated by perplexity over whole splits.

    Args:
        model: the ``model`` config; ``architecture`` (``rnn`` by default, ``ngram_mlp``, or any name in
            ``rnnlab.models.lm.LM_NETWORKS``) picks the network (see its module for the keys it reads).
        vocab: word vocabulary (``Vocabulary.to_dict()``), from the DataModule.
        optimizer: see ``TaskModule``.
        scheduler: see ``TaskModule``.
        ar: activation regularisation (Merity et al. 2017): ``ar * mean(h**2)`` over the real positions of the
            top layer's outputs after ``model.dropout``, the features the softmax reads; logged as ``train/ar``.
        tar: temporal activation regularisation: ``tar * mean((h_t - h_{t-1})**2)`` over consecutive real
            positions of the window, on the outputs before dropout; logged as ``train/tar``.
    """

    main_metric = "ppl"
    higher_is_better = False
    kind = "language model"
    reads = LMDataModule
    prediction_modes = ("generate", "score")

    def __init__(self, model: dict, vocab: dict, optimizer: dict | None = None, scheduler: dict | None = None,
                 ar: float = 0.0, tar: float = 0.0):
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        architecture = model.get("architecture", "rnn")
        network = LM_NETWORKS[architecture]  # first: a wrong name is the error, whatever else is wrong
        if ar < 0 or tar < 0:
            raise ValueError(f"task.module.ar and task.module.tar must be >= 0, got {ar} and {tar}")
        if (ar or tar) and architecture != "rnn":
            raise ValueError("task.module.ar and task.module.tar regularise a recurrent network's states; the "
                             f"{architecture} model has none: set them to 0")
        self.ar, self.tar = ar, tar
        self.vocab = Vocabulary.from_dict(vocab)
        self.net = network(model, lexicon(self.vocab))
        self.metrics = nn.ModuleDict({stage: Perplexity() for stage in ("val", "test")})
        self.states: dict[str, Any] = {}  # per stage: the state the next window starts from
        self.lr_scale = 1.0  # of the current training window (``optimizer_step``)

    def forward(self, tokens: Tensor, mask: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """``(B, T)`` ids and mask, optional state -> ``(B, T, V)`` scores and the state after the window."""
        return self.net(tokens, mask, state)

    def _window(self, stage: str, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        """NLL of every predicted token of the window ``(N,)``, the top layer's outputs before and after the
        output dropout ``(B, T, H)``; carries the stage's state to the next window."""
        hidden, state = self.net.hidden(batch["tokens"], batch["mask"], self.states.get(stage))  # (B, T, H)
        self.states[stage] = self.net.detach_state(state)
        features = self.net.dropout(hidden)  # (B, T, H)
        return self.net.head.token_nll(features, batch["targets"], IGNORE_INDEX), hidden, features

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        nll, hidden, features = self._window("train", batch)
        loss = nll.mean()
        self.log("train/loss", loss, prog_bar=True)
        mask = batch["mask"]  # (B, T)
        if self.ar:
            ar = self.ar * features[mask].pow(2).mean()
            self.log("train/ar", ar)
            loss = loss + ar
        if self.tar:
            both = mask[:, 1:] & mask[:, :-1]  # (B, T-1): both positions real
            tar = self.tar * (hidden[:, 1:] - hidden[:, :-1])[both].pow(2).mean()
            self.log("train/tar", tar)
            loss = loss + tar
        return loss

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self.lr_scale = batch.get("lr_scale", 1.0)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Steps with the learning rates times the window's ``lr_scale`` (variable BPTT windows; 1 otherwise).

        AWD-LSTM's rule: a window's step grows with its length, as if the loss were summed over its steps. The
        rates are scaled rather than the loss, so that clipping sees the gradient of the mean loss (as in AWD)
        and the rule holds for optimisers that ignore the loss's scale (Adam); they are set back after the
        step, so schedulers and checkpoints see the configured ones.
        """
        rates = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] *= self.lr_scale
        try:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        finally:
            for group, rate in zip(optimizer.param_groups, rates):
                group["lr"] = rate

    def _evaluate(self, stage: str, batch: dict) -> None:
        nll = self._window(stage, batch)[0]
        self.log(f"{stage}/loss", nll.mean(), batch_size=nll.numel())
        self.metrics[stage].update(nll)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("test", batch)

    def predict_step(self, batch: dict, batch_idx: int = 0) -> list[tuple[float, int]]:
        """Each sentence's NLL (nats, summed) and number of predicted tokens (words and ``<eos>``).

        The batch holds whole sentences (``LMDataModule.encode``), each read from ``<bos>`` with a fresh state.
        """
        logits, _ = self(batch["tokens"], batch["mask"])  # (B, T, V)
        nll = F.cross_entropy(logits.transpose(1, 2).float(), batch["targets"], ignore_index=IGNORE_INDEX,
                              reduction="none")  # (B, T), 0 where ignored
        counts = (batch["targets"] != IGNORE_INDEX).sum(1)
        return list(zip(nll.sum(1).tolist(), counts.tolist()))

    # ------------------------------------------------------------- inference
    def check_prediction_options(self, options: Mapping[str, Any]) -> None:
        super().check_prediction_options(options)
        if options["mode"] == "generate":
            _check_sampling(self._max_length(options), options["temperature"], options["top_k"])

    @staticmethod
    def _max_length(options: Mapping[str, Any]) -> int:
        return GENERATED_WORDS if options["max_length"] is None else options["max_length"]

    def prediction_example(self, item: str) -> dict:
        return {"tokens": item.split()}  # an empty line is the empty sentence <bos> <eos>

    def render_prediction(self, item: str, prediction: tuple[float, int]) -> str:
        """``perplexity<TAB>tokens<TAB>text``."""
        nll, count = prediction
        return f"{math.exp(nll / count):.4f}\t{count}\t{item}\n"

    def prediction_output(self, items: Iterable[str], predicted: PredictedBatches,
                          options: Mapping[str, Any]) -> Iterator[str]:
        """``mode=score``: a line per input, then the perplexity over all of them (``<total>``);
        ``mode=generate``: ``num_samples`` continuations per prompt line, sample ``i`` drawn with ``seed + i``."""
        if options["mode"] == "generate":
            for prompt in items:
                words = prompt.split()
                yield "".join(" ".join([*words, *self.sample(words, self._max_length(options), options["temperature"],
                                                             options["top_k"], options["seed"] + i)]) + "\n"
                              for i in range(options["num_samples"]))
            return
        total_nll, total_count = 0.0, 0
        for batch, predictions in predicted(items):
            yield "".join(self.render_prediction(item, prediction) for item, prediction in zip(batch, predictions))
            total_nll += sum(nll for nll, _ in predictions)
            total_count += sum(count for _, count in predictions)
        yield f"{math.exp(total_nll / max(total_count, 1)):.4f}\t{total_count}\t<total>\n"

    def on_train_epoch_start(self) -> None:
        self.states.pop("train", None)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        # The state the next training window starts from: a resumed epoch continues with it.
        checkpoint["train_state"] = self.states.get("train")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if checkpoint.get("train_state") is not None:
            self.states["train"] = checkpoint["train_state"]

    def on_train_start(self) -> None:
        # A state restored from a checkpoint is loaded before the model moves to its device.
        self.states = apply_to_collection(self.states, Tensor, lambda state: state.to(self.device))

    def on_validation_epoch_start(self) -> None:
        self.states.pop("val", None)
        # Exactly this epoch's tokens: after a ddp_spawn fit the main process's copy of the metric holds a sum
        # that was never computed and reset there.
        self.metrics["val"].reset()

    def on_test_epoch_start(self) -> None:
        self.states.pop("test", None)
        self.metrics["test"].reset()

    def on_validation_epoch_end(self) -> None:
        self.log_metric("val", self.metrics["val"])

    def on_test_epoch_end(self) -> None:
        self.log_metric("test", self.metrics["test"])

    @torch.no_grad()
    def sample(self, prompt: list[str] | str = (), max_length: int = 50, temperature: float = 1.0,
               top_k: int = 0, seed: int | None = None) -> list[str]:
        """Continues ``<bos> prompt`` word by word until ``<eos>`` or ``max_length`` new words.

        Args:
            prompt: words (or a whitespace-separated string) the sentence starts with; unknown ones read as
                ``<unk>``.
            max_length: most words generated.
            temperature: scores are divided by it before the softmax; 0 picks the most likely word.
            top_k: sample among the ``k`` most likely words only; 0 for all.
            seed: seed of the sampling generator, for reproducible samples.

        Returns:
            The generated words (not the prompt), ending with ``<eos>`` when the model stopped.
        """
        _check_sampling(max_length, temperature, top_k)
        words = prompt.split() if isinstance(prompt, str) else list(prompt)
        generator = torch.Generator(device=self.device)
        if seed is not None:
            generator.manual_seed(seed)
        was_training = self.training
        self.eval()
        eos = self.vocab[EOS]
        never = torch.tensor([self.vocab.pad_id, self.vocab[BOS]], device=self.device)  # never predicted
        tokens = torch.tensor([[self.vocab[BOS], *self.vocab.encode(words)]], device=self.device)  # (1, T)
        state, generated = None, []
        for _ in range(max_length):
            logits, state = self(tokens, torch.ones_like(tokens, dtype=torch.bool), state)
            scores = logits[0, -1]  # (V,)
            scores[never] = -float("inf")
            if temperature == 0:
                next_id = int(scores.argmax())
            else:
                scores = scores / temperature
                if 0 < top_k < scores.numel():
                    threshold = scores.topk(top_k).values[-1]
                    scores = scores.masked_fill(scores < threshold, -float("inf"))
                next_id = int(torch.multinomial(scores.softmax(-1), 1, generator=generator))
            generated.append(self.vocab.items[next_id])
            if next_id == eos:
                break
            tokens = tokens.new_tensor([[next_id]])
        self.train(was_training)
        return generated
