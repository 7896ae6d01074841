"""Sequence encoders: the recurrent layer (time loop) and stacks of layers in one or both directions."""

from rnnlab.encoders.build import build_encoder, build_sentence_encoder
from rnnlab.encoders.layer import RecurrentLayer
from rnnlab.encoders.output import EncoderOutput
from rnnlab.encoders.rnn import RNNEncoder

__all__ = ["EncoderOutput", "RNNEncoder", "RecurrentLayer", "build_encoder", "build_sentence_encoder"]
