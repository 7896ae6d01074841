"""Recurrent cells, one file each: one time step ``forward(x_t, state) -> (h_t, state)``, registered in ``CELLS``."""

from rnnlab.cells.base import CELLS, GatedCell, RecurrentCell, State
from rnnlab.cells.cifg import CIFGCell
from rnnlab.cells.elman import ElmanCell
from rnnlab.cells.lstm import LSTMCell
from rnnlab.cells.peephole import PeepholeLSTMCell

__all__ = ["CELLS", "CIFGCell", "ElmanCell", "GatedCell", "LSTMCell", "PeepholeLSTMCell", "RecurrentCell", "State"]
