"""neurotile.boards: the chip on FPGA boards (docs/boards.md).

- :mod:`~neurotile.boards.uart`: UART receiver and transmitter (8N1).
- :mod:`~neurotile.boards.top`: :class:`BoardCore` (chip + UART + LEDs) and :class:`BoardTop` (on a
  platform's pins).
- :mod:`~neurotile.boards.targets`: the registry of boards, :data:`TARGETS`, and the resource
  estimate.
- :mod:`~neurotile.boards.build`: :func:`~neurotile.boards.build.build`, bitstreams and resource /
  timing reports (``neurotile build``).
- :mod:`~neurotile.boards.host`: :class:`Host`, the chip on a board through its serial port.
- :mod:`~neurotile.boards.cosim`: :class:`SimulatedBoard`, the board design in Verilator behind a
  bit-level UART, as a serial port.

Names load on first use, so ``import neurotile.boards`` needs neither amaranth-boards nor pyserial.
"""

__all__ = ["Host", "BoardLinkError", "BuildReport", "BoardTop", "BoardCore", "TARGETS",
           "get_target", "BoardError", "SimulatedBoard"]

_LAZY = {
    "Host": "host", "BoardLinkError": "host", "BuildReport": "build",
    "BoardTop": "top", "BoardCore": "top", "TARGETS": "targets", "get_target": "targets",
    "BoardError": "targets", "SimulatedBoard": "cosim",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
