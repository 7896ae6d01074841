"""Sequence encoders: the recurrent layer (time loop) and stacks of layers in one or both directions."""

from rnnlab.encoders.layer import RecurrentLayer, reverse_padded
from rnnlab.encoders.rnn import EncoderOutput, RNNEncoder

__all__ = ["EncoderOutput", "RNNEncoder", "RecurrentLayer", "reverse_padded"]
