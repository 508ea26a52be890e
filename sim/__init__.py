"""neurotile.sim: the tools around the generated chip, and co-simulation against the emulator.

- :mod:`~neurotile.sim.toolchain`: find Verilator, cocotb and the YoWASP tools (``neurotile doctor``).
- :mod:`~neurotile.sim.build`: build the generated chip for Verilator (or Icarus), cached per design.
- :mod:`~neurotile.sim.cosim`: run a chip image on the simulated chip through its host port
  (:func:`cosimulate`, :class:`CosimChip`) and compare it with the emulator's cycle mode
  (:func:`compare_with_emulator`).

The co-simulation names load on first use, so ``import neurotile.sim`` needs neither cocotb nor
Verilator.
"""

__all__ = ["cosimulate", "compare_with_emulator", "CosimChip", "Comparison", "build_chip",
           "simulator_available"]

_LAZY = {
    "cosimulate": "cosim", "compare_with_emulator": "cosim", "CosimChip": "cosim",
    "Comparison": "cosim", "build_chip": "build", "simulator_available": "build",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
