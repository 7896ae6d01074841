"""Recurrent cells, one file each: one time step ``forward(x_t, state) -> (h_t, state)``."""

from rnnlab.cells.base import GatedCell, RecurrentCell, State
from rnnlab.cells.cifg import CIFGCell
from rnnlab.cells.elman import ElmanCell
from rnnlab.cells.lstm import LSTMCell
from rnnlab.cells.peephole import PeepholeLSTMCell

__all__ = ["CIFGCell", "ElmanCell", "GatedCell", "LSTMCell", "PeepholeLSTMCell", "RecurrentCell", "State"]
