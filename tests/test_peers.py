"""benchmarks/peers without any peer installed: data and vector export, the scorer, the parsing of each system's
records, the tables and the plot."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS))
import common  # noqa: E402


def test_iob2_keeps_the_entities_of_iob1_tags():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]
    assert common.iob2(iob1) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]


def test_columns_round_trip_and_refuse_a_tab_in_a_token(tmp_path):
    sentences = [{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}, {"tokens": ["Peter"], "tags": ["B-PER"]}]
    assert common.write_columns(tmp_path / "a.tsv", sentences) == 2
    assert common.read_columns(tmp_path / "a.tsv") == sentences
    with pytest.raises(ValueError, match="cannot be written"):
        common.write_columns(tmp_path / "b.tsv", [{"tokens": ["a\tb"], "tags": ["O"]}])


def test_vector_export_reads_back_the_first_row_of_each_word(tmp_path):
    words = ["the", "Paris", "the", "new york", "é"]
    matrix = np.arange(15, dtype=np.float64).reshape(5, 3)
    common.export_vectors(words, matrix, tmp_path / "v")
    read_words, read = common.read_exported(tmp_path / "v")
    assert read_words == ["the", "Paris", "é"]  # the repeated word and the one holding a space are left out
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, matrix[[0, 1, 4]].astype(np.float32))


@pytest.mark.skipif(importlib.util.find_spec("gensim") is None, reason="gensim lives in the peer's venv")
def test_gensim_conversion_reads_back_equal(tmp_path):
    sys.path.insert(0, str(PEERS / "flair"))
    from convert_vectors import convert
    from gensim.models import KeyedVectors

    words, matrix = ["a", "b"], np.array([[1, 2], [3, 4]], dtype=np.float32)
    common.export_vectors(words, matrix, tmp_path / "v")
    convert(tmp_path / "v", tmp_path / "v.gensim")
    loaded = KeyedVectors.load(str(tmp_path / "v.gensim"))
    np.testing.assert_array_equal(loaded["b"], matrix[1])


def test_scores_span_f1_with_conlleval_rules_and_accuracy():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert common.score("ner", gold, gold) == 100.0
    # one of two entities right, one spurious: P = 1/2, R = 1/2
    assert common.score("ner", gold, [["B-PER", "I-PER", "B-ORG", "O"]]) == pytest.approx(50.0)
    # IOB1 and IOB2 spellings of the same entities score the same
    assert common.score("ner", [["I-PER", "I-PER"]], [["B-PER", "I-PER"]]) == 100.0
    assert common.score("upos", [["NOUN", "VERB"], ["X"]], [["NOUN", "NOUN"], ["X"]]) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="predicted tags"):
        common.score("upos", [["NOUN"]], [["NOUN", "X"]])


def test_predictions_round_trip(tmp_path):
    common.write_predictions(tmp_path / "p.txt", [["B-PER", "O"], ["O"]])
    assert common.read_predictions(tmp_path / "p.txt") == [["B-PER", "O"], ["O"]]


def test_rnnlab_records_epochs_one_based_in_percent(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "epoch,step,test/f1,train/loss,val/f1\n"
        "0,49,,1.5,\n"       # a training row
        "0,438,,,0.836\n"
        "1,877,,,0.882\n"
        "1,877,0.87,,\n")    # the test row
    assert common.rnnlab_epochs(tmp_path / "metrics.csv", "val/f1") == pytest.approx({1: 83.6, 2: 88.2})
    for name in ("epoch=000.ckpt", "epoch=011.ckpt", "best.ckpt", "last.ckpt"):
        (tmp_path / name).write_text("")
    assert list(common.rnnlab_checkpoints(tmp_path)) == [1, 12]


def test_epoch_times_count_start_up_in_the_first():
    assert common.epoch_times({2: 70.0, 1: 40.0, 3: 95.0}, 10.0) == {1: 30.0, 2: 30.0, 3: 25.0}


def _result() -> dict:
    system = lambda ends, dev, test, best, infer, rss: {
        "epoch_end_s": {str(i + 1): t for i, t in enumerate(ends)},
        "dev_by_epoch": {str(i + 1): v for i, v in enumerate(dev)},
        "test_by_epoch": {str(i + 1): v for i, v in enumerate(test)},
        "best_epoch": best, "train_sentences": 1000, "inference_sent_s": infer, "peak_rss_kib": rss}
    return {"peer": "flair", "task": "ner", "seed": 42, "started": "t", "load_start": "2.0",
            "systems": {"rnnlab": system([50, 80, 110], [80, 85, 84], [78, 83, 82], 2, [1500, 1700], 1024 * 500),
                        "flair": system([150, 290], [79, 84], [77, 82], 2, [370, 380], 1024 * 1000)}}


def test_tables_hold_each_figure():
    text = common.tables(_result())
    row = lambda title: next(line for line in text.splitlines() if line.startswith(f"| {title}"))
    assert row("epochs trained") == "| epochs trained | 3 | 2 |"
    assert row("later epochs") == "| later epochs, s (median, min–max) | 30 (30–30) | 140 (140–140) |"
    assert row("training sentences/s") == "| training sentences/s | 33 | 7 |"
    assert row("test F1, best-dev epoch") == "| test F1, best-dev epoch | 83.00 | 82.00 |"
    assert row("test F1, last epoch") == "| test F1, last epoch | 82.00 | 82.00 |"
    assert row("inference") == "| inference sentences/s (median, min–max) | 1,600 (1,500–1,700) | 375 (370–380) |"
    assert row("inference sentences/s, sorted") == "| inference sentences/s, sorted by length first | – | – |"
    assert row("peak RSS") == "| peak RSS of training, MiB | 500 | 1,000 |"
    assert "| 3 | 110 | 84.00 | 82.00 | – | – | – |" in text
    assert "inference sentences/s (medians) 4.27×" in text


def test_a_partial_epoch_counts_by_its_time_and_stays_out_of_the_epoch_times(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,val/acc\n0,391,0.89\n1,783,0.92\n2,1175,0.93\n3,1322,0.94\n")
    assert common.rnnlab_partial_epochs(tmp_path / "metrics.csv", "val/acc") == {"4": pytest.approx(147 / 392)}
    result = _result()
    result["systems"]["rnnlab"]["partial_epochs"] = {"3": 0.25}
    text = common.tables(result)
    assert "| epochs trained | 2.25 | 2 |" in text
    assert "| later epochs, s (median, min–max) | 30 (30–30) |" in text  # epoch 3 left out
    assert "| 3 | 110 (25% of an epoch) |" in text


def test_score_at_a_wall_time():
    system = _result()["systems"]["flair"]
    assert common.score_at(system, 100) is None
    assert common.score_at(system, 150) == 77
    assert common.score_at(system, 1e9) == 82
    rnnlab = _result()["systems"]["rnnlab"]  # dev 80/85/84: epoch 2 stays the best-dev model after it
    assert [common.score_at(rnnlab, t, selected=True) for t in (50, 80, 110)] == [78, 83, 83]


def test_equal_time_margins_start_when_both_hold_a_model():
    # rnnlab's epochs end at 50/80/110 s (test 78/83/82), Flair's at 150/290 s (77/82)
    assert common.equal_time_margins(_result()) == {150: 5, 290: 0}
    behind = _result()
    behind["systems"]["flair"]["test_by_epoch"]["2"] = 82.5
    assert common.equal_time_margins(behind)[290] == pytest.approx(-0.5)
    # the best-dev epochs so far: rnnlab's epoch 2 (dev 85, test 83) from 80 s on
    assert common.equal_time_margins(behind, selected=True) == {150: 6, 290: pytest.approx(0.5)}


def _seeds(*flair_best: float) -> list[dict]:
    """Runs of seeds 1, 2, ... whose Flair scores ``flair_best`` at its best-dev epoch (rnnlab: 83)."""
    runs = []
    for seed, score in enumerate(flair_best, start=1):
        run = _result()
        run.update(seed=seed, commands={
            "rnnlab": ["train.py", "trainer.max_epochs=15", "trainer.max_time='00:00:38:00'"],
            "flair": ["run_flair.py", "train", "--epochs", "15", "--max-minutes", "38"]})
        run["systems"]["flair"]["test_by_epoch"]["2"] = score
        runs.append(run)
    return runs


def test_the_seeds_table_gives_each_seed_and_the_paired_difference():
    text = common.seeds_table(_seeds(82.0, 84.0, 83.0))
    assert "| 1 | t (2.0) | 15 ep / 00:00:38:00; 15 ep / 38 min | 3 / 2 | 83.00 | 82.00 | +1.00 | 4.67× | " \
           "2 of 2 (+0.00) | 2 of 2 (+1.00) |" in text
    assert "| 2 | t (2.0) | 15 ep / 00:00:38:00; 15 ep / 38 min | 3 / 2 | 83.00 | 84.00 | -1.00 | 4.67× | " \
           "1 of 2 (-2.00) | 1 of 2 (-1.00) |" in text
    # Flair 83 ± 1 over 3 seeds: t(0.975, 2) = 4.303, half-width 4.303 / √3 = 2.48
    assert "| mean ± sd [95% interval], 3 seeds | | | | 83.00 ± 0.00 [83.00, 83.00] | " \
           "83.00 ± 1.00 [80.52, 85.48] | +0.00 (p = 1.000, paired t) | | | |" in text


def test_plot_writes_a_png(tmp_path):
    path = common.plot([_result(), *_seeds(80.0)], tmp_path / "f" / "peers.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_side_by_side_inference_table():
    result = _result()
    result["inference_side_by_side"] = {
        "at": "t", "load_start": "8", "load_end": "9",
        "rnnlab": {"batch_size": 64, "sent_s": [100, 120, 110], "sorted_sent_s": [200, 180, 190]},
        "flair": {"batch_size": 32, "sent_s": [50, 60, 55], "sorted_sent_s": []}}
    text = common.tables(result)
    assert "| as each predict runs (batch 64 / 32) | 110 (100–120) | 55 (50–60) |" in text
    assert "| rnnlab's sentences sorted by length first | 190 (180–200) | – |" in text


# ----------------------------------------------------------------------------------------------- translation

def test_translation_files_hold_raw_and_rnnlab_tokenised_pairs(tmp_path):
    from rnnlab.data.translation import TranslationDataModule

    pairs = {"train": [{"source": "Zwei Männer, die lachen.", "target": "Two men & a dog's ball."}],
             "test": [{"source": "Ein Hund.", "target": "A dog."}]}
    common.write_translation(tmp_path, pairs, "de", "en")
    assert common.read_lines(tmp_path / "raw" / "train.en") == ["Two men & a dog's ball."]
    # the peer reads exactly the tokens rnnlab's data module makes of the same line
    module = TranslationDataModule("t", "t", {"train": "a", "validation": "b", "test": "c"})
    tokens = module._tokeniser()({"source": ["Zwei Männer, die lachen."], "target": ["Two men & a dog's ball."]})
    assert common.read_lines(tmp_path / "train.de") == [" ".join(tokens["source_tokens"][0])]
    assert common.read_lines(tmp_path / "train.en") == [" ".join(tokens["target_tokens"][0])]
    assert "&" in common.read_lines(tmp_path / "train.en")[0]  # not escaped to &amp;
    with pytest.raises(ValueError, match="line break"):
        common.write_translation(tmp_path, {"train": [{"source": "a\nb", "target": "c"}]}, "de", "en")


def test_translations_are_scored_as_rnnlab_scores_its_test_bleu():
    from rnnlab.tasks.translation import corpus_scores

    references = ["A man rides a bike.", "Two dogs play in the snow."]
    hypotheses = ["A man rides a bicycle.", "Two dogs are playing in snow."]
    assert common.score("mt", references, hypotheses) == pytest.approx(corpus_scores(hypotheses, references)["bleu"])
    assert common.score("mt", references, references) == pytest.approx(100.0)


def test_bleu_epochs_are_read_in_points_not_scaled(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,val/bleu\n0,452,0.8\n1,905,21.5\n")
    assert common.rnnlab_epochs(tmp_path / "metrics.csv", "val/bleu", scale=1.0) == {1: 0.8, 2: 21.5}


def test_the_peers_tokenised_translations_are_detokenised_as_rnnlab_does(tmp_path):
    import run
    from sacremoses import MosesDetokenizer

    common.write_lines(tmp_path / "pred_epoch_1.txt", ["A man , a dog 's ball .", "Hello !"])
    read = run.predictions(tmp_path / "pred_epoch_1.txt", "mt", "eole")
    assert read == [MosesDetokenizer("en").detokenize("A man , a dog 's ball .".split()), "Hello!"]
    assert read[0] == "A man, a dog's ball."
    assert run.predictions(tmp_path / "pred_epoch_1.txt", "mt", "rnnlab")[1] == "Hello !"  # already detokenised


def test_eole_config_and_log_parsing():
    sys.path.insert(0, str(PEERS / "eole"))
    import run_eole

    cfg = run_eole.config(Path("/d"), Path("/o"), steps_per_epoch=454, epochs=3, seed=7, hidden=512)
    model = cfg["model"]
    assert model["encoder"] == {"encoder_type": "brnn", "rnn_type": "LSTM", "layers": 1, "hidden_size": 512}
    assert model["decoder"]["global_attention"] == "mlp" and model["input_feed"] == 1
    training = cfg["training"]
    assert (training["train_steps"], training["valid_steps"], training["save_checkpoint_steps"]) == (1362, 454, 454)
    assert (cfg["src_words_min_frequency"], cfg["tgt_words_min_frequency"], cfg["seed"]) == (2, 3, 7)
    log = ("[x INFO] validation BLEU: 0.5\n[x INFO] Saving optimizer and weights to step_454, and symlink\n"
           "[x INFO] validation BLEU: 12.25\n[x INFO] Saving optimizer and weights to step_908, and symlink\n")
    assert run_eole.epochs_from_log(log, 454, {454: 100.0, 908: 160.0}) == {
        "1": {"end": 100.0, "dev": 0.5}, "2": {"end": 160.0, "dev": 12.25}}
