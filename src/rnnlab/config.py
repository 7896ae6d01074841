"""Typed configs: where an option's default is written, once, for the config files and the code alike.

Each dataclass is stored in Hydra's ConfigStore as ``schema/<name>``; a config file places it in its defaults list
(``- /schema/decoding@task.decoding``), so composition starts from these defaults and a key the dataclass lacks
fails there (``Key 'beam_sise' not in 'DecodingConfig'``); one appended with ``+`` fails ``check_typed`` as the
run starts. The code reads a checkpoint's options through ``complete``, which gives an option that did not exist
when the checkpoint was written its default here; ``with_model_defaults`` does the same for the keys of
``conf/model/_defaults.yaml``, the one place those are written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rnnlab.errors import UserError

# The configs as package data: src/rnnlab/conf links to the repository's conf/, and an installed rnnlab holds a copy.
CONF = Path(str(files("rnnlab") / "conf"))


@dataclass
class DecodingConfig:
    """``task.decoding`` of the translation task: how outputs are searched at test time and by ``predict.py``."""

    strategy: str = "greedy"  # greedy | beam
    beam_size: int = 5
    length_penalty: float = 1.0  # alpha: beam ranks finished outputs by log P / lp(length), length = words + <eos>
    # lp: length ** alpha | gnmt: ((5 + length) / 6) ** alpha (Wu et al. 2016); alpha 0: none
    length_norm: str = "length"
    max_length: int = 100  # words per output, <eos> excluded


@dataclass
class AttentionConfig:
    """``model.decoder.attention``; ``model/attention=<kind>`` sets it."""

    kind: str = "none"  # none | a score of rnnlab.models.attention.SCORES
    size: Optional[int] = None  # width of the additive score; null: the decoder's hidden size
    input_feeding: bool = False  # true: the previous tanh(W_c [c; h]) is read beside the next word (Luong 2015)


@dataclass
class DecoderConfig:
    """``model.decoder`` of the translation task; null sizes and dropout follow the encoder's model."""

    cell: Optional[Any] = None  # model/cell@model.decoder.cell=<cell>; null: model.cell
    hidden_size: Optional[int] = None  # null: model.encoder.hidden_size
    num_layers: Optional[int] = None  # null: model.encoder.num_layers
    embedding_dim: Optional[int] = None  # null: model.embedding_dim
    dropout: Optional[float] = None  # on word vectors, between layers and before the output layer; null: model's
    bridge: str = "auto"  # auto | identity | linear (tanh(W z)); auto: identity where sizes match
    feed_context: bool = False  # true: also read the source sentence vector at every step (Cho et al. 2014)
    implementation: str = "auto"
    pretrained_vectors: Optional[str] = None  # target-side word vectors, as model.pretrained_vectors the source's
    attention: AttentionConfig = field(default_factory=AttentionConfig)


SCHEMAS = {"decoding": DecodingConfig, "decoder": DecoderConfig}

for _name, _schema in SCHEMAS.items():
    ConfigStore.instance().store(group="schema", name=_name, node=_schema)


def _check_keys(schema: type, keys: Iterable[str], path: str) -> None:
    names = [item.name for item in fields(schema)]
    unknown = sorted(set(keys) - set(names))
    if unknown:
        raise UserError(f"{path}.{unknown[0]} is not an option; {path} has {names}")


def complete(schema: type, values: Mapping[str, Any] | None, option: str) -> dict[str, Any]:
    """``values`` over ``schema``'s defaults, as plain dicts.

    Args:
        schema: one of the dataclasses above.
        values: the options given (a checkpoint's may lack those added since); None: all defaults.
        option: where they come from in the config, for messages (``"task.decoding"``).

    Raises:
        UserError: a key ``schema`` lacks, naming the keys it has, or a value of the wrong type.
    """
    _check_keys(schema, values or {}, option)
    try:
        return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(schema), dict(values or {})))
    except OmegaConfBaseException as error:
        raise UserError(f"{option}: {str(error).splitlines()[0]}") from None


def check_typed(cfg: DictConfig, path: str = "") -> None:
    """Raises ``UserError`` for a key that a typed node of a composed config lacks (Hydra lets ``+key=value``
    append one), naming the node's keys.

    Args:
        cfg: a composed config, or a node of it.
        path: the node's place, for messages (``""`` for the root).
    """
    schema = OmegaConf.get_type(cfg)
    if is_dataclass(schema):
        _check_keys(schema, cfg, path)
    for key, value in cfg.items_ex(resolve=False):
        if isinstance(value, DictConfig):
            check_typed(value, f"{path}.{key}" if path else str(key))


@cache
def _model_defaults() -> dict[str, Any]:
    defaults = OmegaConf.to_container(OmegaConf.load(CONF / "model" / "_defaults.yaml"))
    defaults.pop("defaults", None)  # the defaults list: its groups (model/chars) default to null
    return defaults


def with_model_defaults(model: Mapping[str, Any]) -> dict[str, Any]:
    """A ``model`` config with the keys of ``conf/model/_defaults.yaml`` it lacks (a checkpoint from before a key
    existed, such as ``crf`` or ``pooling``) set to their values there."""
    return {**_model_defaults(), **model}
