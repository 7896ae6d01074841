"""rnnlab: recurrent neural networks for NLP, from the lecture's equations to comparable experiments."""

__version__ = "0.1.0"
