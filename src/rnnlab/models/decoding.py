"""The decoder of an encoder-decoder: a conditional language model started from the encoder's representation.

The lecture's translation model: the encoder reads the source into a representation ``z``; ``z`` initialises a
recurrent language model fed ``<BOS>``, which then predicts the target word after word and stops when it
produces ``<EOS>``. Training uses teacher forcing (the decoder reads the reference prefix) through the encoder
stack's fused kernels; generation steps the same stack one token at a time (``RNNEncoder.step``), greedily or by
beam search; both run the recurrence in the parameters' precision (``rnnlab.encoders.engine``).
Optionally the decoder attends over the encoder's token outputs at every step (``rnnlab.models.attention``).
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
from rnnlab.errors import UserError
from rnnlab.models.attention import SCORES, build_attention

BRIDGES = ("auto", "identity", "linear")
STRATEGIES = ("greedy", "beam")
LENGTH_NORMS = ("length", "gnmt")

# Decoder states: per layer, the cell's state tuple of (N, H) tensors (input feeding: then (h~,)).
States = list[State]


class Bridge(nn.Module):
    """Maps the encoder's final states to the decoder's initial states.

    ``identity`` hands each encoder layer's state to the same decoder layer; it needs a unidirectional encoder
    of the decoder's depth, hidden size and number of state tensors. ``linear`` concatenates every final state
    of the encoder (all layers, directions and state tensors) into one vector ``z`` and computes the decoder
    cell's ``bridged_states`` (all its state tensors but the sLSTM's normaliser and stabiliser) as
    ``tanh(W z + b)`` (Cho et al. 2014 initialise their decoder so); the cell's ``complete_state`` adds the
    rest. It fits any pair of sizes, e.g. a BiRNN's 2H into H or two encoder layers into one decoder layer.
    ``auto`` is ``identity`` where it fits, else ``linear``.

    Args:
        encoder: the source encoder.
        decoder: the decoder's stack (``RNNDecoder.rnn``): its depth, hidden size, and how a bridged state is
            completed.
        kind: one of ``BRIDGES``.
    """

    def __init__(self, encoder: RNNEncoder, decoder: RNNEncoder, kind: str = "auto"):
        super().__init__()
        if kind not in BRIDGES:
            raise ValueError(f"model.decoder.bridge must be one of {BRIDGES}, got {kind!r}")
        source, target = encoder.state_layout, decoder.state_layout
        num_layers = decoder.num_layers
        fits = (not encoder.bidirectional and encoder.num_layers == num_layers
                and source.hidden_size == target.hidden_size and source.num_states == target.num_states)
        if kind == "identity" and not fits:
            raise ValueError(
                f"model.decoder.bridge=identity needs a unidirectional encoder with the decoder's depth, hidden "
                f"size and cell state count; got encoder {encoder.num_layers}x{source.hidden_size} "
                f"(bidirectional={encoder.bidirectional}, {source.num_states} states) and decoder "
                f"{num_layers}x{target.hidden_size} ({target.num_states} states); use bridge=linear or auto")
        self.kind = "identity" if kind == "identity" or (kind == "auto" and fits) else "linear"
        # the stack's method, not the stack: as a submodule its parameters would be stored twice
        self.num_layers, self.bridged_states, self.complete_state = num_layers, target.bridged, decoder.complete_state
        if self.kind == "linear":
            directions = 2 if encoder.bidirectional else 1
            width = encoder.num_layers * directions * source.num_states * source.hidden_size
            self.linear = nn.Linear(width, num_layers * self.bridged_states * target.hidden_size)

    def forward(self, final_states: list[list[State]]) -> States:
        """``EncoderOutput.final_states`` -> the decoder's initial state of each layer."""
        if self.kind == "identity":
            return [layer[0] for layer in final_states]
        z = torch.cat([s for layer in final_states for state in layer for s in state], dim=-1)  # (B, L*D*S*H)
        k = self.bridged_states
        flat = torch.tanh(self.linear(z)).chunk(self.num_layers * k, dim=-1)  # each (B, H)
        return [self.complete_state(flat[layer * k:(layer + 1) * k]) for layer in range(self.num_layers)]


class RNNDecoder(nn.Module):
    """Conditional LM: target embeddings -> a unidirectional RNN stack -> scores over the target vocabulary.

    The source reaches the decoder through its initial states. With ``context_size > 0`` the first layer also
    reads a fixed source vector (the sentence representation) beside each word, as in Cho et al. (2014), so the
    source need not survive in the state over the whole output. With ``attention`` the top layer's state ``h``
    attends over the encoder's token outputs (``rnnlab.models.attention``) and the output layer reads Luong et
    al.'s (2015) attentional state ``tanh(W_c [c; h])`` instead of ``h``; with ``input_feeding`` that state is
    also read beside the next word, so the decoder knows where it looked before.

    What the decoder reads from the source at every step (``memory``, built by ``memory``) is a tuple of
    ``(B, ...)`` tensors: the context if ``context_size > 0``, then the keys, their prepared projection and the
    source mask if there is attention. With input feeding the decoder states end with one more entry, the
    previous attentional state ``(h~,)`` (zeros before the first word), so searches reorder it with the rest.

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
        attention: ``none`` (the lecture's decoder) or a score of ``rnnlab.models.attention.SCORES``.
        key_size: size of the encoder's token outputs, with attention.
        attention_size: hidden width of the additive score (None: ``hidden_size``).
        input_feeding: read the previous attentional state beside each word (needs attention).

    Raises:
        UserError: ``input_feeding`` without attention, or an attention option that does not fit.
    """

    def __init__(self, cell: CellFactory, vocab_size: int, embedding_dim: int, hidden_size: int,
                 num_layers: int = 1, pad_id: int = 0, dropout: float = 0.0, implementation: str = "auto",
                 context_size: int = 0, attention: str = "none", key_size: int = 0,
                 attention_size: int | None = None, input_feeding: bool = False):
        super().__init__()
        if input_feeding and attention == "none":
            raise UserError("model.decoder.attention.input_feeding=true feeds the attentional state, which needs "
                            f"attention; choose model/attention= one of {list(SCORES)}, or set input_feeding=false")
        self.context_size = context_size
        self.input_feeding = input_feeding
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        feed_size = hidden_size if input_feeding else 0
        self.rnn = RNNEncoder(cell, embedding_dim + context_size + feed_size, hidden_size, num_layers,
                              dropout=dropout, implementation=implementation)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)
        # Without attention no module is added: the lecture's decoder keeps its parameters and checkpoints.
        self.attention = None if attention == "none" else build_attention(attention, hidden_size, key_size,
                                                                          attention_size)
        if self.attention is not None:
            self.combine = nn.Linear(key_size + hidden_size, hidden_size)  # W_c of tanh(W_c [c; h])

    @property
    def num_layers(self) -> int:
        return self.rnn.num_layers

    @property
    def hidden_size(self) -> int:
        return self.rnn.hidden_size

    def memory(self, sentence: Tensor, outputs: Tensor | None, source_mask: Tensor) -> tuple[Tensor, ...]:
        """What every step reads from the source (see the class docstring).

        Args:
            sentence: ``(B, C)`` the encoder's sentence representation.
            outputs: ``(B, S, D)`` the encoder's token outputs.
            source_mask: ``(B, S)`` bool, True at real source tokens.
        """
        context = (sentence,) if self.context_size else ()
        if self.attention is None:
            return context
        return (*context, outputs, self.attention.prepare(outputs), source_mask)

    def initial_states(self, states: States) -> States:
        """The bridge's states, with a zero attentional state appended under input feeding."""
        if not self.input_feeding:
            return states
        first = states[0][0]
        return [*states, (first.new_zeros(first.shape[0], self.hidden_size),)]

    def _split(self, memory: tuple[Tensor, ...]) -> tuple[Tensor | None, tuple[Tensor, ...]]:
        """``memory`` -> the context (or None) and the attention's ``(keys, prepared, mask)`` (or ``()``)."""
        if self.context_size and not memory:
            raise ValueError(f"this decoder reads a context of size {self.context_size} at every step; pass it")
        return (memory[0], memory[1:]) if self.context_size else (None, memory)

    def _inputs(self, tokens: Tensor, context: Tensor | None) -> Tensor:
        """Word vectors ``(..., E)``, with the context beside them: ``(..., E + C)``."""
        x = self.dropout(self.embedding(tokens))
        if context is None:
            return x
        if x.dim() == 3:
            context = context.unsqueeze(1).expand(-1, x.shape[1], -1)  # (B, T, C)
        return torch.cat([x, context], dim=-1)

    def _attend(self, hidden: Tensor, keys: Tensor, prepared: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(..., H)`` top-layer states -> attentional states ``tanh(W_c [c; h])`` ``(..., H)`` and the weights
        ``(..., S)``; the one place where attention happens, for training and generation alike."""
        context, weights = self.attention(hidden, keys, prepared, mask)  # (..., D), (..., S)
        return torch.tanh(self.combine(torch.cat([context, hidden], dim=-1))), weights

    def forward(self, inputs: Tensor, mask: Tensor, states: States,
                *memory: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: what the output layer reads after each input token.

        Without input feeding the stack runs over the whole target at once (fused kernels) and attention then
        covers every position in one call; with input feeding each position needs the previous attentional
        state, so the cells step through the target as generation does.

        Args:
            inputs: ``(B, T)`` target ids ``<bos> y_1 .. y_n``, right-padded.
            mask: ``(B, T)`` bool, True at real tokens.
            states: initial decoder states (``initial_states`` of the bridge's).
            memory: ``memory(...)``.

        Returns:
            ``(B, T, H)`` top-layer states (attentional states with attention; ``self.scores`` turns them into
            logits; padding positions hold no meaning), and the ``(B, T, S)`` attention weights (None without
            attention).
        """
        context, attend = self._split(memory)
        if self.input_feeding:
            layers, feed = states[:-1], states[-1][0]
            x = self._inputs(inputs, context)  # (B, T, E + C)
            hidden, weights = [], []
            for t in range(inputs.shape[1]):
                top, layers, _ = self.rnn.step(torch.cat([x[:, t], feed], dim=-1), layers)  # (B, H)
                feed, step_weights = self._attend(top, *attend)
                hidden.append(feed)
                weights.append(step_weights)
            return torch.stack(hidden, dim=1), torch.stack(weights, dim=1)
        outputs = self.rnn(self._inputs(inputs, context), mask, [[state] for state in states]).outputs  # (B, T, H)
        if self.attention is None:
            return outputs, None
        return self._attend(outputs, *attend)

    def scores(self, hidden: Tensor) -> Tensor:
        """``(..., H)`` what ``forward`` returns -> ``(..., V)`` unnormalised next-word scores."""
        return self.output(self.dropout(hidden))

    def step(self, tokens: Tensor, states: States, *memory: Tensor) -> tuple[Tensor, States, Tensor | None]:
        """One generation step: the same function as ``forward`` at one position.

        Args:
            tokens: ``(N,)`` the previous word of each hypothesis.
            states: the decoder states, tensors ``(N, H)``.
            memory: ``memory(...)`` of each hypothesis's sentence.

        Returns:
            ``(N, V)`` log-probabilities of the next word, the new states, and the ``(N, S)`` attention weights
            of this step (None without attention).
        """
        context, attend = self._split(memory)
        x = self._inputs(tokens, context)  # (N, E + C)
        layers = states[:-1] if self.input_feeding else states
        if self.input_feeding:
            x = torch.cat([x, states[-1][0]], dim=-1)  # (N, E + C + H)
        top, new_states, _ = self.rnn.step(x, layers)  # (N, H)
        weights = None
        if self.attention is not None:
            top, weights = self._attend(top, *attend)
        if self.input_feeding:
            new_states.append((top,))
        return F.log_softmax(self.scores(top), dim=-1), new_states, weights


# (tokens, states, *memory) -> (log-probabilities, states, attention weights or None)
Step = Callable[..., tuple[Tensor, States, Tensor | None]]


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
        log_probs, states, _ = step(tokens, states, *memory)  # (B, V)
        tokens = log_probs.argmax(dim=-1)
        done = done | (tokens == eos)
        if bool(done.all()):
            break
        outputs.append(tokens.masked_fill(done, eos))
    ids = torch.stack(outputs, dim=1).tolist() if outputs else [[] for _ in range(batch)]
    return [row[:row.index(eos)] if eos in row else row for row in ids]


def length_normaliser(length: int, alpha: float, kind: str = "length") -> float:
    """The divisor of a finished hypothesis's log-probability when beams rank it.

    Args:
        length: words of the hypothesis plus its ``<eos>``.
        alpha: strength; 0 ranks by raw log-probability, which favours short outputs.
        kind: ``length``: ``length ** alpha`` (1: mean log-probability per word); ``gnmt``:
            ``((5 + length) / 6) ** alpha`` (Wu et al. 2016), milder on short outputs.
    """
    if kind == "gnmt":
        return ((5 + length) / 6) ** alpha
    if kind == "length":
        return length ** alpha
    raise ValueError(f"task.decoding.length_norm must be one of {LENGTH_NORMS}, got {kind!r}")


@torch.no_grad()
def beam_hypotheses(step: Step, states: States, bos: int, eos: int, max_length: int, beam_size: int = 5,
                    length_penalty: float = 1.0, memory: tuple[Tensor, ...] = (), length_norm: str = "length",
                    n_best: int = 1) -> list[list[tuple[float, list[int]]]]:
    """Batched beam search: keeps the ``beam_size`` best prefixes of every sentence of the batch at once.

    At each step every live prefix is extended by every word; of the ``2K`` best extensions of a sentence,
    those ending in ``<eos>`` among the first ``K`` become finished hypotheses and the ``K`` best others stay
    live. A sentence stops with ``K`` finished hypotheses; after ``max_length`` words every prefix is ended.
    Finished hypotheses rank by ``log P / length_normaliser(words + 1, length_penalty, length_norm)``. With
    ``beam_size=1`` the best is exactly ``greedy_search``'s output.

    Args:
        step: ``RNNDecoder.step``.
        states: initial decoder states, batch ``B``.
        bos: id fed first.
        eos: id that ends a hypothesis (not part of the output).
        max_length: most words per output, ``<eos>`` excluded.
        beam_size: ``K``, hypotheses kept per sentence.
        length_penalty: ``alpha`` of ``length_normaliser``.
        memory: per-sentence tensors ``(B, ...)`` passed to every ``step`` after the states; the beams of a
            sentence share them, so they are repeated once and never reordered.
        length_norm: ``kind`` of ``length_normaliser``.
        n_best: hypotheses returned per sentence, at most ``beam_size``.

    Returns:
        Per sentence, up to ``n_best`` ``(normalised score, word ids)``, best first; ids without
        ``<bos>``/``<eos>``.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size}), got {n_best}")
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
        log_probs, states, _ = step(tokens, states, *memory)  # (B*K, V)
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
                normaliser = length_normaliser(len(ids) + 1, length_penalty, length_norm)
                finished[b].append((top_scores[b, rank].item() / normaliser, ids))
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
    return [sorted(hypotheses, key=lambda h: -h[0])[:n_best] for hypotheses in finished]


def beam_search(step: Step, states: States, bos: int, eos: int, max_length: int, beam_size: int = 5,
                length_penalty: float = 1.0, memory: tuple[Tensor, ...] = (),
                length_norm: str = "length") -> list[list[int]]:
    """The best hypothesis of ``beam_hypotheses`` for each sentence: ``B`` lists of word ids."""
    return [hypotheses[0][1] if hypotheses else []
            for hypotheses in beam_hypotheses(step, states, bos, eos, max_length, beam_size, length_penalty,
                                              memory, length_norm)]


def decode(step: Step, states: States, bos: int, eos: int, strategy: str = "greedy", max_length: int = 100,
           beam_size: int = 5, length_penalty: float = 1.0, memory: tuple[Tensor, ...] = (),
           length_norm: str = "length") -> list[list[int]]:
    """Runs the configured search (``task.decoding``); see ``greedy_search`` and ``beam_hypotheses``."""
    if strategy == "greedy":
        return greedy_search(step, states, bos, eos, max_length, memory)
    if strategy == "beam":
        return beam_search(step, states, bos, eos, max_length, beam_size, length_penalty, memory, length_norm)
    raise ValueError(f"task.decoding.strategy must be one of {STRATEGIES}, got {strategy!r}")
