"""Energy estimates: the counters of a run times published per-operation energies.

Every counter of docs/architecture.md section 8 counts one kind of hardware operation, so an
estimate is a linear function of the counters::

    E = synops * E_synop + updates * E_update + packets_out * E_packet
        + (E-W hops) * E_hop_ew + (N-S hops) * E_hop_ns + (host_in + host_out) * E_host
        + cycles * E_static

The defaults are Loihi's published per-operation figures: Davies et al., "Loihi: A Neuromorphic
Manycore Processor with On-Chip Learning", IEEE Micro 38(1):82-99, 2018, in its table of chip
results for the 14 nm chip. They were transcribed without the paper at hand: check them against
the paper before quoting an estimate. neurotile's datapath is smaller than Loihi's (no learning, no compartments), so
these are an upper-bound style estimate of the same order, not a prediction for any FPGA.
:meth:`EnergyTable.odin` gives ODIN's figure instead: Frenkel et al., "A 0.086-mm^2 12.7-pJ/SOP
64k-Synapse 256-Neuron Online-Learning Digital Spiking Neuromorphic Processor in 28-nm CMOS",
IEEE Trans. Biomedical Circuits and Systems 13(1):145-158, 2019 (12.7 pJ per synaptic operation,
title and abstract).
"""

import dataclasses
import numbers

import numpy as np

from ..compiler.errors import EmulatorError, NeurotileTypeError

__all__ = ["EnergyTable", "result_energy", "CATEGORIES"]

#: Keys of :func:`result_energy`'s answer (each in joules), "total" last.
CATEGORIES = ("synops", "neuron_updates", "packets", "hops", "host", "static", "total")

_PJ = 1e-12


@dataclasses.dataclass(frozen=True)
class EnergyTable:
    """Energy per operation, in picojoules.

    Parameters
    ----------
    synop_pj : float
        One synaptic operation (counter ``synops``). Default 23.6 pJ: Loihi's "energy per
        synaptic spike op (min)" (Davies et al. 2018).
    neuron_update_pj : float
        One neuron update (``updates``). Default 52 pJ: Loihi's minimum (inactive) neuron update;
        its active update is 81 pJ. ``updates`` does not tell the two apart.
    packet_pj : float
        One packet pushed by a fan-out unit (``packets_out``). Default 1700 pJ: Loihi's
        "within-tile spike energy" of 1.7 nJ.
    hop_ew_pj, hop_ns_pj : float
        One transfer between routers over an E/W or N/S link (from ``link``). Defaults 3.0 and
        4.0 pJ: Loihi's "energy per tile hop (E-W / N-S)".
    host_packet_pj : float
        One packet through the host port (``host_in`` + ``host_out``). Default 0: off-chip I/O
        depends on the board, not the chip; set it for a system estimate.
    static_pj_per_cycle : float
        Leakage and clock per clock cycle of the whole chip (needs the cycle counts of a
        ``cycle``-mode run). Default 0.
    name : str
        A label for reports.
    """

    synop_pj: float = 23.6
    neuron_update_pj: float = 52.0
    packet_pj: float = 1700.0
    hop_ew_pj: float = 3.0
    hop_ns_pj: float = 4.0
    host_packet_pj: float = 0.0
    static_pj_per_cycle: float = 0.0
    name: str = "loihi"

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.name == "name":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise NeurotileTypeError(f"EnergyTable.{f.name} must be a number, not {value!r}")
            if not np.isfinite(value) or value < 0:
                raise EmulatorError(f"EnergyTable.{f.name} must be a finite energy >= 0 pJ, "
                                    f"not {value!r}")
        if not isinstance(self.name, str):
            raise NeurotileTypeError(f"EnergyTable.name must be a str, not {self.name!r}")

    @classmethod
    def loihi(cls):
        """Loihi's per-operation energies (the defaults; Davies et al. 2018, Table 2)."""
        return cls()

    @classmethod
    def odin(cls):
        """ODIN's 12.7 pJ per synaptic operation (Frenkel et al. 2019); ODIN is a single core
        whose SOP figure already includes its neuron update, so the other energies are 0."""
        return cls(synop_pj=12.7, neuron_update_pj=0.0, packet_pj=0.0, hop_ew_pj=0.0,
                   hop_ns_pj=0.0, name="odin")

    def replace(self, **changes):
        """The same table with some energies changed."""
        return dataclasses.replace(self, **changes)


def _total(result, name):
    if name not in result.counters:
        raise EmulatorError(f"the run result has no {name!r} counter, which the energy estimate "
                            f"needs; results of every emulator mode carry it")
    return float(np.asarray(result.counters[name], np.int64).sum())


def result_energy(result, table=None):
    """Energy of a run, by category, in joules.

    Parameters
    ----------
    result : RunResult
    table : EnergyTable, optional
        Default: :class:`EnergyTable` (Loihi's figures).

    Returns
    -------
    dict of str to float
        ``synops``, ``neuron_updates``, ``packets``, ``hops``, ``host``, ``static`` and ``total``
        (:data:`CATEGORIES`). Router hops are split by direction from the ``link`` counter; the
        host exit of router (0, 0) is a host packet, not a hop.

    Raises
    ------
    EmulatorError
        The result lacks a counter, or the table has a static energy but the result no cycle
        counts (run in ``cycle`` mode or set ``static_pj_per_cycle=0``).
    """
    if table is None:
        table = EnergyTable()
    if not isinstance(table, EnergyTable):
        raise NeurotileTypeError(f"table must be an EnergyTable, not {type(table).__name__}")
    host_out = _total(result, "host_out")
    if "link" in result.counters:
        link = np.asarray(result.counters["link"], np.int64)
        ew = float(link[..., 1].sum() + link[..., 3].sum()) - host_out   # less the host exit
        ns = float(link[..., 0].sum() + link[..., 2].sum())
    else:   # no per-port counts: split evenly
        ew = ns = _total(result, "hops") / 2
    out = {
        "synops": _total(result, "synops") * table.synop_pj * _PJ,
        "neuron_updates": _total(result, "updates") * table.neuron_update_pj * _PJ,
        "packets": _total(result, "packets_out") * table.packet_pj * _PJ,
        "hops": (ew * table.hop_ew_pj + ns * table.hop_ns_pj) * _PJ,
        "host": (_total(result, "host_in") + host_out) * table.host_packet_pj * _PJ,
        "static": 0.0,
    }
    if table.static_pj_per_cycle:
        if result.counters.get("cycles") is None:
            raise EmulatorError(f"EnergyTable.static_pj_per_cycle={table.static_pj_per_cycle} "
                                f"needs clock cycles, but this {result.mode!r} result has none: "
                                f"run in mode 'cycle' or set static_pj_per_cycle=0")
        out["static"] = _total(result, "cycles") * table.static_pj_per_cycle * _PJ
    out["total"] = sum(out.values())
    return out
