"""The result of running a chip: spikes, probes, counters, flags and (cycle mode) clock cycles.

The emulator, the RTL co-simulation and a real board all return a :class:`RunResult`, so one
comparison (:func:`~neurotile.emulator.compare.first_divergence`) serves every link of the chain.
"""

import dataclasses
import warnings

import numpy as np

from ..compiler.errors import EmulatorError, NeurotileWarning

__all__ = ["RunResult", "COUNTERS_PER_CORE", "COUNTERS_CHIP", "COUNTERS_CYCLE", "wrap_counters"]

#: Per-step, per-core counters: arrays [steps, n_cores].
COUNTERS_PER_CORE = ("updates", "spikes", "packets_out", "packets_in", "synops")
#: Per-step chip-wide counters: arrays [steps].
COUNTERS_CHIP = ("host_in", "host_out", "hops")
#: Cycle mode only: "update_cycles", "spike_cycles", "cycles" [steps];
#: "fanout_busy", "syn_busy" [steps, n_cores].
COUNTERS_CYCLE = ("update_cycles", "spike_cycles", "cycles", "fanout_busy", "syn_busy")


def wrap_counters(counters, arch):
    """The per-step counters as the chip's ``arch.counter_bits``-wide registers hold them: every
    count modulo ``2^counter_bits``, in place (``updates`` and ``spikes``, at most N <= 1024, never
    wrap). Every engine applies it to the counters it returns.

    A count that wraps is reported with a :class:`~neurotile.NeurotileWarning` (the first one:
    counter, step, core, true count, reported count), since energy estimates and utilisation
    figures read these counters.
    """
    mask = (1 << arch.counter_bits) - 1
    first = None
    for name, value in counters.items():
        value = np.asarray(value, np.int64)
        wrapped = value & mask
        if first is None and arch.counter_bits < 64 and (value > mask).any():
            where = tuple(int(k[0]) for k in np.nonzero(value > mask))
            first = (name, where, int(value[where]), int(wrapped[where]))
        counters[name] = wrapped
    if first is not None:
        name, where, true, shown = first
        core = f" core {where[1]}" if len(where) > 1 else ""
        warnings.warn(f"counter {name!r} of step {where[0]} (of this run){core} counted {true}, "
                      f"which the chip's {arch.counter_bits}-bit register reports as {shown}; "
                      f"energy and utilisation figures from these counters are low (emulate with "
                      f"an Arch of counter_bits=32 for true counts)", NeurotileWarning,
                      stacklevel=3)
    return counters


@dataclasses.dataclass(eq=False)
class RunResult:
    """What one ``run`` produced.

    Members
    -------
    mode : str
        ``"reference"``, ``"functional"``, ``"cycle"``, ``"rtl"`` or ``"board"``.
    steps : int
        Steps run.
    start_step : int
        Chip step counter before the run (runs continue from the current state).
    spikes : dict of str to ndarray of bool, shape [steps, n]
        Spikes of every population (for ``rtl`` and ``board``, of the output populations).
    probes : dict of str to ndarray of int64, shape [steps, n]
        ``"pop.v"`` / ``"pop.u"`` after each step's UPDATE (after reset).
    counters : dict of str to ndarray of int64
        See :data:`COUNTERS_PER_CORE`, :data:`COUNTERS_CHIP`, :data:`COUNTERS_CYCLE`, and
        ``"link"`` [steps, n_cores, 5] transfers per router output port (N, E, S, W, L).
    flags : dict of str to bool
        Sticky error flags after the run.
    flag_step : dict of str to int
        Step in which each flag was first raised (-1: never).
    """

    mode: str
    steps: int
    start_step: int
    spikes: dict
    probes: dict = dataclasses.field(default_factory=dict)
    counters: dict = dataclasses.field(default_factory=dict)
    flags: dict = dataclasses.field(default_factory=dict)
    flag_step: dict = dataclasses.field(default_factory=dict)

    @property
    def cycles(self):
        """Clock cycles of every step (cycle mode, RTL and board only)."""
        return self.counters.get("cycles")

    def link_utilisation(self):
        """Fraction of each step's SPIKE-phase cycles in which each router output moved a packet.

        Returns an array [steps, n_cores, 5] (ports N, E, S, W, L), ``link / spike_cycles``; a
        router's W entry at (0, 0) is the host exit. Needs the cycle counts of a ``cycle``-mode
        (or RTL/board) run.
        """
        if "spike_cycles" not in self.counters:
            raise EmulatorError(f"link utilisation needs cycle counts; this {self.mode!r} run has "
                                f"none: run with mode='cycle'")
        cycles = np.asarray(self.counters["spike_cycles"], np.float64)
        return np.asarray(self.counters["link"], np.float64) / cycles[:, None, None]

    def total(self, counter):
        """A counter summed over steps and cores."""
        return int(np.asarray(self.counters[counter]).sum())

    def spike_count(self):
        return int(sum(int(s.sum()) for s in self.spikes.values()))
