"""Runs in Flair's venv: ``words.txt`` + ``vectors.npy`` (exported from rnnlab's vector source by run.py) ->
a gensim KeyedVectors file, which ``flair.embeddings.WordEmbeddings`` loads from its path.

    python convert_vectors.py EXPORT_DIR OUT.gensim
"""

import sys
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors


def convert(folder: Path, out: Path) -> KeyedVectors:
    words = (folder / "words.txt").read_text(encoding="utf-8").split("\n")[:-1]
    matrix = np.load(folder / "vectors.npy")
    if matrix.shape[0] != len(words):
        raise SystemExit(f"{folder}: {matrix.shape[0]} rows for {len(words)} words")
    vectors = KeyedVectors(vector_size=matrix.shape[1], dtype=np.float32)
    vectors.add_vectors(words, matrix)
    if len(vectors) != len(words):
        raise SystemExit(f"{folder}: {len(words)} words became {len(vectors)} keys (repeated words?)")
    out.parent.mkdir(parents=True, exist_ok=True)
    vectors.save(str(out))
    return vectors


if __name__ == "__main__":
    kv = convert(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{sys.argv[2]}: {len(kv)} words, {kv.vector_size}-d")
