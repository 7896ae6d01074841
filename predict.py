"""Predict with a checkpoint: ``python predict.py ckpt_path=... input=FILE|-``; see conf/predict.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from rnnlab.cli.predict import predict
from rnnlab.errors import main_guard


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@main_guard
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
