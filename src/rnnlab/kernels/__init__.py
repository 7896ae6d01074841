"""Sequence-level kernels: whole-sequence forward and backward passes for cells without a library kernel."""

from rnnlab.kernels.peephole import peephole_lstm_sequence

__all__ = ["peephole_lstm_sequence"]
