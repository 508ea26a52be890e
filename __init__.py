"""neurotile: compile spiking networks onto a tiled neuromorphic chip, emulate it bit- and
cycle-exactly, and generate the same chip as Amaranth RTL.

>>> import neurotile as nt
>>> nt.Arch().n_cores
4
"""

from .compiler.arch import Arch, PROFILES
from .compiler.errors import (
    NeurotileError, NeurotileTypeError, NeurotileValueError, ArchError, NetworkError,
    MappingError, ImageError, EmulatorError, ToolchainError, NeurotileWarning,
)
from .compiler.network import LIF, Network
from .compiler.image import ChipImage

__version__ = "0.1.0"


def __getattr__(name):
    # Heavier parts load on first use so that `import neurotile` stays quick.
    if name == "compile":
        from .compiler.compile import compile
        return compile
    if name == "sim":
        import importlib
        return importlib.import_module(".sim", __name__)
    if name == "Emulator":
        from .emulator import Emulator
        return Emulator
    if name in ("from_nir", "to_nir"):
        from .compiler import nir_io
        return getattr(nir_io, name)
    if name == "quantization_report":
        from .compiler.quantize import quantization_report
        return quantization_report
    raise AttributeError(f"module 'neurotile' has no attribute {name!r}")
