"""Bit layouts of packets and memory words, defined once.

Each layout is an :class:`amaranth.lib.data.StructLayout` (fields from the least significant bit
up, in the order written here). The RTL uses them as-is; the compiler and the emulator pack and
unpack numpy arrays through :func:`pack` and :func:`unpack`, which read the same layout objects,
so no bit position is written down twice.
"""

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from .errors import ImageError, NeurotileTypeError

__all__ = ["Layouts", "pack", "unpack", "field_range", "TABLES"]


class Layouts:
    """The layouts of one :class:`~neurotile.compiler.arch.Arch`.

    Members
    -------
    packet : StructLayout
        ``host`` (1) | ``x`` | ``y`` | ``index``. A fan-out word is a packet.
    neuron_state : StructLayout
        ``u`` (signed 24) | ``v`` (signed 24).
    neuron_cfg : StructLayout
        ``profile``: index into the core's profile table.
    profile : StructLayout
        ``du`` (12) | ``dv`` (12) | ``vth`` (17) | ``bias_mant`` (signed 13) | ``bias_exp`` (3).
    axon : StructLayout
        ``base`` (synapse address) | ``count`` (synapses in the list).
    synapse : StructLayout
        ``target`` (neuron) | ``weight`` (signed) | ``delay`` (stored as delay - 1) | ``wexp``.
    fanout_index : StructLayout
        ``base`` (fan-out address) | ``count`` (destinations of the neuron).
    fanout : StructLayout
        Same as ``packet``.
    acc : StructLayout
        ``value`` (signed ``acc_bits``): one dendritic accumulator.
    """

    def __init__(self, arch):
        a = arch
        self.packet = data.StructLayout({
            "host": unsigned(1),
            "x": unsigned(a.x_bits),
            "y": unsigned(a.y_bits),
            "index": unsigned(a.index_bits),
        })
        self.neuron_state = data.StructLayout({
            "u": signed(a.STATE_BITS),
            "v": signed(a.STATE_BITS),
        })
        self.neuron_cfg = data.StructLayout({
            "profile": unsigned(a.profile_bits),
        })
        self.profile = data.StructLayout({
            "du": unsigned(a.DECAY_BITS),
            "dv": unsigned(a.DECAY_BITS),
            "vth": unsigned(a.VTH_BITS),
            "bias_mant": signed(a.BIAS_MANT_BITS),
            "bias_exp": unsigned(a.BIAS_EXP_BITS),
        })
        self.axon = data.StructLayout({
            "base": unsigned(a.addr_bits(a.synapses_per_core)),
            "count": unsigned(a.count_bits(a.synapses_per_core)),
        })
        self.synapse = data.StructLayout({
            "target": unsigned(a.neuron_bits),
            "weight": signed(a.weight_bits),
            "delay": unsigned(a.delay_bits),
            "wexp": unsigned(a.WEIGHT_EXP_BITS),
        })
        self.fanout_index = data.StructLayout({
            "base": unsigned(a.addr_bits(a.fanout_per_core)),
            "count": unsigned(a.count_bits(a.fanout_per_core)),
        })
        self.fanout = self.packet
        self.acc = data.StructLayout({
            "value": signed(a.acc_bits),
        })
        for name in TABLES:
            if getattr(self, name).size > 64:
                raise ImageError(f"the {name} word of this architecture is "
                                 f"{getattr(self, name).size} bits wide; at most 64 are supported")

    def __getitem__(self, name):
        if name not in TABLES:
            raise KeyError(f"no layout named {name!r}; layouts: {', '.join(TABLES)}")
        return getattr(self, name)

    def table(self):
        """Rows of (layout, field, lsb, width, signed) for documentation and reports."""
        rows = []
        for name in TABLES:
            for fname, field in getattr(self, name):
                shape = field.shape
                rows.append((name, fname, field.offset, field.width, shape.signed))
        return rows


#: Every memory of a core (and the packet), by layout name.
TABLES = ("packet", "neuron_state", "neuron_cfg", "profile", "axon", "synapse",
          "fanout_index", "fanout", "acc")


def field_range(layout, name):
    """The inclusive (min, max) an integer field of ``layout`` can hold."""
    shape = layout[name].shape if hasattr(layout[name], "shape") else layout[name]
    width = shape.width
    if shape.signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def _fields(layout):
    if not isinstance(layout, data.StructLayout):
        raise NeurotileTypeError(f"layout must be an amaranth StructLayout, not {layout!r}")
    for name, field in layout:
        yield name, field.offset, field.width, field.shape.signed


def pack(layout, fields):
    """Pack integer field arrays into words of ``layout`` (numpy ``uint64``).

    Parameters
    ----------
    layout : StructLayout
    fields : dict of str to array_like
        One array per field of the layout, all of one length.

    Raises
    ------
    ImageError
        A field is missing, or a value does not fit its field (nothing is truncated).
    """
    names = {name for name, *_ in _fields(layout)}
    missing = names - set(fields)
    if missing:
        raise ImageError(f"cannot pack: fields {sorted(missing)} are missing")
    words = None
    for name, offset, width, is_signed in _fields(layout):
        values = np.asarray(fields[name], dtype=np.int64)
        lo = -(1 << (width - 1)) if is_signed else 0
        hi = (1 << (width - 1)) - 1 if is_signed else (1 << width) - 1
        if values.size and (values.min() < lo or values.max() > hi):
            bad = values[(values < lo) | (values > hi)][0]
            raise ImageError(f"field {name!r} holds {int(bad)}, outside its {width}-bit "
                             f"{'signed' if is_signed else 'unsigned'} range {lo}..{hi}")
        raw = (values.astype(np.uint64) & np.uint64((1 << width) - 1)) << np.uint64(offset)
        words = raw if words is None else words | raw
    return words if words is not None else np.zeros(0, np.uint64)


def unpack(layout, words):
    """Unpack ``uint64`` words of ``layout`` into a dict of ``int64`` field arrays."""
    words = np.asarray(words, dtype=np.uint64)
    out = {}
    for name, offset, width, is_signed in _fields(layout):
        raw = ((words >> np.uint64(offset)) & np.uint64((1 << width) - 1)).astype(np.int64)
        if is_signed:
            raw = np.where(raw >= (1 << (width - 1)), raw - (1 << width), raw)
        out[name] = raw
    return out
