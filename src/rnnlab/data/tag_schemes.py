"""Entity tag schemes: the same entities written as IOB2 or BIOES tags.

CoNLL-2003's files use IOB1 (``B-`` only where two entities of one type touch). Taggers often learn better from
a scheme that marks every entity's start (IOB2) or also its end and single-token entities (BIOES: Ratinov & Roth
2009; Lample et al. 2016). Entities are read with conlleval's rules (``extract_spans``), so converting never
changes them, and the span metrics score every scheme alike.
"""

from __future__ import annotations

from typing import Sequence

from rnnlab.metrics.span_f1 import extract_spans

SCHEMES = ("iob2", "bioes")
PREFIXES = frozenset("BIESO")


def retag(tags: Sequence[str], scheme: str) -> list[str]:
    """One sentence's tags in ``scheme``, with the same entities.

    Args:
        tags: entity tags of any of IOB1, IOB2, BIOES (``O``, or a prefix ``B I E S`` then ``-`` and a type).
        scheme: ``iob2`` or ``bioes``.

    Raises:
        ValueError: a tag is no entity tag (a POS tag, say), or ``scheme`` is unknown.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"tag scheme must be one of {SCHEMES}, got {scheme!r}")
    for tag in tags:
        if tag != "O" and (tag[:1] not in PREFIXES or tag[1:2] != "-" or len(tag) < 3):
            raise ValueError(f"{tag!r} is no entity tag (O, or B/I/E/S-TYPE): only entity tags change scheme")
    out = ["O"] * len(tags)
    for kind, first, last in extract_spans(tags):
        out[first:last + 1] = [f"I-{kind}"] * (last + 1 - first)
        out[first] = f"B-{kind}"
        if scheme == "bioes":
            out[last] = f"E-{kind}" if last > first else f"S-{kind}"
    return out
