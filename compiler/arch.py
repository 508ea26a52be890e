"""The architecture description: one frozen dataclass read by the compiler, the emulator and the RTL.

docs/architecture.md is the prose version of this file; a change to one is a change to the other.
"""

import dataclasses
import json
from functools import cached_property
from typing import ClassVar

from .errors import ArchError, NeurotileTypeError

__all__ = ["Arch", "PROFILES"]


def _bits_for(n):
    """Bits needed to hold the values 0 .. n-1 (at least 1)."""
    return max(1, (int(n) - 1).bit_length())


def _is_pow2(n):
    return n > 0 and n & (n - 1) == 0


@dataclasses.dataclass(frozen=True)
class Arch:
    """A neurotile chip: a mesh of neuron cores, their memories and their modes.

    All fields are integers or mode names; every bit width of every memory word and packet follows
    from them (see :mod:`neurotile.compiler.layouts`). The class constants fix the neuron model's
    widths, which are those of Loihi (and of Lava's bit-accurate LIF), and the pipeline latencies
    that the cycle-level step protocol of docs/architecture.md counts with.

    Parameters
    ----------
    mesh_w, mesh_h : int
        Mesh size in cores (1..16 each). The host port is the W port of router (0, 0).
    neurons_per_core : int
        Neurons per core, a power of two (default 128).
    profiles_per_core : int
        Entries of each core's neuron-profile table (distinct parameter sets), a power of two.
    axons_per_core : int
        Axon-table entries per core: one per (source neuron, destination core) pair.
    synapses_per_core : int
        Synapse-memory words per core.
    fanout_per_core : int
        Fan-out memory words per core: one per (neuron, destination) pair.
    max_delay : int
        Longest synaptic delay in steps, a power of two; it is also the number of slots of each
        neuron's dendritic accumulator ring.
    weight_bits : int
        Width of a signed synaptic weight (2..8).
    acc_bits : int
        Width of a dendritic accumulator (18..32). The compiler proves that no accumulator can wrap.
    fifo_depth : int
        Depth of every router input FIFO.
    core_fifo_depth : int
        Depth of each core's packet input FIFO (behind the router's local output).
    host_in_depth : int
        Input-packet buffer of the host port: packets injected in one step.
    host_out_depth : int
        Output-packet buffer of the host port: output spikes captured in one step.
    decay_mode : {"loihi", "shift"}
        ``loihi``: ``x * (4096 - d) >> 12`` in sign-magnitude (Lava's bit-accurate LIF).
        ``shift``: the multiplier-free ``x - (x >> k)``.
    reset_mode : {"zero", "subtract"}
        After a spike ``v <- 0`` or ``v <- v - (vth << 6)``.
    synapse_ram : {"bram", "spram"}
        Where the RTL keeps each core's synapse memory. ``bram``: an ordinary memory (block RAM).
        ``spram``: a single-port memory built from the iCE40 UltraPlus ``SB_SPRAM256KA`` blocks
        when the chip is built for such a device (an ordinary memory everywhere else, with the
        same cycle behaviour); SPRAMs have no initial contents, so the host loads the synapses.
        No effect on the chip's behaviour, the compiler or the emulator.
    step_timeout : int
        Cycles of one SPIKE phase after which the sticky ``step_timeout`` flag is raised.
    counter_bits : int
        Width of the per-step counters (16..32): each reports its count modulo
        ``2^counter_bits``. 32 everywhere but on the smallest FPGA, whose logic the counters and
        their read-out multiplexer would otherwise fill.
    name : str
        A label carried into reports.
    """

    mesh_w: int = 2
    mesh_h: int = 2
    neurons_per_core: int = 128
    profiles_per_core: int = 16
    axons_per_core: int = 4096
    synapses_per_core: int = 65536
    fanout_per_core: int = 4096
    max_delay: int = 16
    weight_bits: int = 8
    acc_bits: int = 24
    fifo_depth: int = 4
    core_fifo_depth: int = 4
    host_in_depth: int = 4096
    host_out_depth: int = 4096
    decay_mode: str = "loihi"
    reset_mode: str = "zero"
    synapse_ram: str = "bram"
    step_timeout: int = 1 << 20
    counter_bits: int = 32
    name: str = "custom"

    # Neuron model widths: Loihi's, as in Lava's bit-accurate LIF (PyLifModelBitAcc).
    STATE_BITS: ClassVar[int] = 24        # u and v
    DECAY_BITS: ClassVar[int] = 12        # du, dv
    VTH_BITS: ClassVar[int] = 17          # unsigned threshold mantissa
    BIAS_MANT_BITS: ClassVar[int] = 13    # signed
    BIAS_EXP_BITS: ClassVar[int] = 3      # unsigned, bias = mant << exp
    WEIGHT_EXP_BITS: ClassVar[int] = 3    # unsigned, per synapse: adds weight << exp
    ACT_SHIFT: ClassVar[int] = 6          # dendritic input is MSB-aligned to u by << 6
    VTH_SHIFT: ClassVar[int] = 6          # threshold is compared as vth << 6
    DECAY_SHIFT: ClassVar[int] = 12       # decay factors are 12-bit fractions

    # Cycle-level step protocol (docs/architecture.md, "Cycle rules"): the RTL is built to match.
    UPDATE_LATENCY: ClassVar[int] = 6     # cycles from the last neuron's issue to its write-back
    ACC_LATENCY: ClassVar[int] = 3        # cycles a synapse occupies the accumulate pipeline
    BARRIER_LATENCY: ClassVar[int] = 2    # cycles from quiescence to the end of the SPIKE phase
    STEP_OVERHEAD: ClassVar[int] = 1      # controller cycle between steps

    MODES: ClassVar[dict] = {"decay_mode": ("loihi", "shift"), "reset_mode": ("zero", "subtract"),
                             "synapse_ram": ("bram", "spram")}

    def __post_init__(self):
        limits = {
            "mesh_w": (1, 16), "mesh_h": (1, 16),
            "neurons_per_core": (1, 1024), "profiles_per_core": (1, 256),
            "axons_per_core": (1, 1 << 20), "synapses_per_core": (1, 1 << 24),
            "fanout_per_core": (1, 1 << 20), "max_delay": (1, 64),
            "weight_bits": (2, 8), "acc_bits": (self.input_bits, 32),
            "fifo_depth": (1, 64), "core_fifo_depth": (1, 64),
            "host_in_depth": (1, 1 << 20), "host_out_depth": (1, 1 << 20),
            "step_timeout": (1, 1 << 40), "counter_bits": (16, 32),
        }
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise NeurotileTypeError(f"Arch.{name} must be an int, not {value!r}")
            if not lo <= value <= hi:
                raise ArchError(f"Arch.{name} must be between {lo} and {hi}, not {value!r}")
        for name in ("neurons_per_core", "profiles_per_core", "max_delay"):
            value = getattr(self, name)
            if not _is_pow2(value):
                raise ArchError(f"Arch.{name} must be a power of two, not {value!r}")
        for name, choices in self.MODES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ArchError(f"Arch.{name} must be one of {', '.join(map(repr, choices))}, "
                                f"not {value!r}")
        if not isinstance(self.name, str):
            raise NeurotileTypeError(f"Arch.name must be a str, not {self.name!r}")

    # -- derived widths ------------------------------------------------------------------------

    @property
    def n_cores(self):
        return self.mesh_w * self.mesh_h

    @property
    def input_bits(self):
        """Width the dendritic input is saturated to, so that ``input << 6`` spans u's range."""
        return self.STATE_BITS - self.ACT_SHIFT

    @property
    def x_bits(self):
        return _bits_for(self.mesh_w)

    @property
    def y_bits(self):
        return _bits_for(self.mesh_h)

    @property
    def neuron_bits(self):
        return _bits_for(self.neurons_per_core)

    @property
    def profile_bits(self):
        return _bits_for(self.profiles_per_core)

    @property
    def axon_bits(self):
        return _bits_for(self.axons_per_core)

    @property
    def delay_bits(self):
        """Synapse words store ``delay - 1``."""
        return _bits_for(self.max_delay)

    @property
    def index_bits(self):
        """Packet index field: an axon number, or an output number for host-bound packets."""
        return max(self.axon_bits, _bits_for(self.host_out_depth))

    def addr_bits(self, depth):
        """Bits of an address into a memory of ``depth`` words."""
        return _bits_for(depth)

    def count_bits(self, depth):
        """Bits of a count from 0 to ``depth`` inclusive."""
        return int(depth).bit_length()

    @property
    def update_cycles(self):
        """Length of every UPDATE phase: one neuron per cycle plus the pipeline's latency."""
        return self.neurons_per_core + self.UPDATE_LATENCY

    @property
    def max_input(self):
        return (1 << (self.input_bits - 1)) - 1

    @property
    def max_acc(self):
        return (1 << (self.acc_bits - 1)) - 1

    # -- construction helpers ------------------------------------------------------------------

    def with_mesh(self, mesh_w, mesh_h):
        """The same architecture on another mesh size."""
        return dataclasses.replace(self, mesh_w=mesh_w, mesh_h=mesh_h)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def profile(cls, name, **overrides):
        """A named architecture profile, optionally with some fields changed.

        ``large`` sizes the memories like Loihi's (tens of thousands of synapses per core) for
        emulation; ``ice40up5k`` and ``ecp5-85f`` fit the FPGA boards of :mod:`neurotile.boards`.
        """
        try:
            fields = PROFILES[name]
        except KeyError:
            raise ArchError(f"Unknown architecture profile {name!r}; known profiles: "
                            f"{', '.join(sorted(PROFILES))}") from None
        return cls(**{**fields, "name": name, **overrides})

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise NeurotileTypeError(f"Arch.from_dict needs a dict, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ArchError(f"Unknown Arch fields {sorted(unknown)}; known fields: {sorted(known)}")
        return cls(**data)

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @cached_property
    def layouts(self):
        """The packet and memory-word layouts of this architecture (see :mod:`.layouts`)."""
        from .layouts import Layouts
        return Layouts(self)


#: Named architecture profiles (fields other than the mesh size).
PROFILES = {
    "large": dict(mesh_w=16, mesh_h=16, neurons_per_core=128, profiles_per_core=16,
                  axons_per_core=32768, synapses_per_core=65536, fanout_per_core=32768,
                  max_delay=16, acc_bits=24, fifo_depth=4, core_fifo_depth=4,
                  host_in_depth=1 << 16, host_out_depth=1 << 15),
    # An 18-bit accumulator: 1024 x 18 is one DP16KD (20 bits take two), which leaves the 4x4's
    # placer 29 of the 208 blocks free instead of 13 (at 13 its router did not converge).
    "ecp5-85f": dict(mesh_w=4, mesh_h=4, neurons_per_core=128, profiles_per_core=8,
                     axons_per_core=1024, synapses_per_core=4096, fanout_per_core=1024,
                     max_delay=8, acc_bits=18, fifo_depth=2, core_fifo_depth=2,
                     host_in_depth=1024, host_out_depth=512),
    # The synapse memory (16384 x 20 bits) in two of the UP5K's four SPRAMs (16K x 16 each); the
    # other memories take 17 of its 30 EBRs for one core. 16-bit per-step counters: the 32-bit
    # ones and their read-out take about 260 more of the UP5K's 5280 logic cells. FIFOs of depth
    # 1 (about 110 cells less than 2): on one core the synapse unit, at 2 + k cycles a packet,
    # is slower than a FIFO of depth 1 (one packet per 2 cycles).
    "ice40up5k": dict(mesh_w=1, mesh_h=1, neurons_per_core=128, profiles_per_core=4,
                      axons_per_core=256, synapses_per_core=16384, fanout_per_core=256,
                      max_delay=4, acc_bits=20, fifo_depth=1, core_fifo_depth=1,
                      host_in_depth=256, host_out_depth=128, synapse_ram="spram",
                      counter_bits=16),
}
