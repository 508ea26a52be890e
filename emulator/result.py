"""The result of running a chip: spikes, probes, counters, flags and (cycle mode) clock cycles.

The emulator, the RTL co-simulation and a real board all return a :class:`RunResult`, so one
comparison (:func:`~neurotile.emulator.compare.first_divergence`) serves every link of the chain.
"""

import dataclasses

import numpy as np

from ..compiler.errors import EmulatorError

__all__ = ["RunResult", "COUNTERS_PER_CORE", "COUNTERS_CHIP", "COUNTERS_CYCLE"]

#: Per-step, per-core counters: arrays [steps, n_cores].
COUNTERS_PER_CORE = ("updates", "spikes", "packets_out", "packets_in", "synops")
#: Per-step chip-wide counters: arrays [steps].
COUNTERS_CHIP = ("host_in", "host_out", "hops")
#: Cycle mode only: "update_cycles", "spike_cycles", "cycles" [steps];
#: "fanout_busy", "syn_busy" [steps, n_cores].
COUNTERS_CYCLE = ("update_cycles", "spike_cycles", "cycles", "fanout_busy", "syn_busy")


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
