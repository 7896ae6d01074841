"""rnnlab: recurrent neural networks for NLP, from the lecture's equations to comparable experiments."""

__version__ = "0.1.0"

from rnnlab import config  # noqa: E402,F401  (stores the typed configs in Hydra's ConfigStore before any composition)
