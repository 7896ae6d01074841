"""Flair's side of benchmarks/peers; runs in Flair's own venv (benchmarks/peers/.venvs/flair).

    python run_flair.py train   --task ner --data DIR --vectors V.gensim --out DIR --epochs N --seed S
    python run_flair.py predict --task ner --data DIR --out DIR

``train``: a SequenceTagger as close to rnnlab's recipe as Flair's options allow (GloVe fine-tuned, a character
BiLSTM of 25 units a direction, a 200-unit BiLSTM, a CRF for NER, Adam 0.002, batches of 32; Flair's own
plateau annealing of the rate, halving it after 3 epochs without a better dev score). Every epoch's model is saved
(``model_epoch_N.pt``); ``epochs.json`` gets, after each epoch's dev evaluation, the wall-clock time and Flair's
dev score (micro F1; for UPOS this equals token accuracy).

``predict``: each saved epoch model predicts the test sentences; ``pred_epoch_N.txt`` holds one sentence's tags
a line (NER spans written back as IOB2 tags), and ``inference.json`` the seconds of each ``predict`` call, the
model loaded and the sentences built before the clock starts. Scoring is run.py's, the same for every system.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import torch

import flair
from flair.data import Dictionary, Sentence
from flair.datasets import ColumnCorpus
from flair.embeddings import CharacterEmbeddings, StackedEmbeddings, WordEmbeddings
from flair.models import SequenceTagger
from flair.trainers import ModelTrainer
from flair.trainers.plugins import TrainerPlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

TAG_TYPE = {"ner": "ner", "upos": "upos"}
# The per-task shape, as rnnlab's experiment=ner_conll_glove / pos_ewt_glove.
SHAPES = {
    "ner": dict(rnn_layers=1, use_crf=True, char_hidden=25),
    "upos": dict(rnn_layers=2, use_crf=False, char_hidden=50),
}


def corpus(task: str, data: Path) -> ColumnCorpus:
    return ColumnCorpus(data, {0: "text", 1: TAG_TYPE[task]}, train_file="train.tsv", dev_file="dev.tsv",
                        test_file="test.tsv", column_delimiter="\t", in_memory=True)


class EpochClock(TrainerPlugin):
    """After each epoch's dev evaluation: the wall-clock time and the dev score, to ``epochs.json``."""

    def __init__(self, path: Path, budget_s: float | None = None):
        super().__init__()
        self.path = path
        self.budget_s = budget_s
        self.start = time.time()
        self.rows: dict[str, dict] = {}

    @TrainerPlugin.hook
    def after_evaluation(self, epoch, current_model_is_best, validation_scores, **kw):
        self.rows[str(epoch)] = {"end": time.time(), "dev": 100.0 * float(validation_scores[0]),
                                 "best": bool(current_model_is_best)}
        self.path.write_text(json.dumps(self.rows, indent=1))
        # A time budget: stop (Flair ends training on KeyboardInterrupt) when one more epoch as long as the
        # last one would pass it.
        if self.budget_s is not None:
            ends = [self.start] + [row["end"] for row in self.rows.values()]
            if ends[-1] + (ends[-1] - ends[-2]) - self.start > self.budget_s:
                raise KeyboardInterrupt


def train(args) -> None:
    flair.set_seed(args.seed)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shape = SHAPES[args.task]
    data = corpus(args.task, Path(args.data))
    labels = data.make_label_dictionary(TAG_TYPE[args.task], add_unk=False)
    words = WordEmbeddings(args.vectors, fine_tune=not args.frozen, force_cpu=True)
    # Flair's default character list ("common-chars") is a download; offline, the characters of the training
    # sentences make the list instead (as rnnlab's character vocabulary is made), others mapping to <unk>.
    alphabet = Dictionary(add_unk=True)
    for sentence in data.train:
        for token in sentence:
            for char in token.text:
                alphabet.add_item(char)
    chars = CharacterEmbeddings(path_to_char_dict=alphabet, char_embedding_dim=25,
                                hidden_size_char=shape["char_hidden"])
    tagger = SequenceTagger(hidden_size=200, embeddings=StackedEmbeddings([words, chars]), tag_dictionary=labels,
                            tag_type=TAG_TYPE[args.task], use_crf=shape["use_crf"], rnn_layers=shape["rnn_layers"])
    trainer = ModelTrainer(tagger, data)
    optimizer = torch.optim.SGD if args.sgd else torch.optim.Adam
    trainer.train(out, learning_rate=args.lr, optimizer=optimizer, mini_batch_size=32, max_epochs=args.epochs,
                  save_model_each_k_epochs=1,
                  plugins=[EpochClock(out / "epochs.json", args.max_minutes * 60 if args.max_minutes else None)])


def tags_of(sentence: Sentence, task: str) -> list[str]:
    if task == "upos":
        return [token.get_label("upos").value for token in sentence]
    tags = ["O"] * len(sentence)
    for span in sentence.get_spans("ner"):
        positions = [token.idx - 1 for token in span.tokens]
        kind = span.get_label("ner").value
        tags[positions[0]] = f"B-{kind}"
        for position in positions[1:]:
            tags[position] = f"I-{kind}"
    return tags


def predict(args) -> None:
    torch.set_num_threads(1)
    out = Path(args.out)
    tokens = [[line.split("\t")[0] for line in block.split("\n") if line]
              for block in (Path(args.data) / "test.tsv").read_text(encoding="utf-8").split("\n\n") if block.strip()]
    models = sorted(((int(m.group(1)), path) for path in out.glob("model_epoch_*.pt")
                     if (m := re.search(r"model_epoch_(\d+)\.pt$", path.name))))
    seconds = {}
    for epoch, path in models:
        tagger = SequenceTagger.load(str(path))
        sentences = [Sentence(words) for words in tokens]
        start = time.perf_counter()
        tagger.predict(sentences, mini_batch_size=args.batch_size)
        seconds[str(epoch)] = time.perf_counter() - start
        (out / f"pred_epoch_{epoch}.txt").write_text(
            "".join(" ".join(tags_of(s, args.task)) + "\n" for s in sentences), encoding="utf-8")
        print(f"epoch {epoch}: {len(sentences) / seconds[str(epoch)]:.0f} sentences/s", flush=True)
        if not args.keep_models:
            path.unlink()
    (out / "inference.json").write_text(json.dumps({"sentences": len(tokens), "batch_size": args.batch_size,
                                                    "seconds": seconds}, indent=1))


def main() -> None:
    parser = common.peer_arguments(TAG_TYPE, epochs=5, batch_size=32, batch_help="predict's batch (Flair's default)")
    parser.add_argument("--vectors")
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--sgd", action="store_true", help="Flair's default optimiser (use with --lr 0.1)")
    parser.add_argument("--frozen", action="store_true", help="do not fine-tune the word vectors")
    common.run_peer(parser.parse_args(), train, predict)


if __name__ == "__main__":
    main()
