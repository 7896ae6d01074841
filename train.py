"""Train a model: ``python train.py task=ner model=bilstm``; see README.md and conf/train.yaml."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from rnnlab.errors import main_guard
from rnnlab.run.pipeline import train
from rnnlab.run.renamed import refuse_renamed


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@main_guard
def main(cfg: DictConfig) -> float | None:
    """Returns the optimized metric, for Hydra sweepers."""
    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main_guard(refuse_renamed)(sys.argv[1:])
    main()
