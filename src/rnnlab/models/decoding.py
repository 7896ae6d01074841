"""The decoder of an encoder-decoder: a conditional language model started from the encoder's representation.

The lecture's translation model: the encoder reads the source into a representation ``z``; ``z`` initialises a
recurrent language model fed ``<BOS>``, which then predicts the target word after word and stops when it
produces ``<EOS>``. Training uses teacher forcing (the decoder reads the reference prefix) through the encoder
stack's fused kernels; generation steps the same cells one token at a time, greedily or by beam search.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.cells.base import State
from rnnlab.encoders import RNNEncoder
from rnnlab.encoders.rnn import CellFactory

BRIDGES = ("auto", "identity", "linear")
STRATEGIES = ("greedy", "beam")

# Decoder states: per layer, the cell's state tuple of (N, H) tensors.
States = list[State]


class Bridge(nn.Module):
    """Maps the encoder's final states to the decoder's initial states.

    ``identity`` hands each encoder layer's state to the same decoder layer; it needs a unidirectional encoder
    of the decoder's depth, hidden size and number of state tensors. ``linear`` concatenates every final state
    of the encoder (all layers, directions and state tensors) into one vector ``z`` and computes every decoder
    state tensor as ``tanh(W z + b)`` (Cho et al. 2014 initialise their decoder so), which fits any pair of
    sizes, e.g. a BiRNN's 2H into H or two encoder layers into one decoder layer. ``auto`` is ``identity``
    where it fits, else ``linear``.

    Args:
        encoder: the source encoder.
        num_layers: decoder depth.
        hidden_size: decoder hidden size.
        num_states: state tensors per decoder cell (1 Elman, 2 LSTM family).
        kind: one of ``BRIDGES``.
    """

    def __init__(self, encoder: RNNEncoder, num_layers: int, hidden_size: int, num_states: int,
                 kind: str = "auto"):
        super().__init__()
        if kind not in BRIDGES:
            raise ValueError(f"model.decoder.bridge must be one of {BRIDGES}, got {kind!r}")
        encoder_states = encoder.layers[0][0].cell.num_states
        fits = (not encoder.bidirectional and encoder.num_layers == num_layers
                and encoder.hidden_size == hidden_size and encoder_states == num_states)
        if kind == "identity" and not fits:
            raise ValueError(
                f"model.decoder.bridge=identity needs a unidirectional encoder with the decoder's depth, hidden "
                f"size and cell state count; got encoder {encoder.num_layers}x{encoder.hidden_size} "
                f"(bidirectional={encoder.bidirectional}, {encoder_states} states) and decoder "
                f"{num_layers}x{hidden_size} ({num_states} states); use bridge=linear or auto")
        self.kind = "identity" if kind == "identity" or (kind == "auto" and fits) else "linear"
        self.num_layers, self.hidden_size, self.num_states = num_layers, hidden_size, num_states
        if self.kind == "linear":
            directions = 2 if encoder.bidirectional else 1
            width = encoder.num_layers * directions * encoder_states * encoder.hidden_size
            self.linear = nn.Linear(width, num_layers * num_states * hidden_size)

    def forward(self, final_states: list[list[State]]) -> States:
        """``EncoderOutput.final_states`` -> the decoder's initial state of each layer."""
        if self.kind == "identity":
            return [layer[0] for layer in final_states]
        z = torch.cat([s for layer in final_states for state in layer for s in state], dim=-1)  # (B, L*D*S*H)
        flat = torch.tanh(self.linear(z)).chunk(self.num_layers * self.num_states, dim=-1)  # each (B, H)
        return [tuple(flat[k * self.num_states:(k + 1) * self.num_states]) for k in range(self.num_layers)]


class RNNDecoder(nn.Module):
    """Conditional LM: target embeddings -> a unidirectional RNN stack -> scores over the target vocabulary.

    The source reaches the decoder through its initial states. With ``context_size > 0`` the first layer also
    reads a fixed source vector (the sentence representation) beside each word, as in Cho et al. (2014), so the
    source need not survive in the state over the whole output.

    Args:
        cell: builds a cell from ``(input_size, hidden_size)``.
        vocab_size: target vocabulary size.
        embedding_dim: size of the target word vectors.
        hidden_size: hidden size of every layer.
        num_layers: depth of the stack.
        pad_id: target padding id.
        dropout: on word vectors, between layers and before the output layer.
        implementation: ``RecurrentLayer`` implementation used in teacher-forced training.
        context_size: size of the source vector read at every step; 0 for none.
    """

    def __init__(self, cell: CellFactory, vocab_size: int, embedding_dim: int, hidden_size: int,
                 num_layers: int = 1, pad_id: int = 0, dropout: float = 0.0, implementation: str = "auto",
                 context_size: int = 0):
        super().__init__()
        self.context_size = context_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.rnn = RNNEncoder(cell, embedding_dim + context_size, hidden_size, num_layers, dropout=dropout,
                              implementation=implementation)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)

    @property
    def num_layers(self) -> int:
        return self.rnn.num_layers

    @property
    def hidden_size(self) -> int:
        return self.rnn.hidden_size

    @property
    def num_states(self) -> int:
        return self.rnn.layers[0][0].cell.num_states

    def _inputs(self, tokens: Tensor, context: Tensor | None) -> Tensor:
        """Word vectors ``(..., E)``, with the context beside them: ``(..., E + C)``."""
        x = self.dropout(self.embedding(tokens))
        if self.context_size == 0:
            return x
        if context is None:
            raise ValueError(f"this decoder reads a context of size {self.context_size} at every step; pass it")
        if x.dim() == 3:
            context = context.unsqueeze(1).expand(-1, x.shape[1], -1)  # (B, T, C)
        return torch.cat([x, context], dim=-1)

    def forward(self, inputs: Tensor, mask: Tensor, states: States, context: Tensor | None = None) -> Tensor:
        """Teacher forcing: hidden states after reading each input token.

        Args:
            inputs: ``(B, T)`` target ids ``<bos> y_1 .. y_n``, right-padded.
            mask: ``(B, T)`` bool, True at real tokens.
            states: initial state of each layer (from the bridge).
            context: ``(B, C)`` source vector, when ``context_size > 0``.

        Returns:
            ``(B, T, H)`` top-layer outputs, zero at padding; ``self.scores`` turns them into logits.
        """
        return self.rnn(self._inputs(inputs, context), mask, [[state] for state in states]).outputs

    def scores(self, hidden: Tensor) -> Tensor:
        """``(..., H)`` hidden states -> ``(..., V)`` unnormalised next-word scores."""
        return self.output(self.dropout(hidden))

    def step(self, tokens: Tensor, states: States, context: Tensor | None = None) -> tuple[Tensor, States]:
        """One generation step: the same function as ``forward`` at one position.

        Args:
            tokens: ``(N,)`` the previous word of each hypothesis.
            states: the state of each layer, tensors ``(N, H)``.
            context: ``(N, C)`` source vector of each hypothesis, when ``context_size > 0``.

        Returns:
            ``(N, V)`` log-probabilities of the next word, and the new states.
        """
        x = self._inputs(tokens, context)  # (N, E + C)
        new_states = []
        for k, layer in enumerate(self.rnn.layers):
            if k > 0:
                x = self.rnn.dropout(x)
            x, state = layer[0].cell(x, states[k])  # (N, H)
            new_states.append(state)
        return F.log_softmax(self.scores(x), dim=-1), new_states


# (tokens, states, *memory) -> (log-probabilities, states)
Step = Callable[..., tuple[Tensor, States]]


def _select(states: States, index: Tensor) -> States:
    return [tuple(s.index_select(0, index) for s in state) for state in states]


@torch.no_grad()
def greedy_search(step: Step, states: States, bos: int, eos: int, max_length: int,
                  memory: tuple[Tensor, ...] = ()) -> list[list[int]]:
    """Picks the most probable word at each step until ``<eos>`` or ``max_length`` words.

    Args:
        step: ``RNNDecoder.step``.
        states: initial decoder states, batch ``B``.
        bos: id fed first.
        eos: id that ends a hypothesis (not part of the output).
        max_length: most words per output, ``<eos>`` excluded.
        memory: per-sentence tensors ``(B, ...)`` passed to every ``step`` after the states (e.g. the context).

    Returns:
        ``B`` lists of word ids, without ``<bos>``/``<eos>``.
    """
    batch = states[0][0].shape[0]
    tokens = torch.full((batch,), bos, dtype=torch.long, device=states[0][0].device)  # (B,)
    done = torch.zeros(batch, dtype=torch.bool, device=tokens.device)
    outputs: list[Tensor] = []
    for _ in range(max_length):
        log_probs, states = step(tokens, states, *memory)  # (B, V)
        tokens = log_probs.argmax(dim=-1)
        done = done | (tokens == eos)
        if bool(done.all()):
            break
        outputs.append(tokens.masked_fill(done, eos))
    ids = torch.stack(outputs, dim=1).tolist() if outputs else [[] for _ in range(batch)]
    return [row[:row.index(eos)] if eos in row else row for row in ids]


@torch.no_grad()
def beam_search(step: Step, states: States, bos: int, eos: int, max_length: int, beam_size: int = 5,
                length_penalty: float = 1.0, memory: tuple[Tensor, ...] = ()) -> list[list[int]]:
    """Batched beam search: keeps the ``beam_size`` best prefixes of each sentence.

    At each step every live prefix is extended by every word; of the ``2K`` best extensions of a sentence,
    those ending in ``<eos>`` among the first ``K`` become finished hypotheses and the ``K`` best others stay
    live. A sentence stops with ``K`` finished hypotheses; after ``max_length`` words every prefix is ended.
    The output is the finished hypothesis with the best ``log P / length ** length_penalty``, where ``length``
    counts the words plus ``<eos>`` (0: raw log-probability, which favours short outputs; 1: mean per word).
    With ``beam_size=1`` this is exactly ``greedy_search``.

    Args:
        step: ``RNNDecoder.step``.
        states: initial decoder states, batch ``B``.
        bos: id fed first.
        eos: id that ends a hypothesis (not part of the output).
        max_length: most words per output, ``<eos>`` excluded.
        beam_size: ``K``, hypotheses kept per sentence.
        length_penalty: exponent of the length normalisation.
        memory: per-sentence tensors ``(B, ...)`` passed to every ``step`` after the states; the beams of a
            sentence share them, so they are repeated once and never reordered.

    Returns:
        ``B`` lists of word ids, without ``<bos>``/``<eos>``.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    k = beam_size
    batch = states[0][0].shape[0]
    device = states[0][0].device
    beam_rows = torch.arange(batch, device=device).repeat_interleave(k)  # (B*K,)
    states = _select(states, beam_rows)  # (B*K, H)
    memory = tuple(m.index_select(0, beam_rows) for m in memory)
    tokens = torch.full((batch * k,), bos, dtype=torch.long, device=device)
    scores = torch.full((batch, k), -math.inf, device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one, or the K best would be K copies
    history = torch.empty(batch, k, 0, dtype=torch.long, device=device)  # (B, K, t)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch
    offsets = torch.arange(batch, device=device).unsqueeze(1) * k  # (B, 1)
    for t in range(max_length + 1):
        log_probs, states = step(tokens, states, *memory)  # (B*K, V)
        vocab = log_probs.shape[-1]
        if t == max_length:  # out of room: every prefix ends here
            log_probs = torch.full_like(log_probs, -math.inf).index_fill(1, torch.tensor([eos], device=device), 0.0)
        candidates = (scores.unsqueeze(-1) + log_probs.view(batch, k, vocab)).view(batch, k * vocab)
        top_scores, top = candidates.topk(min(2 * k, k * vocab), dim=-1)  # (B, 2K), best first
        beams, words = top // vocab, top % vocab
        ended = (words == eos) & torch.isfinite(top_scores)
        for b, rank in ended[:, :k].nonzero().tolist():
            if not done[b]:
                ids = history[b, beams[b, rank]].tolist()
                finished[b].append((top_scores[b, rank].item() / (len(ids) + 1) ** length_penalty, ids))
        for b in range(batch):
            done[b] = done[b] or len(finished[b]) >= k
        if all(done):
            break
        # The K best extensions that do not end stay live (each beam yields at most one <eos>, so K remain).
        live_scores, live = top_scores.masked_fill(words == eos, -math.inf).topk(k, dim=-1)  # (B, K)
        source_beams = beams.gather(1, live)  # (B, K)
        tokens = words.gather(1, live).view(-1)
        scores = live_scores
        history = torch.cat([history.gather(1, source_beams.unsqueeze(-1).expand(-1, -1, history.shape[-1])),
                             tokens.view(batch, k, 1)], dim=-1)
        states = _select(states, (source_beams + offsets).view(-1))
    return [max(hypotheses, key=lambda h: h[0])[1] if hypotheses else [] for hypotheses in finished]


def decode(step: Step, states: States, bos: int, eos: int, strategy: str = "greedy", max_length: int = 100,
           beam_size: int = 5, length_penalty: float = 1.0, memory: tuple[Tensor, ...] = ()) -> list[list[int]]:
    """Runs the configured search (``task.decoding``); see ``greedy_search`` and ``beam_search``."""
    if strategy == "greedy":
        return greedy_search(step, states, bos, eos, max_length, memory)
    if strategy == "beam":
        return beam_search(step, states, bos, eos, max_length, beam_size, length_penalty, memory)
    raise ValueError(f"task.decoding.strategy must be one of {STRATEGIES}, got {strategy!r}")
