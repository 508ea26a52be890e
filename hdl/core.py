"""The neuron core: memories, UPDATE engine, fan-out unit, synapse unit and accumulate pipeline.

One :class:`NeuronCore` sits behind the local (L) port of each router. It implements sections 3,
4, 5, 7 and 8 of docs/architecture.md bit- and cycle-exactly; the chip controller counts the
phases and the barrier, the core only needs the three control pulses below.

Control protocol (all signals synchronous to the one clock domain)
------------------------------------------------------------------
``start_update``
    High for one cycle, the cycle **before** UPDATE cycle 0 (i.e. the controller's
    ``STEP_OVERHEAD`` cycle). ``step`` must hold ``t`` (its low ``delay_bits`` bits) in that cycle;
    the core latches ``t mod max_delay``. The per-step counters and the spike queue are cleared in
    the same cycle. Neuron ``n < n_neurons`` is then issued in UPDATE cycle ``n`` (its state,
    profile and accumulator are read); its state is written back and, if it fires, it is pushed
    into the spike queue in cycle ``n + UPDATE_LATENCY``, so everything is done by the end of
    cycle ``N + UPDATE_LATENCY - 1 = arch.update_cycles - 1``, the last cycle of the phase. (The
    neuron's ``neuron_cfg`` word is fetched one cycle ahead, in cycle ``n - 1``, which is why
    ``start_update`` comes one cycle early.)
``start_spike``
    High for one cycle, the cycle **before** SPIKE cycle p = 0 (the last UPDATE cycle,
    ``update_cycles - 1``): the fan-out unit then is in NEXT at the start of p = 0, as section 7
    says. The synapse unit is IDLE whenever nothing is queued for it.
``idle``
    A function of registers only. It is high during cycle p exactly when the per-core part of the
    section 7 quiescence condition holds *at the start of* cycle p: fan-out unit DONE, core input
    FIFO empty, synapse unit IDLE and no synapse in the accumulate pipeline (one that entered in
    cycle p - 1 or p - 2, ``ACC_LATENCY = 3``). The controller ANDs it, in the same cycle, with the
    routers' ``idle`` and the host injector's DONE: the first SPIKE cycle in which all are high is
    ``p_q``. (``idle`` is also high between steps and during UPDATE; only its SPIKE-phase value is
    meaningful.)

Host configuration port (``cfg``)
---------------------------------
Only between steps (no phase running); an access during a phase corrupts that step.

- Write: ``we`` with ``addr``, ``data`` in one cycle; the word is written at the end of that
  cycle. ``we`` and ``re`` have one bit per target of :data:`CFG_TARGETS` (at most one set):
  one strobe per target, so that the chip delivers each from a register and no target decode
  lies between the host bus and a memory's ports (on a 4x2 ECP5 mesh that decode was on the
  critical path). The target is a memory (``data`` holds
  a word of that memory's layout in its low bits, exactly as :meth:`CoreImage.words` packs it;
  ``addr`` is the word address, ``slot * N + neuron`` for ``acc``), or ``"regs"`` with ``addr``
  0 = ``n_neurons``, 1 = ``n_axons``, 2 = flags (bit 0 ``bad_axon``, bit 1 ``acc_sat``; writing
  0 clears them), see :data:`REGISTERS`.
- Read: ``re`` (the target's bit) and ``addr`` in cycle k; ``rdata`` holds the word in cycle
  k + 1 (and keeps it until the next read).

Resources
---------
One synchronous read port and one write port per memory, time-shared between the engines (which
never run at the same time) and the host port; no multiplier outside the neuron datapath (the
synaptic ``weight << wexp`` is a barrel shift). The accumulator's read-during-write collision is
never relied on (the forwarding register covers it), so any BRAM read-during-write mode works.
The synapse memory has a single port (:class:`~neurotile.hdl.spram.SinglePortMemory`): the
synapse unit only reads it, in the SPIKE phase, and the host reads and writes it only between
steps, so they never meet; with ``arch.synapse_ram == "spram"`` it is built from the iCE40
UltraPlus SPRAMs (yosys infers only EBRs from a ``Memory``), elsewhere it is a ``Memory``.
Measured with YoWASP (yosys 0.70 + nextpnr 0.11), every port behind registers:

- ``ecp5-85f`` profile on an ECP5-85F (docs/rtl.md): ~2000 TRELLIS_COMB, ~1150 flip-flops,
  13 DP16KD (11 with ``neuron_state`` in LUT RAM, as the ULX3S build has it), 42 distributed-RAM
  slices (the small memories), 4 MULT18X18D (loihi mode; 0 in shift mode); ~80 MHz alone, its
  critical path from one block RAM's clock-to-out into another's address (fan-out index ->
  fan-out list).
- ``ice40up5k`` profile on an iCE40UP5K (16384 synapses in 2 SB_SPRAM256KA, 16-bit per-step
  counters, FIFOs of depth 1): in the iCEBreaker board design a core with its router takes
  about 2390 logic cells (the 1x1 design 5009 of 5280 after place and route, the 2x1 7507
  packed), 17 EBR with the profile table in EBR (the board build's ``ram_style``), 2 SPRAM and
  4 SB_MAC16. The 1x1 design reaches 24.4 MHz (docs/boards.md). In block RAM the 16384 x
  20-bit synapse memory alone would need 80 of the 30 EBRs (4096 synapses: 20).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..compiler.arch import Arch
from ..compiler.errors import ImageError, NeurotileTypeError
from ..compiler.image import CORE_TABLES, CoreImage
from ..emulator.result import COUNTERS_PER_CORE
from .bitwise import any_of
from .neuron import NeuronDatapath
from .spram import SinglePortMemory

__all__ = ["NeuronCore", "ConfigSignature", "CFG_MEMORIES", "CFG_TARGETS", "REGISTERS",
           "CORE_COUNTERS", "COUNTER_BITS", "memory_depths", "counter_layout", "FLAG_LAYOUT"]

#: The core's memories in host-port order: the image's tables, then the accumulator ring.
CFG_MEMORIES = CORE_TABLES + ("acc",)
#: Every target of the host port, by bit of ``cfg.we`` / ``cfg.re``: the memories, then the
#: register file.
CFG_TARGETS = CFG_MEMORIES + ("regs",)
#: Register-file addresses (the ``CFG_TARGETS.index("regs")`` strobe).
REGISTERS = ("n_neurons", "n_axons", "flags")
#: Per-step counters of a core: the functional ones of section 8, then the two cycle-level ones.
CORE_COUNTERS = COUNTERS_PER_CORE + ("fanout_busy", "syn_busy")
#: Width of the counters that are not bounded by N (they wrap) with the default
#: ``Arch.counter_bits``; ``counter_layout`` uses the arch's.
COUNTER_BITS = 32
#: The sticky flags a core raises, in the bit order of ``emulator.state.FLAGS``.
FLAG_LAYOUT = data.StructLayout({"bad_axon": 1, "acc_sat": 1})


def memory_depths(arch):
    """Words of each memory of a core (section 3)."""
    N = arch.neurons_per_core
    return {"neuron_state": N, "neuron_cfg": N, "profile": arch.profiles_per_core,
            "axon": arch.axons_per_core, "synapse": arch.synapses_per_core, "fanout_index": N,
            "fanout": arch.fanout_per_core, "acc": arch.max_delay * N}


def counter_layout(arch):
    """Layout of the ``counters`` output: ``updates`` and ``spikes`` count to N, the rest wrap at
    ``2^arch.counter_bits``."""
    narrow = arch.count_bits(arch.neurons_per_core)
    return data.StructLayout({name: narrow if name in ("updates", "spikes") else arch.counter_bits
                              for name in CORE_COUNTERS})


def _register_widths(arch):
    return {"n_neurons": arch.count_bits(arch.neurons_per_core),
            "n_axons": arch.count_bits(arch.axons_per_core), "flags": FLAG_LAYOUT.size}


class ConfigSignature(wiring.Signature):
    """The host configuration port of a core, from the host's side (see the module docstring).

    Members
    -------
    addr : ``Out(n)``
        Word address (wide enough for the deepest memory).
    data : ``Out(w)``
        Word to write (as wide as the widest memory word or register).
    we, re : ``Out(len(CFG_TARGETS))``
        Write / read strobes, one bit per target of :data:`CFG_TARGETS` (at most one set).
    rdata : ``In(w)``
        Word read, the cycle after ``re``.
    """

    def __init__(self, arch):
        if not isinstance(arch, Arch):
            raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
        self.arch = arch
        lay = arch.layouts
        self.addr_bits = max(arch.addr_bits(d) for d in memory_depths(arch).values())
        self.data_bits = max([lay[name].size for name in CFG_MEMORIES]
                             + list(_register_widths(arch).values()))
        super().__init__({
            "addr": Out(self.addr_bits),
            "data": Out(self.data_bits),
            "we": Out(len(CFG_TARGETS)),
            "re": Out(len(CFG_TARGETS)),
            "rdata": In(self.data_bits),
        })


class NeuronCore(wiring.Component):
    """One neuron core of the mesh (docs/architecture.md sections 3 to 5, 7 and 8).

    Memories (one synchronous read port and one write port each; layouts from
    ``arch.layouts``): ``neuron_state`` [N], ``neuron_cfg`` [N], ``profile``
    [``profiles_per_core``], ``axon`` [``axons_per_core``], ``synapse`` [``synapses_per_core``],
    ``fanout_index`` [N], ``fanout`` [``fanout_per_core``], the accumulator ring ``acc`` [D * N,
    address ``slot * N + neuron``], and the spike queue [N neuron numbers].

    Units:

    - UPDATE engine: issues neurons 0 .. ``n_neurons - 1`` one per cycle into a
      :class:`~.neuron.NeuronDatapath`, reads and clears ``acc[t mod D][n]``, writes ``u``/``v``
      back and queues the neurons that fire, in increasing n. Pipeline: cycle n reads
      ``neuron_state``, ``acc`` and ``profile`` (``neuron_cfg`` was read in cycle n - 1), cycle
      n + 1 clears the accumulator and starts the datapath, cycle n + 6 writes back
      (``UPDATE_LATENCY = 1 + NeuronDatapath.LATENCY``).
    - Fan-out unit (NEXT / INDEX / EMIT / DONE): pops the spike queue, reads ``fanout_index``, and
      pushes the neuron's ``fanout`` words into ``spikes_out`` whenever it is ready.
    - Core input FIFO (``SyncFIFO``, ``core_fifo_depth``) behind ``packets_in``.
    - Synapse unit (IDLE / AXON / SYN): pops a packet, reads its axon entry, then sends one synapse
      per cycle into the accumulate pipeline: cycle q reads the synapse word, q + 1 reads
      ``acc[(t + delay) mod D][target]``, q + 2 adds ``weight << wexp`` (wrapping to ``acc_bits``)
      and writes it back. A synapse read in q + 1 of the address written in the same cycle takes
      the written value from a forwarding register instead, so back-to-back hits need no stall.

    Parameters
    ----------
    arch : Arch
    core_image : CoreImage, optional
        Initial memory and register contents (e.g. ``image.core(x, y)``); zeros if omitted.

    Members
    -------
    packets_in : ``In(stream.Signature(arch.layouts.packet))``
        From the router's L output; ``ready`` is the core input FIFO's ``w_rdy``.
    spikes_out : ``Out(stream.Signature(arch.layouts.packet))``
        To the router's L input; ``valid`` only in EMIT, independent of ``ready``.
    cfg : ``In(ConfigSignature(arch))``
        Host configuration port.
    step : ``In(arch.delay_bits)``
        The step number t (its low bits), sampled with ``start_update``.
    start_update, start_spike : ``In(1)``
        Phase start pulses (module docstring).
    idle : ``Out(1)``
        The per-core part of the barrier condition (module docstring).
    counters : ``Out(counter_layout(arch))``
        This step's counters (:data:`CORE_COUNTERS`), cleared by ``start_update``.
    flags : ``Out(FLAG_LAYOUT)``
        Sticky ``bad_axon`` and ``acc_sat``; cleared only by reset or a host write.
    datapath : NeuronDatapath
        The LIF pipeline (a submodule; its ``out_valid``/``spike`` outputs show each write-back,
        for test benches).

    Raises
    ------
    NeurotileTypeError
        ``arch`` is not an Arch, or ``core_image`` not a CoreImage.
    ImageError
        ``core_image`` holds more words than a memory of ``arch`` or more neurons/axons.
    """

    #: Cycles from a neuron's issue to its write-back (must equal ``Arch.UPDATE_LATENCY``).
    UPDATE_LATENCY = 1 + NeuronDatapath.LATENCY
    #: Cycles a synapse occupies the accumulate pipeline (must equal ``Arch.ACC_LATENCY``).
    ACC_LATENCY = 3

    def __init__(self, arch, core_image=None):
        if not isinstance(arch, Arch):
            self._MustUse__silence = True
            raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
        if core_image is not None and not isinstance(core_image, CoreImage):
            self._MustUse__silence = True
            raise NeurotileTypeError(f"core_image must be a CoreImage or None, not "
                                     f"{type(core_image).__name__}")
        self.arch = arch
        self.depths = memory_depths(arch)
        self._init = {}
        self._regs_init = {"n_neurons": 0, "n_axons": 0}
        if core_image is not None:
            try:
                self._load(core_image)
            except Exception:
                self._MustUse__silence = True
                raise
        self.datapath = NeuronDatapath(arch)
        super().__init__({
            "packets_in": In(stream.Signature(arch.layouts.packet)),
            "spikes_out": Out(stream.Signature(arch.layouts.packet)),
            "cfg": In(ConfigSignature(arch)),
            "step": In(arch.delay_bits),
            "start_update": In(1),
            "start_spike": In(1),
            "idle": Out(1),
            "counters": Out(counter_layout(arch)),
            "flags": Out(FLAG_LAYOUT),
        })

    def _load(self, core):
        a = self.arch
        where = f"core ({core.x}, {core.y})"
        for name, limit in (("n_neurons", a.neurons_per_core), ("n_axons", a.axons_per_core)):
            value = getattr(core, name)
            if not 0 <= value <= limit:
                raise ImageError(f"{where}: {name} is {value}, outside 0..{limit} of this arch")
            self._regs_init[name] = int(value)
        for name in CORE_TABLES:
            layout = a.layouts[name]
            words = core.words(a, name)
            if words.size > self.depths[name]:
                raise ImageError(f"{where}: memory {name!r} has {words.size} words, but the "
                                 f"arch's memory holds {self.depths[name]}")
            self._init[name] = [data.Const(layout, int(w)) for w in words]

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        lay = a.layouts
        N = a.neurons_per_core
        nb = a.neuron_bits
        slot_bits = (a.max_delay - 1).bit_length()          # 0 when D = 1
        cfg = self.cfg

        # -- memories ------------------------------------------------------------------------------
        rd, wr = {}, {}
        for name in CFG_MEMORIES:
            if name == "synapse":
                continue
            mem = Memory(shape=lay[name], depth=self.depths[name], init=self._init.get(name, []))
            m.submodules[f"mem_{name}"] = mem
            wr[name] = mem.write_port()
            rd[name] = mem.read_port()
        # The synapse memory has one port (SPRAM on iCE40 UltraPlus when arch.synapse_ram says
        # so): the synapse unit reads it during SPIKE, the host reads and writes it between steps.
        syn_mem = m.submodules.mem_synapse = SinglePortMemory(
            lay.synapse, self.depths["synapse"], init=self._init.get("synapse", []),
            kind=a.synapse_ram)
        host_we = {name: cfg.we[k] for k, name in enumerate(CFG_TARGETS)}
        host_re = {name: cfg.re[k] for k, name in enumerate(CFG_TARGETS)}

        # -- registers -----------------------------------------------------------------------------
        widths = _register_widths(a)
        n_neurons = Signal(widths["n_neurons"], init=self._regs_init["n_neurons"])
        n_axons = Signal(widths["n_axons"], init=self._regs_init["n_axons"])
        bad_axon = Signal()
        acc_sat = Signal()
        m.d.comb += [self.flags.bad_axon.eq(bad_axon), self.flags.acc_sat.eq(acc_sat)]
        slot = Signal(max(slot_bits, 1))                    # t mod D
        slot1 = Signal(max(slot_bits, 1))                   # (t + 1) mod D: delay field d' = d - 1
        counters = {name: Signal(shape, name=f"count_{name}")
                    for name, shape in ((n, f.shape) for n, f in counter_layout(a))
                    if name not in ("updates", "spikes")}

        def acc_addr(neuron, slot_value):
            return Cat(neuron[:nb], slot_value[:slot_bits])

        # -- UPDATE engine ---------------------------------------------------------------------------
        upd_n = Signal(a.count_bits(N))                     # neurons issued (= `updates`)
        issue = Signal()                                    # neuron upd_n is issued this cycle
        # `~issue` is always true with start_update (the previous UPDATE phase has ended); it
        # makes every core's slot registers its own: with the same inputs in every core, yosys
        # merges them into one that drives every core's accumulator address across the die.
        with m.If(self.start_update & ~issue):
            m.d.sync += [slot.eq(self.step[:slot_bits]), slot1.eq(self.step[:slot_bits] + 1)]
        with m.If(self.start_update):
            m.d.sync += [issue.eq(n_neurons != 0), upd_n.eq(0)]
        with m.Elif(issue):
            m.d.sync += [upd_n.eq(upd_n + 1), issue.eq(upd_n + 1 != n_neurons)]

        # Cycle n: read state, accumulator and profile; neuron_cfg is read one cycle ahead.
        m.d.comb += [
            rd["neuron_state"].addr.eq(upd_n),
            rd["neuron_cfg"].addr.eq(Mux(self.start_update, 0, upd_n + 1)),
            rd["profile"].addr.eq(rd["neuron_cfg"].data.profile),
        ]
        # Cycle n + 1: clear the accumulator read in cycle n; start the datapath.
        rd_valid = Signal()
        clr_addr = Signal(nb + slot_bits)
        m.d.sync += [rd_valid.eq(issue), clr_addr.eq(acc_addr(upd_n, slot))]
        dp = m.submodules.datapath = self.datapath
        m.d.comb += [
            dp.valid.eq(rd_valid),
            dp.state.eq(rd["neuron_state"].data),
            dp.acc.eq(rd["acc"].data),
            dp.profile.eq(rd["profile"].data),
        ]
        # Cycle n + 6: write back in issue order; queue the spike.
        wb_n = Signal(nb)
        queue = m.submodules.mem_spike_queue = Memory(shape=unsigned(nb), depth=N, init=[])
        q_wr = queue.write_port()
        q_rd = queue.read_port(transparent_for=(q_wr,))
        q_wptr = Signal(a.count_bits(N))                    # spikes queued (= `spikes`)
        q_rptr = Signal(a.count_bits(N))
        m.d.comb += [
            wr["neuron_state"].addr.eq(wb_n),
            wr["neuron_state"].data.eq(dp.out_state),
            wr["neuron_state"].en.eq(dp.out_valid),
            q_wr.addr.eq(q_wptr),
            q_wr.data.eq(wb_n),
            q_wr.en.eq(dp.out_valid & dp.spike),
        ]
        with m.If(self.start_update):
            m.d.sync += [wb_n.eq(0), q_wptr.eq(0), q_rptr.eq(0)]
        with m.Elif(dp.out_valid):
            m.d.sync += wb_n.eq(wb_n + 1)
            with m.If(dp.spike):
                m.d.sync += q_wptr.eq(q_wptr + 1)
            with m.If(dp.saturated):
                m.d.sync += acc_sat.eq(1)
        m.d.comb += [self.counters.updates.eq(upd_n), self.counters.spikes.eq(q_wptr)]

        # -- fan-out unit -------------------------------------------------------------------------------
        fo_ptr = Signal(a.addr_bits(a.fanout_per_core))
        fo_rem = Signal(a.count_bits(a.fanout_per_core))
        pop = Signal()
        fo_index = rd["fanout_index"].data
        out = self.spikes_out
        m.d.comb += [
            q_rd.addr.eq(q_rptr + pop),                     # the queue head is always read ahead
            rd["fanout_index"].addr.eq(q_rd.data),
            rd["fanout"].addr.eq(fo_ptr),
            out.payload.eq(rd["fanout"].data),
        ]
        with m.FSM(init="DONE", name="fanout") as fo_fsm:
            with m.State("DONE"):
                with m.If(self.start_spike):
                    m.next = "NEXT"
            with m.State("NEXT"):
                with m.If(q_rptr == q_wptr):
                    m.next = "DONE"
                with m.Else():
                    m.d.comb += pop.eq(1)
                    m.d.sync += q_rptr.eq(q_rptr + 1)
                    m.next = "INDEX"
            with m.State("INDEX"):
                # The first word is read whether or not the list is empty (no count in the path).
                m.d.comb += rd["fanout"].addr.eq(fo_index.base)
                m.d.sync += [fo_ptr.eq(fo_index.base), fo_rem.eq(fo_index.count)]
                with m.If(fo_index.count == 0):
                    m.next = "NEXT"
                with m.Else():
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += out.valid.eq(1)
                with m.If(out.ready):
                    m.d.comb += rd["fanout"].addr.eq(fo_ptr + 1)
                    m.d.sync += [
                        fo_ptr.eq(fo_ptr + 1), fo_rem.eq(fo_rem - 1),
                        counters["packets_out"].eq(counters["packets_out"] + 1),
                    ]
                    with m.If(fo_rem == 1):
                        m.next = "NEXT"
        with m.If(~fo_fsm.ongoing("DONE")):
            m.d.sync += counters["fanout_busy"].eq(counters["fanout_busy"] + 1)

        # -- core input FIFO and synapse unit -------------------------------------------------------
        fifo = m.submodules.input_fifo = SyncFIFO(width=lay.packet.size, depth=a.core_fifo_depth)
        head = data.View(lay.packet, fifo.r_data)
        m.d.comb += [
            fifo.w_data.eq(self.packets_in.payload),
            fifo.w_en.eq(self.packets_in.valid),
            self.packets_in.ready.eq(fifo.w_rdy),
        ]
        sy_bad = Signal()                                   # the popped packet's axon >= n_axons
        sy_ptr = Signal(a.addr_bits(a.synapses_per_core))
        sy_rem = Signal(a.count_bits(a.synapses_per_core))
        axon = rd["axon"].data
        s1_valid = Signal()                                 # a synapse entered last cycle
        m.d.comb += [
            rd["axon"].addr.eq(head.index),
            syn_mem.addr.eq(sy_ptr),
        ]
        m.d.sync += s1_valid.eq(0)
        with m.FSM(init="IDLE", name="synapse") as sy_fsm:
            with m.State("IDLE"):
                with m.If(fifo.r_rdy):
                    m.d.comb += fifo.r_en.eq(1)
                    m.d.sync += sy_bad.eq(head.index >= n_axons)
                    m.next = "AXON"
            with m.State("AXON"):
                # The pointer and count load whether or not a synapse follows (they are only
                # used in SYN): no count or bad-axon check in the path from the axon memory.
                m.d.sync += [counters["packets_in"].eq(counters["packets_in"] + 1),
                             sy_ptr.eq(axon.base), sy_rem.eq(axon.count)]
                with m.If(sy_bad):
                    m.d.sync += bad_axon.eq(1)
                with m.If(sy_bad | (axon.count == 0)):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "SYN"
            with m.State("SYN"):
                m.d.sync += [
                    s1_valid.eq(1),
                    sy_ptr.eq(sy_ptr + 1), sy_rem.eq(sy_rem - 1),
                    counters["synops"].eq(counters["synops"] + 1),
                ]
                with m.If(sy_rem == 1):
                    m.next = "IDLE"
        with m.If(sy_fsm.ongoing("AXON") | sy_fsm.ongoing("SYN")):
            m.d.sync += counters["syn_busy"].eq(counters["syn_busy"] + 1)

        # -- accumulate pipeline ------------------------------------------------------------------------
        # Stage 1 (q + 1): decode the synapse word, read the accumulator.
        syn = syn_mem.r_data
        s1_addr = Signal(nb + slot_bits)
        m.d.comb += s1_addr.eq(acc_addr(syn.target, slot1 + syn.delay))
        s2_valid = Signal()
        s2_addr = Signal(nb + slot_bits)
        s2_value = Signal(lay.acc["value"].shape)
        s2_forward = Signal()
        m.d.sync += [
            s2_valid.eq(s1_valid),
            s2_addr.eq(s1_addr),
            s2_value.eq(syn.weight << syn.wexp),            # barrel shift, sign-extended
            # The synapse ahead (now in stage 2) writes this address in the very cycle this one
            # reads it: take its sum from the forwarding register instead. Compared here, a
            # stage early, to keep the compare out of the read-add-write path.
            s2_forward.eq(s2_valid & (s2_addr == s1_addr)),
        ]
        # Stage 2 (q + 2): add and write back; keep the sum for forwarding.
        fwd_value = Signal(lay.acc["value"].shape)
        old = Mux(s2_forward, fwd_value, rd["acc"].data.value)
        total = Signal(lay.acc["value"].shape)
        m.d.comb += total.eq(old + s2_value)                # wraps to acc_bits (section 5)
        m.d.sync += fwd_value.eq(total)

        # acc ports: the UPDATE engine (read in cycle n, clear in n + 1), else the pipeline.
        with m.If(issue):
            m.d.comb += rd["acc"].addr.eq(acc_addr(upd_n, slot))
        with m.Else():
            m.d.comb += rd["acc"].addr.eq(s1_addr)
        with m.If(rd_valid):
            m.d.comb += [wr["acc"].addr.eq(clr_addr), wr["acc"].data.value.eq(0),
                         wr["acc"].en.eq(1)]
        with m.Else():
            m.d.comb += [wr["acc"].addr.eq(s2_addr), wr["acc"].data.value.eq(total),
                         wr["acc"].en.eq(s2_valid)]

        m.d.comb += self.idle.eq(fo_fsm.ongoing("DONE") & ~fifo.r_rdy & sy_fsm.ongoing("IDLE")
                                 & ~s1_valid & ~s2_valid)
        for name, signal in counters.items():
            m.d.comb += self.counters[name].eq(signal)
        with m.If(self.start_update):                      # last, so that it wins
            m.d.sync += [c.eq(0) for c in counters.values()]

        # -- host configuration port (overrides the engines' port assignments above) -----------
        for name in CFG_MEMORIES:
            if name == "synapse":
                # Only the host writes it: the data needs no select (and no decode in its path).
                m.d.comb += syn_mem.w_data.eq(cfg.data)
                with m.If(host_we[name] | host_re[name]):
                    m.d.comb += [syn_mem.addr.eq(cfg.addr), syn_mem.w_en.eq(host_we[name])]
                continue
            with m.If(host_we[name]):
                m.d.comb += [wr[name].addr.eq(cfg.addr), wr[name].data.eq(cfg.data),
                             wr[name].en.eq(1)]
            with m.If(host_re[name]):
                m.d.comb += rd[name].addr.eq(cfg.addr)
        regs = {"n_neurons": n_neurons, "n_axons": n_axons, "flags": Cat(bad_axon, acc_sat)}
        with m.If(host_we["regs"]):
            with m.Switch(cfg.addr):
                for k, name in enumerate(REGISTERS):
                    with m.Case(k):
                        m.d.sync += regs[name].eq(cfg.data)
        r_sel = Signal.like(cfg.re)                       # one-hot: the target read last
        r_regs = Signal(cfg.data.shape())
        with m.If(cfg.re.any()):
            m.d.sync += r_sel.eq(cfg.re)
        with m.If(host_re["regs"]):
            with m.Switch(cfg.addr):
                for k, name in enumerate(REGISTERS):
                    with m.Case(k):
                        m.d.sync += r_regs.eq(regs[name])
        words = [syn_mem.r_data if name == "synapse" else rd[name].data for name in CFG_MEMORIES]
        m.d.comb += cfg.rdata.eq(any_of(Mux(r_sel[k], word, 0)
                                        for k, word in enumerate(words + [r_regs])))
        return m
