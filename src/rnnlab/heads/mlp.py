"""The lecture's output layers: an MLP hidden layer, then output weights (scores before the softmax)."""

from __future__ import annotations

from torch import Tensor, nn

from rnnlab.dropout import make_dropout

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


class MLPHead(nn.Module):
    """``w = U2 act(U1 z + b1) + b2``, applied to the last dimension (every token, or a sentence vector).

    Args:
        input_dim: size of ``z`` (the encoder's ``get_output_dim()``).
        output_dim: number of classes.
        hidden_dim: size of the hidden layer; 0 for a single linear layer.
        activation: ``sigmoid`` (the lecture's σ), ``tanh`` or ``relu``.
        dropout: dropout on ``z`` and on the hidden layer.
        dropout_kind: ``standard`` or ``locked`` (``rnnlab.dropout.make_dropout``).
        input_dropout: drop ``z``; False when the caller drops it already (the language models), which keeps
            an identity in its place so the parameters keep their names.
    """

    def __init__(self, input_dim: int, output_dim: int, hidden_dim: int = 0, activation: str = "tanh",
                 dropout: float = 0.0, dropout_kind: str = "standard", input_dropout: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"head activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        layers: list[nn.Module] = [make_dropout(dropout, dropout_kind) if input_dropout else nn.Identity()]
        if hidden_dim > 0:
            layers += [nn.Linear(input_dim, hidden_dim), ACTIVATIONS[activation](), make_dropout(dropout, dropout_kind)]
            input_dim = hidden_dim
        layers.append(nn.Linear(input_dim, output_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """``(..., input_dim) -> (..., output_dim)`` unnormalised scores."""
        return self.layers(z)
