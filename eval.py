"""Evaluate a checkpoint: ``python eval.py ckpt_path=... [split=test | input=FILE]``; see conf/eval.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from rnnlab.errors import report_user_errors
from rnnlab.evaluate import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@report_user_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
