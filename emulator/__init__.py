"""neurotile.emulator: run compiled chip images bit-exactly (functional, cycle, reference modes).

>>> from neurotile.emulator import Emulator, RunResult, first_divergence
"""

from .compare import Divergence, first_divergence
from .emulator import Emulator
from .energy import EnergyTable, result_energy
from .inputs import input_channels
from .result import RunResult
from .state import ChipState

__all__ = ["Emulator", "RunResult", "first_divergence", "Divergence", "EnergyTable",
           "result_energy", "ChipState", "input_channels"]
