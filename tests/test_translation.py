"""Translation: data rules, the decoder's two paths, greedy and beam search, scores, and training end to end."""

from __future__ import annotations

import gzip
import json
from functools import partial
from pathlib import Path

import pytest
import torch

from conftest import SHARED_DATA, compose_train
from rnnlab.cells import ElmanCell, LSTMCell, PeepholeLSTMCell
from rnnlab.cells.slstm import SLSTMCell
from rnnlab.data.errors import DataError
from rnnlab.data.special import BOS, EOS
from rnnlab.data.translation import TranslationDataModule
from rnnlab.encoders import RNNEncoder
from rnnlab.errors import UserError
from rnnlab.models.attention import SCORES, build_attention
from rnnlab.models.decoding import (Bridge, RNNDecoder, beam_hypotheses, beam_search, greedy_search,
                                    length_normaliser)
from rnnlab.run.pipeline import build, train
from rnnlab.tasks.translation import corpus_scores

GERMAN = ["Ein Hund läuft.", "Zwei Männer spielen Fußball.", "Eine Frau liest ein Buch.",
          "Ein Kind isst einen Apfel.", "Ein Mann fährt Fahrrad."]
ENGLISH = ["A dog is running.", "Two men are playing soccer.", "A woman is reading a book.",
           "A child is eating an apple.", "A man is riding a bike."]
SPLIT_STEMS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}


def write_multi30k(root: Path, de: list[str] = GERMAN, en: list[str] = ENGLISH,
                   train_en: list[str] | None = None) -> Path:
    """Writes a Multi30k-style folder ``root/multi30k`` (gzipped, line-aligned) and returns ``root``."""
    folder = root / "multi30k"
    folder.mkdir(parents=True, exist_ok=True)
    for stem in SPLIT_STEMS.values():
        sides = {"de": de, "en": train_en if stem == "train" and train_en is not None else en}
        for lang, lines in sides.items():
            with gzip.open(folder / f"{stem}.{lang}.gz", "wt", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in lines))
    return root


def datamodule(root: Path, **options) -> TranslationDataModule:
    return TranslationDataModule("multi30k", "multi30k", SPLIT_STEMS, suffix=".gz", data_dir=str(root), **options)


# ----------------------------------------------------------------- data
def test_data_pairs_tokenises_and_marks_sentences(tmp_path: Path) -> None:
    dm = datamodule(write_multi30k(tmp_path), batch_size=2)
    dm.setup("fit")
    assert BOS in dm.target_vocab and EOS in dm.target_vocab and BOS not in dm.source_vocab
    row = dm.datasets["train"][0]
    assert dm.source_vocab.decode(row["source_ids"]) == ["Ein", "Hund", "läuft", ".", EOS]
    assert dm.target_vocab.decode(row["target_ids"]) == [BOS, "A", "dog", "is", "running", ".", EOS]
    batch = next(iter(dm.val_dataloader()))
    assert batch["source"].shape == batch["source_mask"].shape
    assert sorted(batch["references"]) == sorted(ENGLISH)  # raw text, for scoring
    assert [ENGLISH[i] for i in batch["index"]] == batch["references"]


def test_direction_is_configurable(tmp_path: Path) -> None:
    dm = datamodule(write_multi30k(tmp_path), source_lang="en", target_lang="de")
    dm.setup("fit")
    assert "Hund" in dm.target_vocab and "dog" in dm.source_vocab
    assert dm.model_kwargs()["target_lang"] == "de"


def test_misaligned_files_name_both_files_and_counts(tmp_path: Path) -> None:
    root = write_multi30k(tmp_path, train_en=ENGLISH[:3])
    with pytest.raises(DataError) as error:
        datamodule(root).setup("fit")
    message = str(error.value)
    assert "train.de.gz has 5 lines" in message and "train.en.gz has 3" in message


def test_empty_lines_dropped_from_train_kept_in_evaluation(tmp_path: Path) -> None:
    root = write_multi30k(tmp_path, de=[*GERMAN, "Ein leeres Ziel.", ""], en=[*ENGLISH, "", "An empty source."])
    dm = datamodule(root)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 5
    assert len(dm.datasets["test"]) == 7
    empty_source = dm.datasets["test"][6]
    assert dm.source_vocab.decode(empty_source["source_ids"]) == [EOS]
    assert dm.target_vocab.decode(dm.datasets["test"][5]["target_ids"]) == [BOS, EOS]


def test_undecodable_file_names_the_file_and_the_option(tmp_path: Path) -> None:
    root = write_multi30k(tmp_path)
    with gzip.open(root / "multi30k" / "val.de.gz", "wb") as handle:
        handle.write("Ein Hund läuft.\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"val\.de\.gz:1: cannot decode the file as utf-8.*encoding="):
        datamodule(root).setup("fit")


def test_hub_source_reads_one_column_per_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub path, with ``load_dataset`` answered locally by a dataset of the Hub copy's schema."""
    import datasets

    split = datasets.Dataset.from_dict({"en": ENGLISH, "de": GERMAN})
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path: asked.append(path) or datasets.DatasetDict(
        {"train": split, "validation": split, "test": split}))
    dm = datamodule(tmp_path / "empty", hub={"path": "bentrevett/multi30k"})
    dm.setup("fit")
    assert asked == ["bentrevett/multi30k"] and len(dm.datasets["test"]) == 5


def test_missing_data_and_unreachable_hub_say_where_to_look(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def unreachable(path: str) -> None:
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError) as error:
        datamodule(tmp_path, hub={"path": "bentrevett/multi30k"}).setup("fit")
    message = str(error.value)
    assert str(tmp_path / "multi30k") in message and "train.de.gz" in message
    assert "bentrevett/multi30k" in message and "ConnectionError" in message and "RNNLAB_DATA_DIR" in message


# ----------------------------------------------------------------- decoder
def source_memory(decoder: RNNDecoder, batch: int, length: int = 5, size: int = 6) -> tuple:
    """Random encoder outputs for ``decoder.memory``, sentence ``b`` with ``length - b % 3`` real tokens."""
    outputs = torch.randn(batch, length, size)
    source_mask = torch.arange(length) < (length - torch.arange(batch) % 3).unsqueeze(1)  # (B, S)
    return decoder.memory(torch.randn(batch, size), outputs * source_mask.unsqueeze(-1), source_mask)


ATTENTION_CASES = [(LSTMCell, 0, "none", False), (ElmanCell, 0, "none", False), (PeepholeLSTMCell, 0, "none", False),
                   (LSTMCell, 6, "none", False), (LSTMCell, 0, "additive", False), (LSTMCell, 0, "general", False),
                   (ElmanCell, 6, "additive", True), (LSTMCell, 0, "general", True)]


@pytest.mark.parametrize("cell,context_size,attention,input_feeding", ATTENTION_CASES)
def test_step_by_step_equals_teacher_forcing(cell: type, context_size: int, attention: str,
                                             input_feeding: bool) -> None:
    """Generation (one cell step at a time) computes what training (the fused sequence path, or the stepped
    one with input feeding) computes: the same log-probabilities and the same attention weights."""
    torch.manual_seed(0)
    decoder = RNNDecoder(partial(cell), vocab_size=12, embedding_dim=8, hidden_size=16, num_layers=2,
                         dropout=0.3, context_size=context_size, attention=attention, key_size=6,
                         input_feeding=input_feeding).eval()
    states = decoder.initial_states([tuple(torch.randn(4, 16) * 0.5 for _ in range(decoder.rnn.state_layout.num_states))
                                     for _ in range(2)])
    memory = source_memory(decoder, 4)
    inputs = torch.randint(1, 12, (4, 6))
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 3:] = False
    hidden, weights = decoder(inputs, mask, states, *memory)
    expected = torch.log_softmax(decoder.scores(hidden), dim=-1)  # (B, T, V)
    stepped, stepped_weights, running = [], [], states
    for t in range(6):
        log_probs, running, step_weights = decoder.step(inputs[:, t], running, *memory)
        stepped.append(log_probs)
        stepped_weights.append(step_weights)
    torch.testing.assert_close(torch.stack(stepped, dim=1)[mask], expected[mask], atol=1e-5, rtol=1e-5)
    if attention == "none":
        assert weights is None and stepped_weights[0] is None
    else:
        torch.testing.assert_close(torch.stack(stepped_weights, dim=1)[mask], weights[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", SCORES)
def test_attention_gives_padding_exactly_zero_weight(kind: str) -> None:
    torch.manual_seed(0)
    attention = build_attention(kind, query_size=6, key_size=6)
    keys = torch.randn(3, 5, 6) * 5
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    for query in (torch.randn(3, 6), torch.randn(3, 4, 6)):  # one step, or every output position at once
        context, weights = attention(query, keys, attention.prepare(keys), mask)
        mask_like = mask if query.dim() == 2 else mask.unsqueeze(1).expand(-1, 4, -1)
        assert bool((weights[~mask_like] == 0).all()) and bool((weights[mask_like] > 0).all())
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
        assert context.shape == (*query.shape[:-1], 6)
    _, weights = attention(torch.randn(3, 6), keys, attention.prepare(keys), mask)
    assert weights[2].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]  # one real token takes all the weight


def test_attention_options_that_do_not_fit_name_the_option() -> None:
    with pytest.raises(UserError, match="kind=dot needs the decoder's hidden size"):
        RNNDecoder(partial(LSTMCell), 10, 8, 16, attention="dot", key_size=32)
    with pytest.raises(UserError, match="input_feeding=true"):
        RNNDecoder(partial(LSTMCell), 10, 8, 16, input_feeding=True)
    with pytest.raises(UserError, match="attention.kind must be one of"):
        RNNDecoder(partial(LSTMCell), 10, 8, 16, attention="multihead", key_size=16)


def random_decoder(seed: int = 0, vocab_size: int = 10) -> tuple[RNNDecoder, list]:
    torch.manual_seed(seed)
    decoder = RNNDecoder(partial(LSTMCell), vocab_size, embedding_dim=8, hidden_size=16, num_layers=2).eval()
    states = [(torch.randn(6, 16), torch.randn(6, 16)) for _ in range(2)]
    return decoder, states


def test_beam_size_one_is_greedy_with_a_context() -> None:
    torch.manual_seed(3)
    decoder = RNNDecoder(partial(LSTMCell), 10, embedding_dim=8, hidden_size=16, context_size=4).eval()
    states, memory = [(torch.randn(6, 16), torch.randn(6, 16))], (torch.randn(6, 4) * 3,)
    greedy = greedy_search(decoder.step, states, 1, 2, max_length=9, memory=memory)
    assert greedy == beam_search(decoder.step, states, 1, 2, max_length=9, beam_size=1, memory=memory)
    assert len({tuple(ids) for ids in greedy}) > 1  # the context steers each sentence


@pytest.mark.parametrize("seed", [0, 1, 5])  # seeds whose outputs mix <eos> stops and the length limit
def test_beam_size_one_is_greedy(seed: int) -> None:
    decoder, states = random_decoder(seed)
    greedy = greedy_search(decoder.step, states, bos=1, eos=2, max_length=12)
    assert greedy == beam_search(decoder.step, states, bos=1, eos=2, max_length=12, beam_size=1)
    assert {0, 12} < {len(ids) for ids in greedy}


def sequence_log_prob(decoder: RNNDecoder, states: list, ids: list[int], bos: int, eos: int) -> float:
    total, token = 0.0, torch.tensor([bos])
    for word in [*ids, eos]:
        log_probs, states, _ = decoder.step(token, states)
        total += log_probs[0, word].item()
        token = torch.tensor([word])
    return total


def test_wide_beam_finds_outputs_at_least_as_probable_as_greedy() -> None:
    decoder, states = random_decoder(1)
    greedy = greedy_search(decoder.step, states, 1, 2, max_length=8)
    beam = beam_search(decoder.step, states, 1, 2, max_length=8, beam_size=6, length_penalty=0.0)
    for row, (g, b) in enumerate(zip(greedy, beam)):
        one = [tuple(s[row:row + 1] for s in state) for state in states]
        assert sequence_log_prob(decoder, one, b, 1, 2) >= sequence_log_prob(decoder, one, g, 1, 2) - 1e-5


def attention_decoder(seed: int = 0, batch: int = 6) -> tuple[RNNDecoder, list, tuple]:
    """A random decoder with additive attention and input feeding, its initial states and memory."""
    torch.manual_seed(seed)
    decoder = RNNDecoder(partial(LSTMCell), 10, embedding_dim=8, hidden_size=16, attention="additive", key_size=6,
                         input_feeding=True).eval()
    states = decoder.initial_states([(torch.randn(batch, 16), torch.randn(batch, 16))])
    return decoder, states, source_memory(decoder, batch)


def test_beam_size_one_is_greedy_with_attention() -> None:
    decoder, states, memory = attention_decoder(2)
    greedy = greedy_search(decoder.step, states, 1, 2, max_length=9, memory=memory)
    assert greedy == beam_search(decoder.step, states, 1, 2, max_length=9, beam_size=1, memory=memory)


@pytest.mark.parametrize("length_norm", ["length", "gnmt"])
def test_batched_beam_search_equals_one_sentence_at_a_time(length_norm: str) -> None:
    """Sentences of a batch do not interact: their beams, scores and stopping are each their own."""
    decoder, states, memory = attention_decoder(4)
    search = partial(beam_hypotheses, decoder.step, bos=1, eos=2, max_length=10, beam_size=4, length_penalty=0.8,
                     length_norm=length_norm, n_best=4)
    batched = search(states, memory=memory)
    for row, hypotheses in enumerate(batched):
        one = search([tuple(s[row:row + 1] for s in state) for state in states],
                     memory=tuple(m[row:row + 1] for m in memory))[0]
        assert [ids for _, ids in one] == [ids for _, ids in hypotheses]
        assert [score for score, _ in one] == pytest.approx([score for score, _ in hypotheses], abs=1e-5)
    assert len({tuple(h[0][1]) for h in batched}) > 1 and all(len(h) == 4 for h in batched)


def test_n_best_are_sorted_and_the_first_is_the_beam_output() -> None:
    decoder, states, memory = attention_decoder(5)
    n_best = beam_hypotheses(decoder.step, states, 1, 2, max_length=8, beam_size=5, memory=memory, n_best=3)
    best = beam_search(decoder.step, states, 1, 2, max_length=8, beam_size=5, memory=memory)
    for hypotheses, ids in zip(n_best, best):
        scores = [score for score, _ in hypotheses]
        assert len(hypotheses) == 3 and scores == sorted(scores, reverse=True) and hypotheses[0][1] == ids
        assert len({tuple(h) for _, h in hypotheses}) == 3
    with pytest.raises(ValueError, match="n_best must be between 1 and beam_size"):
        beam_hypotheses(decoder.step, states, 1, 2, max_length=8, beam_size=2, memory=memory, n_best=3)


def test_length_normaliser() -> None:
    assert length_normaliser(7, 0.0, "gnmt") == 1.0 and length_normaliser(7, 0.0, "length") == 1.0
    assert length_normaliser(1, 1.0, "gnmt") == 1.0  # ((5 + 1) / 6) ** alpha: one token is not penalised
    assert length_normaliser(13, 0.5, "gnmt") == pytest.approx(3 ** 0.5)
    assert length_normaliser(4, 2.0, "length") == 16.0
    # The penalty can change the ranking: a longer output with a lower raw score wins once normalised.
    short, long = -3.0 / length_normaliser(2, 1.0, "gnmt"), -4.0 / length_normaliser(8, 1.0, "gnmt")
    assert long > short and -3.0 > -4.0
    with pytest.raises(ValueError, match="length_norm must be one of"):
        length_normaliser(3, 1.0, "wmt")


def rig(decoder: RNNDecoder, word: int) -> RNNDecoder:
    """Makes the decoder always prefer ``word``."""
    with torch.no_grad():
        decoder.output.weight.zero_()
        decoder.output.bias.zero_()
        decoder.output.bias[word] = 10.0
    return decoder


@pytest.mark.parametrize("search", [greedy_search, partial(beam_search, beam_size=3)])
def test_eos_stops_generation_and_max_length_caps_it(search) -> None:
    decoder, states = random_decoder()
    assert search(rig(decoder, 2).step, states, 1, 2, max_length=7) == [[]] * 6
    assert search(rig(decoder, 5).step, states, 1, 2, max_length=7) == [[5] * 7] * 6


def cell_by_cell_step(decoder: RNNDecoder, tokens: torch.Tensor, states: list,
                      *memory: torch.Tensor) -> tuple[torch.Tensor, list, None]:
    """``RNNDecoder.step`` as it was written before the recurrence engine: each layer's cell called in turn."""
    context, attend = (memory[0], memory[1:]) if decoder.context_size else (None, memory)
    x = decoder.dropout(decoder.embedding(tokens))
    x = x if context is None else torch.cat([x, context], dim=-1)
    layers = states[:-1] if decoder.input_feeding else states
    if decoder.input_feeding:
        x = torch.cat([x, states[-1][0]], dim=-1)
    new_states = []
    for k, layer in enumerate(decoder.rnn.layers):
        x, state = layer[0].cell(decoder.rnn.dropout(x) if k > 0 else x, layers[k])
        new_states.append(state)
    if decoder.attention is not None:
        context, _ = decoder.attention(x, *attend)
        x = torch.tanh(decoder.combine(torch.cat([context, x], dim=-1)))
    if decoder.input_feeding:
        new_states.append((x,))
    return torch.log_softmax(decoder.scores(x), dim=-1), new_states, None


@pytest.mark.parametrize("seed", [0, 3])
def test_searches_give_what_stepping_cell_by_cell_gives(seed: int) -> None:
    """Greedy and beam outputs of two-layer decoders, with a context, attention and input feeding, equal those
    of the cell-by-cell stepping the decoder used before the recurrence engine."""
    torch.manual_seed(seed)
    decoder = RNNDecoder(partial(LSTMCell), 12, embedding_dim=8, hidden_size=16, num_layers=2, context_size=6,
                         attention="additive", key_size=6, input_feeding=True).eval()
    states = decoder.initial_states([(torch.randn(6, 16), torch.randn(6, 16)) for _ in range(2)])
    memory = source_memory(decoder, 6)
    before = partial(cell_by_cell_step, decoder)
    for search in (greedy_search, partial(beam_search, beam_size=4, length_penalty=0.8)):
        outputs = search(decoder.step, states, 1, 2, max_length=10, memory=memory)
        assert outputs == search(before, states, 1, 2, max_length=10, memory=memory)
        assert len({tuple(ids) for ids in outputs}) > 1


def saturated_decoder(input_feeding: bool = False, implementation: str = "auto") -> RNNDecoder:
    """An LSTM decoder whose memory gains 1 a step (every gate σ(30) = 1, candidate tanh(30) = 1) and that always
    prefers word 5, so no search stops before ``max_length``."""
    decoder = RNNDecoder(partial(LSTMCell), 10, embedding_dim=4, hidden_size=4, implementation=implementation,
                         attention="general" if input_feeding else "none", key_size=4, input_feeding=input_feeding)
    with torch.no_grad():
        for name, parameter in decoder.rnn.named_parameters():
            parameter.fill_(30.0 if name.endswith("bias") else 0.0)
    return rig(decoder.eval(), 5)


DECODER_PATHS = {  # (input feeding, implementation, run(decoder, initial states, memory))
    "teacher-forcing": (False, "reference", lambda decoder, states, memory: decoder(
        torch.ones(1, 400, dtype=torch.long), torch.ones(1, 400, dtype=torch.bool), states)),
    "input-feeding": (True, "auto", lambda decoder, states, memory: decoder(
        torch.ones(1, 400, dtype=torch.long), torch.ones(1, 400, dtype=torch.bool), states, *memory)),
    "greedy": (False, "auto", lambda decoder, states, memory: greedy_search(decoder.step, states, 1, 2, 400)),
    "beam": (False, "auto", lambda decoder, states, memory: beam_search(decoder.step, states, 1, 2, 400,
                                                                         beam_size=2)),
}


@pytest.mark.parametrize("path", DECODER_PATHS)
def test_decoder_memory_grows_past_256_under_autocast(path: str) -> None:
    """The decoder's recurrence runs in the parameters' precision under bf16 autocast on every path, as the
    encoder's does: a memory gaining 1 a step ends at the number of steps (400, or 401 for the beam's last
    step), where a bf16 memory stops at 256. The initial state is bf16, as a linear bridge under autocast
    hands it over."""
    input_feeding, implementation, run = DECODER_PATHS[path]
    decoder = saturated_decoder(input_feeding, implementation)
    states = decoder.initial_states([(torch.zeros(1, 4, dtype=torch.bfloat16),) * 2])
    memory = source_memory(decoder, 1, size=4)
    memories = []  # the first layer's c after each step, as its cell computed it
    cell = next(module for module in decoder.modules() if isinstance(module, LSTMCell))
    hook = cell.register_forward_hook(lambda module, args, out: memories.append(out[1][1]))
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            run(decoder, states, memory)
    finally:
        hook.remove()
    assert len(memories) >= 400
    assert torch.allclose(memories[-1].float(), torch.full((1, 4), float(len(memories)))), memories[-1]


def test_bridge_identity_and_linear() -> None:
    lstm = partial(LSTMCell)
    unidirectional = RNNEncoder(lstm, 8, 16, num_layers=2)
    assert Bridge(unidirectional, RNNEncoder(lstm, 8, 16, num_layers=2)).kind == "identity"
    birnn = RNNEncoder(lstm, 8, 16, num_layers=2, bidirectional=True)
    bridge = Bridge(birnn, RNNEncoder(partial(ElmanCell), 8, 32))  # BiLSTM 2x2x16 -> one Elman layer
    assert bridge.kind == "linear"
    encoded = birnn(torch.randn(3, 5, 8), torch.ones(3, 5, dtype=torch.bool))
    states = bridge(encoded.final_states)
    assert len(states) == 1 and len(states[0]) == 1 and states[0][0].shape == (3, 32)
    with pytest.raises(ValueError, match="bridge=identity needs"):
        Bridge(birnn, RNNEncoder(lstm, 8, 16, num_layers=2), kind="identity")


def test_linear_bridge_hands_an_slstm_decoder_a_valid_memory() -> None:
    """A bridged sLSTM state is (h, c, n = 1, m = 0): a normaliser near 0 would make h = o c / n explode."""
    torch.manual_seed(0)
    birnn = RNNEncoder(partial(LSTMCell), 8, 16, bidirectional=True)
    decoder = RNNEncoder(partial(SLSTMCell), 8, 16, num_layers=2)
    bridge = Bridge(birnn, decoder)
    assert bridge.linear.out_features == 2 * 2 * 16  # h and c of each layer, no rows for n and m
    encoded = birnn(torch.randn(3, 5, 8), torch.ones(3, 5, dtype=torch.bool))
    states = bridge(encoded.final_states)
    for h, c, n, m in states:
        assert h.shape == c.shape == (3, 16) and torch.equal(n, torch.ones(3, 16)) and torch.equal(m, torch.zeros(3, 16))
    for h, *_ in decoder.step(torch.randn(3, 8) * 10, states).states:
        assert h.abs().max() <= 1.0  # |h| = o |c| / n ≤ 1 for a memory of values in (−1, 1)


# ----------------------------------------------------------------- scores
def test_bleu_and_chrf_of_references_against_themselves_are_100() -> None:
    assert corpus_scores(ENGLISH, ENGLISH) == pytest.approx({"bleu": 100.0, "chrf": 100.0})
    assert corpus_scores([e.lower() for e in ENGLISH], ENGLISH, lowercase=True)["bleu"] == pytest.approx(100.0)
    assert corpus_scores(["A cat is running."], ["A dog is running."])["bleu"] < 100.0


# ----------------------------------------------------------------- end to end
@pytest.mark.parametrize("encoder", [
    ["model=lstm", "model.encoder.num_layers=2"],
    ["model=bilstm", "model.encoder.num_layers=2", "model/cell@model.decoder.cell=elman",
     "model.decoder.feed_context=true"],
    ["model=bilstm", "model/attention=additive", "model.decoder.attention.input_feeding=true"],
    ["model=lstm", "model/attention=dot", "task.val_bleu=true", "task.optimized_metric=val/bleu", "task.mode=max"],
])
def test_train_fast_dev_run(encoder: list[str], tmp_path: Path) -> None:
    root = write_multi30k(tmp_path / "data")
    cfg = compose_train(["task=translation", *encoder, "debug=fast", f"paths.data_dir={root}", "data.min_freq=1",
                         "model.encoder.hidden_size=16", "model.embedding_dim=8", "task.decoding.strategy=beam",
                         "task.decoding.max_length=10"], tmp_path / "run")
    metrics = train(cfg)
    for name in ("test/bleu", "test/chrf", "val/bleu", "val/bleu_best"):
        assert 0.0 <= metrics[name] <= 100.0
    assert metrics["test/ppl"] > 1.0
    saved = json.loads((tmp_path / "run" / "vocab.json").read_text())
    assert BOS in saved["target_vocab"]["items"] and saved["target_lang"] == "en"


def test_training_memorises_the_fixture(tmp_path: Path) -> None:
    """A few dozen epochs on five pairs: the decoded, detokenised test output equals the raw references."""
    root = write_multi30k(tmp_path / "data")
    cfg = compose_train(["task=translation", "model=lstm", f"paths.data_dir={root}", "data.min_freq=1",
                         "model.encoder.hidden_size=32", "model.embedding_dim=16", "model.dropout=0",
                         "model.embedding_dropout=0", "model.word_dropout=0", "task.optimizer.lr=0.03",
                         "trainer.max_epochs=60", "callbacks.early_stopping.patience=100", "~logger",
                         "task.module.bleu_every_n_epochs=20", "task.module.bleu_max_sentences=3"],
                        tmp_path / "run")
    metrics = train(cfg)
    assert metrics["test/bleu"] == pytest.approx(100.0) and metrics["test/chrf"] == pytest.approx(100.0)
    assert metrics["val/bleu_best"] == pytest.approx(100.0)


def test_validation_bleu_decodes_greedily_and_selects_the_checkpoint(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import rnnlab.tasks.translation as translation

    strategies = []
    decode = translation.decode
    monkeypatch.setattr(translation, "decode", lambda *args, strategy, **kwargs: strategies.append(strategy)
                        or decode(*args, strategy=strategy, **kwargs))
    root = write_multi30k(tmp_path / "data")
    cfg = compose_train(["task=translation", "model=lstm", "model/attention=additive", f"paths.data_dir={root}",
                         "data.min_freq=1", "model.encoder.hidden_size=16", "model.embedding_dim=8",
                         "trainer.max_epochs=2", "~logger", "task.val_bleu=true", "task.optimized_metric=val/bleu",
                         "task.mode=max", "task.module.bleu_every_n_epochs=0", "task.decoding.strategy=beam",
                         "task.decoding.max_length=6"], tmp_path / "run")
    metrics = train(cfg)
    assert 0.0 <= metrics["val/bleu"] <= 100.0 and 0.0 <= metrics["test/bleu"] <= 100.0
    assert strategies == ["greedy", "greedy", "beam"]  # one validation batch per epoch, then the test set
    best = tmp_path / "run" / "checkpoints" / "best.ckpt"
    callbacks = torch.load(best, weights_only=False)["callbacks"]
    monitor = [state for key, state in callbacks.items() if key.startswith("ModelCheckpoint")][0]
    assert monitor["monitor"] == "val/bleu" and float(monitor["best_model_score"]) == metrics["val/bleu_best"]


def test_pretrained_source_vectors_are_loaded_and_frozen(tmp_path: Path) -> None:
    root = write_multi30k(tmp_path / "data")
    vectors = tmp_path / "de.vec"
    vectors.write_text("2 8\nHund 1 2 3 4 5 6 7 8\nnotInVocab 0 0 0 0 0 0 0 0\n")  # word2vec text, with header
    cfg = compose_train(["task=translation", "model=lstm", "debug=smoke", f"paths.data_dir={root}",
                         "data.min_freq=1", "model.encoder.hidden_size=16", "model.embedding_dim=8",
                         f"model.pretrained_vectors={vectors}", "model.freeze_embeddings=true", "test=false"],
                        tmp_path / "run")
    train(cfg)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    source = checkpoint["hyper_parameters"]["source_vocab"]["items"]
    weights = checkpoint["state_dict"]["embedder.embedding.weight"]
    assert weights[source.index("Hund")].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


def test_experiment_composes_and_smoke_runs(tmp_path: Path) -> None:
    root = write_multi30k(tmp_path / "data")
    cfg = compose_train(["experiment=mt_multi30k", "debug=fast", f"paths.data_dir={root}", "data.min_freq=1",
                         "data.target_min_freq=1", "task.decoding.max_length=5"], tmp_path / "run")
    assert cfg.task.name == "translation" and cfg.model.decoder.feed_context
    assert train(cfg)["test/bleu"] >= 0.0


def test_bleu_selection_with_the_wrong_mode_is_one_clear_error(tmp_path: Path) -> None:
    """val/bleu watched with mode=min (the task's default for val/loss) would keep the worst checkpoint."""
    cfg = compose_train(["task=translation", "task.val_bleu=true", "task.optimized_metric=val/bleu"], tmp_path)
    with pytest.raises(UserError, match=r"task.optimized_metric=val/bleu is better when higher, but task.mode=min; "
                                        r"set task.mode=max"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_attention_experiment_composes_and_smoke_runs(tmp_path: Path) -> None:
    root = write_multi30k(tmp_path / "data")
    cfg = compose_train(["experiment=mt_multi30k_attention", "debug=fast", f"paths.data_dir={root}",
                         "data.min_freq=1", "data.target_min_freq=1", "task.decoding.max_length=5"], tmp_path / "run")
    attention = cfg.model.decoder.attention
    assert attention.kind == "additive" and attention.input_feeding and cfg.model.encoder.bidirectional
    assert cfg.optimized_metric == "val/bleu" and cfg.callbacks.model_checkpoint.mode == "max"
    assert train(cfg)["test/bleu"] >= 0.0


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "multi30k").is_dir(), reason="no local Multi30k copy")
def test_real_multi30k_reads_and_builds(tmp_path: Path) -> None:
    cfg = compose_train(["task=translation", "model=lstm", f"paths.data_dir={SHARED_DATA}"], tmp_path)
    dm, module = build(cfg)
    assert {split: len(d) for split, d in dm.datasets.items()} == {"train": 29000, "validation": 1014, "test": 1000}
    assert 5000 < len(dm.target_vocab) < 8000 and module.bridge.kind == "identity"
