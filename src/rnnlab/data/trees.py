"""Sentiment trees: the Stanford Sentiment Treebank's PTB bracket files, a label on every phrase.

One tree a line: ``(LABEL CHILD CHILD ...)`` or ``(LABEL word)``, LABEL 0 (very negative) .. 4 (very positive).
A node's phrase is the words below it; the root's phrase is the sentence and its label the sentence's. Blank
lines are skipped; words are kept as written (``-LRB-``, ``\\/``, case), as in the ``stsa.*`` sentence files.

Granularity: ``fine`` keeps the five labels (SST-5); ``binary`` drops neutral (2) and maps 0-1 to ``0``
(negative), 3-4 to ``1`` (positive): SST-2, whose test set is the 1,821 non-neutral test sentences.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from rnnlab.data.errors import DataError
from rnnlab.data.readers import read_lines

LABELS = {"fine": ["0", "1", "2", "3", "4"], "binary": ["0", "1"]}
MAPPINGS = {"fine": {label: label for label in LABELS["fine"]}, "binary": {"0": "0", "1": "0", "3": "1", "4": "1"}}
FORMAT_HINT = "each line holds one tree, (LABEL (LABEL word) (LABEL word)) with labels 0-4"

_TOKEN = re.compile(r"[()]|[^ \t()]+")  # not \s: a word may hold a no-break space (train.txt: 8 1\/2)

Span = tuple[int, int, str]  # (first word, one past the last word, label) of a node


def parse_tree(line: str) -> tuple[list[str], list[Span]]:
    """Parses one bracketed tree.

    Args:
        line: ``(LABEL ...)``, the whole tree.

    Returns:
        the tree's words and the span of every node, each node after the nodes below it (the root last).

    Raises:
        ValueError: a malformed tree, saying what is wrong and at which character (counted from 1).
    """
    words: list[str] = []
    spans: list[Span] = []
    open_nodes: list[list] = []  # [label, first word, content: None | "word" | "nodes"], innermost last
    label_next = False  # the token after "(" is the node's label
    for match in _TOKEN.finditer(line):
        token, column = match.group(), match.start() + 1
        if spans and not open_nodes:
            raise ValueError(f"text after the end of the tree at character {column}")
        if label_next:
            if token not in MAPPINGS["fine"]:
                raise ValueError(f"a label 0-4 must follow '(', found {token!r} at character {column}")
            open_nodes.append([token, len(words), None])
            label_next = False
        elif token == "(":
            if open_nodes and open_nodes[-1][2] == "word":
                raise ValueError(f"a node holds one word or child nodes, not both, at character {column}")
            if open_nodes:
                open_nodes[-1][2] = "nodes"
            label_next = True
        elif not open_nodes:
            raise ValueError(f"a tree starts with '(', found {token!r} at character {column}")
        elif token == ")":
            label, first, content = open_nodes.pop()
            if content is None:
                raise ValueError(f"a node without a word or child nodes ends at character {column}")
            spans.append((first, len(words), label))
        elif open_nodes[-1][2] is not None:
            raise ValueError(f"a node holds one word or child nodes, so {token!r} at character {column} is one too "
                             f"many")
        else:
            open_nodes[-1][2] = "word"
            words.append(token)
    if label_next or open_nodes:
        raise ValueError(f"the line ends inside a node: {len(open_nodes) + label_next} ')' missing")
    if not spans:
        raise ValueError("no tree")
    return words, spans


def read_tree_examples(path: str | Path, encoding: str = "utf-8", granularity: str = "fine",
                       phrases: bool = False) -> Iterator[dict]:
    """Reads a tree file as labelled classification examples, a tree's at a time.

    Args:
        path: the file, one tree a line.
        encoding: its text encoding.
        granularity: ``fine`` or ``binary`` (see the module docstring).
        phrases: every labelled node, not only the roots.

    Yields:
        ``{"text", "label", "where", "sentence"}``: the phrase's words joined by spaces, its label at
        ``granularity``, ``"file:line"`` and whether it is the whole sentence; a tree's nodes in the order of
        ``parse_tree``. Nodes without a label at ``granularity`` (binary: neutral ones) are left out.

    Raises:
        DataError: a malformed tree, naming file, line and character.
    """
    if granularity not in MAPPINGS:
        raise ValueError(f"data.granularity must be one of {list(MAPPINGS)}, got {granularity!r}")
    mapping = MAPPINGS[granularity]
    for number, line in read_lines(path, encoding):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            words, spans = parse_tree(line)
        except ValueError as error:
            raise DataError(f"{where}: malformed tree: {error}; {FORMAT_HINT}") from None
        root = len(spans) - 1
        for node in range(0 if phrases else root, root + 1):
            first, end, label = spans[node]
            if label in mapping:
                yield {"text": " ".join(words[first:end]), "label": mapping[label], "where": where,
                       "sentence": node == root}
