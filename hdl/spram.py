"""A single-port synchronous memory that uses the iCE40 UltraPlus SPRAMs where asked to.

The iCE40UP5K has 30 block RAMs (EBR, 4 kbit each) and 4 single-port RAMs (``SB_SPRAM256KA``,
16K x 16 bits each, 256 kbit). yosys infers only the EBRs from an Amaranth ``Memory``, so the
core's synapse memory, by far its largest, is built from this component, which instantiates the
SPRAMs explicitly when ``kind="spram"`` and the design is elaborated for an iCE40 UltraPlus
platform. Everywhere else (Amaranth's simulator and the Verilator co-simulation, where the
platform is ``None``, and any other FPGA, iCE40s without SPRAM included) it is an ordinary
``Memory`` with the same cycle behaviour, so the simulated chip is the chip that runs on the
board.

The port
--------
One access per cycle, read or write:

- **Write**: ``w_en`` with ``addr`` and ``w_data`` in cycle k; the word is stored at the end of
  cycle k. ``r_data`` in cycle k + 1 is undefined (the SPRAM drives X after a write).
- **Read**: every cycle without ``w_en`` reads ``addr``; the word is in ``r_data`` in cycle
  k + 1 (synchronous read, like an always-enabled ``Memory`` read port).

A write and a read of different addresses in the same cycle are not possible: the user of the
memory defines the schedule (for the synapse memory, :class:`~neurotile.hdl.core.NeuronCore`
gives the host the port between steps and the synapse unit during the SPIKE phase).

SPRAMs have no initial contents: ``init`` is refused for an SPRAM build
(:class:`~neurotile.compiler.errors.NeurotileValueError` at elaboration), so a board whose
synapses live in SPRAM is loaded over its host link.

Mapping onto ``SB_SPRAM256KA``
------------------------------
``ceil(width / 16)`` SPRAMs side by side make one bank of 16384 words (the word's bits 16k ..
16k + 15 in SPRAM k of the bank, the unused top bits of the last written as zeros), and
``ceil(depth / 16384)`` banks are stacked on the high address bits; a read of bank b selects it
with ``CHIPSELECT`` (the other banks hold their outputs) and a register of b picks the bank's
data in the next cycle. The blocks are always on (``STANDBY``, ``SLEEP`` low, ``POWEROFF`` high)
and write all 16 bits (``MASKWREN = 0b1111``).
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..compiler.errors import NeurotileTypeError, NeurotileValueError

__all__ = ["SinglePortMemory", "KINDS", "SPRAM_DEPTH", "SPRAM_WIDTH", "spram_blocks",
           "has_spram"]

#: Memory kinds: ``bram`` is always a ``Memory``; ``spram`` is built from SPRAMs on iCE40 UltraPlus.
KINDS = ("bram", "spram")
#: Words and bits of one ``SB_SPRAM256KA``.
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


def spram_blocks(depth, width):
    """SPRAMs for a memory of ``depth`` words of ``width`` bits.

    >>> spram_blocks(16384, 20)
    2
    >>> spram_blocks(4096, 16), spram_blocks(20000, 16)
    (1, 2)
    """
    return -(-int(depth) // SPRAM_DEPTH) * -(-int(width) // SPRAM_WIDTH)


def has_spram(platform):
    """Whether ``platform`` is an Amaranth iCE40 platform for a device with SPRAMs (iCE40 UltraPlus:
    ``iCE40UP3K`` / ``iCE40UP5K``)."""
    if platform is None:
        return False
    from amaranth.vendor import SiliconBluePlatform       # the iCE40 platform of amaranth 0.5
    return (isinstance(platform, SiliconBluePlatform)
            and str(getattr(platform, "device", "")).startswith("iCE40UP"))


class SinglePortMemory(wiring.Component):
    """A single-port synchronous memory, in ``SB_SPRAM256KA`` blocks on iCE40 UltraPlus
    (module docstring for the port's timing).

    Parameters
    ----------
    shape : ShapeLike
        Word shape (a layout gives ``r_data`` its fields).
    depth : int
        Words.
    init : list, optional
        Initial words (``Memory`` only; an SPRAM build refuses a non-empty ``init``).
    kind : {"bram", "spram"}
        ``spram``: SPRAMs when elaborated for an iCE40 UltraPlus platform, a ``Memory`` otherwise.
    domain : str
        Clock domain.

    Members
    -------
    addr : ``In(range(depth))``
    w_data : ``In(shape)``
    w_en : ``In(1)``
    r_data : ``Out(shape)``
        The word read at ``addr`` in the previous cycle.

    Raises
    ------
    NeurotileTypeError
        ``depth`` is not an int.
    NeurotileValueError
        ``depth`` is not positive or ``kind`` is not one of :data:`KINDS`; at elaboration, an
        SPRAM build with a non-empty ``init``.
    """

    def __init__(self, shape, depth, *, init=(), kind="bram", domain="sync"):
        if isinstance(depth, bool) or not isinstance(depth, int):
            self._MustUse__silence = True
            raise NeurotileTypeError(f"depth must be an int, not {depth!r}")
        if depth < 1:
            self._MustUse__silence = True
            raise NeurotileValueError(f"depth must be a positive integer, not {depth!r}")
        if kind not in KINDS:
            self._MustUse__silence = True
            raise NeurotileValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, "
                                      f"not {kind!r}")
        self.shape = shape
        self.depth = depth
        self.init = list(init)
        self.kind = kind
        self.domain = domain
        super().__init__({
            "addr": In(range(depth)),
            "w_data": In(shape),
            "w_en": In(1),
            "r_data": Out(shape),
        })

    def elaborate(self, platform):
        spram = self.kind == "spram" and has_spram(platform)
        if spram and any(w if isinstance(w, int) else Value.cast(w).value for w in self.init):
            raise NeurotileValueError(
                f"an SPRAM memory of {self.depth} words has no initial contents, but init holds "
                f"{len(self.init)} words: load it at run time (over the host link) instead")
        m = Module()
        if spram:
            self._elaborate_spram(m)
        else:
            mem = m.submodules.memory = Memory(shape=self.shape, depth=self.depth, init=self.init)
            wr = mem.write_port(domain=self.domain)
            rd = mem.read_port(domain=self.domain)
            m.d.comb += [
                wr.addr.eq(self.addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en),
                rd.addr.eq(self.addr), self.r_data.eq(rd.data),
            ]
        return m

    def _elaborate_spram(self, m):
        width = Shape.cast(self.shape).width
        lanes = -(-width // SPRAM_WIDTH)
        banks = -(-self.depth // SPRAM_DEPTH)
        low = (SPRAM_DEPTH - 1).bit_length()               # 14 address bits inside a bank
        w_bits = Signal(lanes * SPRAM_WIDTH)
        address = Signal(low)                               # the SPRAM's 14 bits, zero-extended
        m.d.comb += [w_bits.eq(Value.cast(self.w_data)), address.eq(self.addr[:low])]
        bank = self.addr[low:] if banks > 1 else Const(0, 1)
        r_bank = Signal(range(banks)) if banks > 1 else None
        if banks > 1:
            with m.If(~self.w_en):
                m.d[self.domain] += r_bank.eq(bank)
        outs = []
        for b in range(banks):
            selected = (bank == b) if banks > 1 else Const(1, 1)
            data_out = Signal(lanes * SPRAM_WIDTH, name=f"bank{b}_data")
            for k in range(lanes):
                self._spram_block(
                    m, f"spram_{b}_{k}",
                    ADDRESS=address,
                    DATAIN=w_bits[k * SPRAM_WIDTH:(k + 1) * SPRAM_WIDTH],
                    MASKWREN=Const(0b1111, 4),
                    WREN=self.w_en & selected,
                    CHIPSELECT=selected,
                    CLOCK=ClockSignal(self.domain),
                    STANDBY=Const(0, 1),
                    SLEEP=Const(0, 1),
                    POWEROFF=Const(1, 1),
                    DATAOUT=data_out[k * SPRAM_WIDTH:(k + 1) * SPRAM_WIDTH],
                )
            outs.append(data_out)
        result = outs[0]
        for b in range(1, banks):
            result = Mux(r_bank == b, outs[b], result)
        m.d.comb += self.r_data.eq(result[:width])

    def _spram_block(self, m, name, **ports):
        """Add one ``SB_SPRAM256KA`` called ``name``; ``ports`` maps its port names to values
        (the tests replace this with a behavioural model)."""
        m.submodules[name] = Instance("SB_SPRAM256KA", **{
            ("o_" if port == "DATAOUT" else "i_") + port: value for port, value in ports.items()})
