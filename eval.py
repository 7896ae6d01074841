"""Evaluate a checkpoint: ``python eval.py ckpt_path=... [split=test | input=FILE]``; see conf/eval.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from rnnlab.cli.evaluate import evaluate
from rnnlab.errors import main_guard


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@main_guard
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
