"""The chip: the mesh, the step controller, the host buffers and counters, and the host port.

Two components:

- :class:`ChipEngine` is the whole chip behind the **host bus**
  (:class:`~neurotile.hdl.hostport.HostBusSignature`): the :class:`~neurotile.hdl.mesh.Mesh`, the
  step controller and barrier of docs/architecture.md section 7, the host injector, the input and
  output packet buffers, and the counters and sticky flags of section 8. Test benches drive its bus
  directly (one transaction per memory word, register or buffer entry).
  With ``registered_bus`` (the default), the bus is registered at the chip and at every core
  in both directions, so no host-bus path spans the mesh.
- :class:`Chip` is the top level: a :class:`~neurotile.hdl.hostport.HostPort` in front of a
  :class:`ChipEngine`, so the chip is driven only through the byte streams ``rx`` and ``tx`` with the
  framed protocol of :mod:`neurotile.hdl.protocol`.

The step (section 7)
--------------------
A RUN request of ``steps`` steps runs them back to back; each step is::

    OVERHEAD  1 cycle        start_update (cores sample t), arb_reset (routers), counters cleared
    UPDATE    U cycles       U = arch.update_cycles; start_spike in the last one
    SPIKE     p = 0, 1, ...  host injector and mesh; until the first quiescent cycle p_q
    BARRIER                  BARRIER_LATENCY cycles counted from p_q (p_q is the first of them)

so a step lasts ``STEP_OVERHEAD + U + p_q + BARRIER_LATENCY`` cycles. Quiescence in cycle p is the
AND, in that cycle, of every core's ``idle``, every router's ``idle`` and the host injector being
DONE, all of which are registers (the state at the start of p). The controller sees it through
one more register, in cycle p_q + 1, the barrier's second cycle: quiescence lasts once reached
(nothing is left to move a packet), so the step's length is the same. The cores' and routers'
flags and the hop count reach it through a register too; all of them are final before p_q.
``spike_cycles`` counts the
cycles the controller spends in SPIKE and BARRIER; ``update_cycles`` (always U) and ``cycles``
(``1 + U + spike_cycles``) follow from it and are not registers of their own.

In the last cycle of a step the controller raises the sticky flags that are set (each with the
current step t if it was clear), advances t and the step offset, and starts the next step's
OVERHEAD in the following cycle, or, after the last step, pulses ``run_done`` in the next cycle,
when every register and counter of the step is readable.

Host injector (router (0, 0), W input): START / EMIT / DONE, START at p = 0. The first step of a RUN
injects input-buffer entries ``0 .. n_inject - 1`` in order, one per cycle while the W input FIFO
has room; later steps of the same RUN inject nothing.

Output buffer: every packet leaving through the host exit (router (0, 0) W output, always ready)
is stored as ``packet | offset << 8 * packet_bytes`` (offset = step index within the RUN) at entry
``n_output`` while ``n_output < host_out_depth``; later ones only count in ``out_dropped``. RUN
empties the buffer (the host reads it after each RUN).

Flags: ``bad_axon`` and ``acc_sat`` are the cores' sticky flags ORed, ``bad_route`` the routers'
ORed, ``step_timeout`` the chip's own (``spike_cycles > arch.step_timeout``). Writing the chip
register ``flags`` clears the chip's flags and first-raised steps, every core's flags (a
broadcast configuration write) and every router's ``bad_route`` (a reset of the routers, which are
empty between steps).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileTypeError
from ..emulator.result import COUNTERS_CHIP, COUNTERS_PER_CORE
from ..emulator.state import FLAGS
from . import protocol as P
from .bitwise import any_of
from .core import CFG_TARGETS, REGISTERS as CORE_REGISTERS
from .hostport import DEFAULT_FRAME_TIMEOUT, HostBusSignature, HostPort
from .mesh import Mesh, check_image
from .router_model import L as L_PORT, NUM_PORTS, W as W_PORT

__all__ = ["Chip", "ChipEngine", "WORD_BITS", "NEVER"]

#: Width of every counter word, of the step counter and of the first-raised steps (they wrap);
#: the per-step counters are ``arch.counter_bits`` wide, zero-extended to a word.
WORD_BITS = 32
#: ``flag_step`` value of a flag that was never raised.
NEVER = (1 << WORD_BITS) - 1
#: Attributes of the flip-flops that hold one copy of a value per core (``start_update_<c>``,
#: ``start_spike_<c>``). Copies with the same input are one flip-flop to yosys' ``opt_merge``;
#: the board build (:func:`neurotile.boards.build.build_plan`) marks each one ``keep``.
REPLICA = {"neurotile_replica": 1}

# The host bus addresses the cores' configuration ports with the same ids (protocol.py defines
# the bus, core.py the configuration port): check that they agree once, at import.
if (tuple(P.MEMORIES) != tuple(CFG_TARGETS[:len(P.MEMORIES)])
        or P.TARGETS.index("core_reg") != CFG_TARGETS.index("regs")
        or [r.name for r in P.CORE_REGISTERS] != list(CORE_REGISTERS[:len(P.CORE_REGISTERS)])
        or tuple(FLAGS[:2]) != ("bad_axon", "acc_sat")):          # pragma: no cover
    raise RuntimeError("hdl/protocol.py and hdl/core.py disagree on memory or register ids")
# The controller has one OVERHEAD state and counts the barrier from the quiescent cycle on.
if Arch.STEP_OVERHEAD != 1 or Arch.BARRIER_LATENCY < 2:                 # pragma: no cover
    raise RuntimeError("ChipEngine implements STEP_OVERHEAD = 1 and BARRIER_LATENCY >= 2")


class ChipEngine(wiring.Component):
    """The chip behind its host bus (module docstring): mesh, step controller, buffers, counters.

    Parameters
    ----------
    arch : Arch
    image : ChipImage, optional
        Initial memory and register contents of every core (zeros if omitted); it must be compiled
        for ``arch``. The input buffer starts empty, the step counter at 0, the flags clear.
    registered_bus : bool
        Register the host bus twice on the way to every core (at the chip, then at the core) and
        twice on the way back (at the core, then the answer). A write then lands 2 cycles after
        it is accepted and a read is answered after 5 instead of 1, and no host-bus path spans
        the mesh: large meshes need it to reach their clock. Off, the chip is smaller (the registers
        cost the 2x2 ECP5 build about 670 flip-flops), which the iCE40UP5K needs. No step is
        timed from the bus, so the chip computes the same either way.

    Members
    -------
    bus : ``In(HostBusSignature(arch))``
        The host bus (targets, timing: :class:`~neurotile.hdl.hostport.HostBusSignature`). Requests
        are accepted (``req.ready``) only while no step runs, RUN requests (``run.ready``) only
        while no step runs and no write is on its way; a read is answered 1 cycle after it is
        accepted, or 5 with ``registered_bus``.
    running : ``Out(1)``
        A RUN is in progress.
    mesh : Mesh
        The cores and routers (a submodule).

    Raises
    ------
    NeurotileTypeError
        ``arch`` is not an Arch or ``image`` not a ChipImage.
    ImageError
        ``image`` was compiled for another architecture or does not fit it.
    """

    #: Cycles from accepting a read to its answer, without and with ``registered_bus``.
    READ_LATENCY = {False: 1, True: 5}

    def __init__(self, arch, image=None, *, registered_bus=True):
        try:
            check_image(arch, image)
            self.mesh = Mesh(arch, image)
        except Exception:
            self._MustUse__silence = True
            raise
        self.arch = arch
        self.registered_bus = bool(registered_bus)
        super().__init__({
            "bus": In(HostBusSignature(arch)),
            "running": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        n = a.n_cores
        info = P.target_info(a)
        tid = {name: t.id for name, t in info.items()}
        pbits = 8 * info["inject"].nbytes                  # a packet on the wire / in an entry
        packet = a.layouts.packet
        mesh = m.submodules.mesh = self.mesh
        bus = self.bus
        req = bus.req.payload

        # -- chip registers ------------------------------------------------------------------------
        t = Signal(WORD_BITS, name="step")                 # steps completed since load / clear
        flags = Signal(len(FLAGS))                         # bit i = FLAGS[i]
        flag_step = [Signal(WORD_BITS, init=NEVER, name=f"flag_step_{f}") for f in FLAGS]
        n_output = Signal(range(a.host_out_depth + 1))
        out_dropped = Signal(WORD_BITS)
        offset = Signal(16)                                # step index within the RUN
        steps_left = Signal(16)
        inj_n = Signal(range(a.host_in_depth + 1))         # packets this step injects
        run_done = Signal()
        m.d.sync += run_done.eq(0)
        m.d.comb += bus.run_done.eq(run_done)

        # -- per-step counters (arch.counter_bits wide; they wrap) ---------------------------------
        # Only `spike_cycles` is a register: UPDATE always lasts U cycles, so after the first
        # step `update_cycles` is U and `cycles` is 1 + U + spike_cycles (mod 2^counter_bits, as
        # the counters they replace); all three read 0 until a step has started (`stepped`).
        cbits = a.counter_bits
        count = {name: Signal(cbits, name=f"count_{name}")
                 for name in COUNTERS_CHIP + ("spike_cycles",)}
        stepped = Signal()
        # Link counters of the router outputs. Two of them equal other counters whenever the host
        # can read them (between steps), so they are read from those: a core's L output delivers
        # exactly the packets its synapse unit consumes by quiescence (`packets_in`), and the W
        # output of (0, 0) is the host exit (`host_out`).
        link = [[None if o == L_PORT or (c == 0 and o == W_PORT)
                 else Signal(cbits, name=f"link_{c}_{P.LINK_PORTS[o]}")
                 for o in range(NUM_PORTS)] for c in range(n)]

        # -- host buffers ----------------------------------------------------------------------------
        m.submodules.inject_buffer = inj_mem = Memory(shape=packet.size, depth=a.host_in_depth,
                                                      init=[])
        inj_wr = inj_mem.write_port()
        inj_rd = inj_mem.read_port()
        m.submodules.output_buffer = out_mem = Memory(shape=pbits + 16, depth=a.host_out_depth,
                                                      init=[])
        out_wr = out_mem.write_port()
        out_rd = out_mem.read_port()

        # -- step controller -------------------------------------------------------------------------
        U, B = a.update_cycles, a.BARRIER_LATENCY
        ucnt = Signal(range(U))
        bcnt = Signal(range(max(B - 1, 2)))
        T = a.step_timeout
        # SPIKE-phase cycles until T: `spike_cycles` (it counts the same cycles), extended by
        # `to_ext`, which counts its wraps when T >= 2^counter_bits. Once the count reaches T,
        # `to_hit` holds the verdict and the count may run on or wrap.
        ext_bits = max(0, T.bit_length() - cbits)
        to_ext = Signal(ext_bits) if ext_bits else None    # no zero-width wires in the Verilog
        to_cnt = count["spike_cycles"] if to_ext is None else Cat(count["spike_cycles"], to_ext)
        to_hit = Signal()
        inj_done = Signal()
        run_ready = Signal()
        # Quiescence and the flags come from every core and router: the controller sees them a
        # cycle late, through registers, and the barrier is one cycle shorter to match (the
        # condition and the flags cannot change once the mesh is quiescent, section 7).
        quiet = Signal()                                   # the mesh was quiescent last cycle
        m.d.sync += quiet.eq(mesh.idle & inj_done)
        core_flag = {f: Signal(name=f"any_{f}") for f in ("bad_axon", "acc_sat")}
        any_bad_route = Signal()
        m.d.sync += [core_flag[f].eq(any_of(mesh.flags[c][f] for c in range(n)))
                     for f in core_flag]
        m.d.sync += any_bad_route.eq(mesh.bad_route)
        timed_out = Signal()
        m.d.comb += timed_out.eq(to_hit | (to_cnt == T))
        sources = {"bad_axon": core_flag["bad_axon"], "acc_sat": core_flag["acc_sat"],
                   "step_timeout": timed_out, "bad_route": any_bad_route}

        def spike_cycle():
            m.d.sync += count["spike_cycles"].eq(count["spike_cycles"] + 1)
            with m.If(to_cnt == T):
                m.d.sync += to_hit.eq(1)
            if to_ext is not None:
                with m.If(count["spike_cycles"].all()):
                    m.d.sync += to_ext.eq(to_ext + 1)

        def end_step():
            for i, f in enumerate(FLAGS):
                with m.If(sources[f] & ~flags[i]):
                    m.d.sync += [flags[i].eq(1), flag_step[i].eq(t)]
            m.d.sync += [t.eq(t + 1), offset.eq(offset + 1), steps_left.eq(steps_left - 1),
                         inj_n.eq(0)]
            with m.If(steps_left == 1):
                m.d.sync += run_done.eq(1)
                m.next = "IDLE"
            with m.Else():
                pulse(start_update)
                m.next = "OVERHEAD"

        # start_update (= in OVERHEAD) and start_spike (= in UPDATE's last cycle) are registers,
        # set in the cycle before, not decodes of the state (a decode put its logic before a net
        # across the die: the routed 4x4's critical path was state -> decode -> 14.4 ns of
        # routing -> a core's neuron_cfg read, 22.8 ns). There is one copy of each per core (and
        # its router), all set alike, so that no one register drives every core's memories and
        # counters: the net across the die ends at 2 x n flip-flops, each next to its core.
        # REPLICA marks them for the build, which keeps yosys from merging them back into one.
        start_update = [Signal(name=f"start_update_{c}", attrs=REPLICA) for c in range(n)]
        start_spike = [Signal(name=f"start_spike_{c}", attrs=REPLICA) for c in range(n)]

        def pulse(copies):
            m.d.sync += [s.eq(1) for s in copies]

        m.d.sync += [s.eq(0) for s in start_update + start_spike]     # before the FSM: it wins
        m.d.comb += [mesh.start_update.eq(Cat(start_update)), mesh.arb_reset.eq(Cat(start_update)),
                     mesh.start_spike.eq(Cat(start_spike))]
        with m.FSM(init="IDLE", name="ctrl") as ctrl:
            with m.State("IDLE"):
                m.d.comb += [bus.run.ready.eq(run_ready), bus.req.ready.eq(1)]
                with m.If(bus.run.valid & run_ready):
                    m.d.sync += [steps_left.eq(bus.run.payload.steps),
                                 inj_n.eq(bus.run.payload.n_inject),
                                 n_output.eq(0), out_dropped.eq(0), offset.eq(0)]
                    with m.If(bus.run.payload.steps == 0):
                        m.d.sync += run_done.eq(1)
                    with m.Else():
                        pulse(start_update)
                        m.next = "OVERHEAD"
            with m.State("OVERHEAD"):
                m.d.sync += [ucnt.eq(0), to_hit.eq(0), stepped.eq(1), count["spike_cycles"].eq(0)]
                if to_ext is not None:
                    m.d.sync += to_ext.eq(0)
                m.next = "UPDATE"
            with m.State("UPDATE"):
                m.d.sync += ucnt.eq(ucnt + 1)
                with m.If(ucnt == U - 2):                 # U = N + UPDATE_LATENCY >= 7
                    pulse(start_spike)
                with m.If(ucnt == U - 1):
                    m.next = "SPIKE"
            with m.State("SPIKE"):
                spike_cycle()
                with m.If(quiet):                          # p_q + 1, the barrier's second cycle
                    if B == 2:
                        end_step()
                    else:
                        m.d.sync += bcnt.eq(B - 3)
                        m.next = "BARRIER"
            with m.State("BARRIER"):
                spike_cycle()
                with m.If(bcnt == 0):
                    end_step()
                with m.Else():
                    m.d.sync += bcnt.eq(bcnt - 1)
        m.d.comb += [self.running.eq(~ctrl.ongoing("IDLE")), mesh.step.eq(t)]

        # -- host injector (section 7) ---------------------------------------------------------------
        inj_pos = Signal(range(a.host_in_depth + 1))
        host_in = mesh.host_in
        push = Signal()
        m.d.comb += [
            push.eq(host_in.valid & host_in.ready),
            inj_rd.addr.eq(Mux(push, inj_pos + 1, inj_pos)),    # the next entry is read ahead
            host_in.payload.eq(inj_rd.data),
        ]
        with m.FSM(init="DONE", name="injector") as inj:
            with m.State("START"):
                with m.If(ctrl.ongoing("SPIKE")):
                    with m.If(inj_n == 0):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += host_in.valid.eq(1)
                with m.If(host_in.ready):
                    m.d.sync += [inj_pos.eq(inj_pos + 1),
                                 count["host_in"].eq(count["host_in"] + 1)]
                    with m.If(inj_pos + 1 == inj_n):
                        m.next = "DONE"
            with m.State("DONE"):
                with m.If(ctrl.ongoing("OVERHEAD")):
                    m.next = "START"
        with m.If(ctrl.ongoing("OVERHEAD")):
            m.d.sync += inj_pos.eq(0)
        m.d.comb += inj_done.eq(inj.ongoing("DONE"))

        # -- host exit and output buffer ------------------------------------------------------------
        out = mesh.host_out
        m.d.comb += [
            out.ready.eq(1),                               # the host exit is always ready
            out_wr.addr.eq(n_output),
            out_wr.data.eq(Cat(out.payload.as_value(), Const(0, pbits - packet.size), offset)),
        ]
        with m.If(out.valid):
            m.d.sync += count["host_out"].eq(count["host_out"] + 1)
            with m.If(n_output != a.host_out_depth):
                m.d.comb += out_wr.en.eq(1)
                m.d.sync += n_output.eq(n_output + 1)
            with m.Else():
                m.d.sync += out_dropped.eq(out_dropped + 1)

        # -- link and hop counters ------------------------------------------------------------------
        # The hop count is a sum over every router: it reaches the counter two cycles late, the
        # mesh's register and this one (the last hops are in cycle p_q - 1, so they are counted
        # by the end of p_q + 1, the step's last cycle). The link transfers come from the mesh's
        # registers, one cycle late: counted by the end of p_q.
        hops = Signal.like(mesh.hop_count)
        m.d.sync += [hops.eq(mesh.hop_count), count["hops"].eq(count["hops"] + hops)]
        for c in range(n):
            for o in range(NUM_PORTS):
                if link[c][o] is not None:
                    with m.If(mesh.transfers[c][o]):
                        m.d.sync += link[c][o].eq(link[c][o] + 1)
        with m.If(ctrl.ongoing("OVERHEAD")):               # last, so that clearing wins
            m.d.sync += [count[name].eq(0) for name in COUNTERS_CHIP]
            m.d.sync += [s.eq(0) for row in link for s in row if s is not None]

        # -- host bus (see the class docstring for its stages) --------------------------------------
        # A request moves through up to four register stages: A (at the chip, after the accept),
        # B (one per unit: every core, and the chip's own registers and buffers), the read (one
        # cycle in the unit: its memory port or a register loaded with the counter word), C (the
        # answer, one per unit, zero unless the unit was read) and D (the OR of the answers).
        # With `registered_bus` off, A, B, C and D are wires and a read is answered in the cycle
        # after it is accepted; on, no path crosses the mesh without a register at each end.
        staged = self.registered_bus

        def stage(value, name, load=None):
            if not staged:
                return value
            reg = Signal(len(value), name=name)
            with m.If(1 if load is None else load):
                m.d.sync += reg.eq(value)
            return reg

        accept = Signal()
        m.d.comb += accept.eq(bus.req.valid & bus.req.ready)
        a_valid = stage(accept, "bus_a_valid")
        a_we = stage(req.we, "bus_a_we")
        a_target = stage(req.target, "bus_a_target")
        a_addr = stage(req.addr, "bus_a_addr")
        a_data = stage(req.data, "bus_a_data")
        a_read = a_valid & ~a_we
        a_chip_reg = a_target == tid["chip_reg"]
        a_counter = a_target == tid["counter"]
        counter_names = P.counter_map(a)
        n_chip_words = next(k for k, name in enumerate(counter_names) if name.startswith("core"))
        words_per_core = (len(counter_names) - n_chip_words) // n
        # Which core a request is for, decoded before stage A so that a core's stage B loads
        # straight from a register: the wires from A to the cores cross the mesh.
        a_mine, a_counted = [], []
        for c in range(n):
            lo = n_chip_words + c * words_per_core
            a_mine.append(stage(accept & (req.target <= tid["core_reg"]) & (req.core == c),
                                f"bus_a_mine_{c}"))
            a_counted.append(stage(accept & ~req.we & (req.target == tid["counter"])
                                   & (req.addr >= lo) & (req.addr < lo + words_per_core),
                                   f"bus_a_counted_{c}"))
        clear_flags = stage(accept & req.we & (req.target == tid["chip_reg"])
                            & (req.addr == P.register("flags").addr), "bus_a_clear_flags")
        # A write for any core, for run_ready: the OR of the cores' own stage B registers would be
        # gathered from across the mesh into the host port's state (measured: the critical path).
        a_core_write = stage(accept & req.we & (req.target <= tid["core_reg"]) & (req.core < n),
                             "bus_a_core_write")

        # Stage B, chip: its registers, the inject buffer, the output buffer, the chip counters.
        b_clear = stage(clear_flags, "bus_b_clear_flags")
        b_set_step = stage(a_valid & a_we & a_chip_reg & (a_addr == P.register("step").addr),
                           "bus_b_set_step")
        b_inject = stage(a_valid & a_we & (a_target == tid["inject"]), "bus_b_inject")
        b_read_out = stage(a_read & (a_target == tid["output"]), "bus_b_read_output")
        b_read_word = stage(a_read & (a_chip_reg | (a_counter & (a_addr < n_chip_words))),
                            "bus_b_read_word")
        b_word_counter = stage(a_counter, "bus_b_counter")
        b_addr = stage(a_addr, "bus_b_addr")
        b_data = stage(a_data, "bus_b_data")
        b_read = stage(a_read, "bus_b_read")
        m.d.comb += mesh.clear_routes.eq(b_clear)
        with m.If(b_clear):
            m.d.sync += [flags.eq(0)] + [s.eq(NEVER) for s in flag_step]
        with m.If(b_set_step):
            m.d.sync += t.eq(b_data)
        m.d.comb += [inj_wr.addr.eq(b_addr), inj_wr.data.eq(b_data), inj_wr.en.eq(b_inject),
                     out_rd.addr.eq(b_addr)]

        # Read cycle, chip: the chip word (registers and chip counters), the output buffer entry.
        values = {"step": t, "flags": flags}
        values.update({name: count[name] for name in count})
        values["update_cycles"] = Mux(stepped, U % (1 << cbits), 0)
        values["cycles"] = Mux(stepped, (a.STEP_OVERHEAD + U + count["spike_cycles"])[:cbits], 0)
        values.update({f"flag_step.{f}": s for f, s in zip(FLAGS, flag_step)})
        for c in range(n):
            for name in COUNTERS_PER_CORE + ("fanout_busy", "syn_busy"):
                values[f"core{c}.{name}"] = mesh.counters[c][name]
            for o, port in enumerate(P.LINK_PORTS):
                values[f"core{c}.link.{port}"] = link[c][o]
            values[f"core{c}.link.L"] = mesh.counters[c]["packets_in"]
        values["core0.link.W"] = count["host_out"]
        chip_regs = {"step": t, "flags": flags, "n_output": n_output, "out_dropped": out_dropped}
        r_word = Signal(WORD_BITS)                         # zero unless the chip word was read
        r_out = Signal()
        m.d.sync += [r_word.eq(0), r_out.eq(b_read_out)]
        with m.If(b_read_word):
            with m.If(b_word_counter):
                with m.Switch(b_addr):
                    # One word per counter_map() name, in its order (the map is the spec).
                    for k in range(n_chip_words):
                        with m.Case(k):
                            m.d.sync += r_word.eq(values[counter_names[k]])
            with m.Else():
                with m.Switch(b_addr):
                    for r in P.CHIP_REGISTERS:
                        with m.Case(r.addr):
                            m.d.sync += r_word.eq(chip_regs[r.name])
        answers = [stage(Mux(r_out, out_rd.data, 0) | r_word, "bus_c_chip")]

        # Stages B, read and C of every core: its configuration port and its counter words.
        reg_sel = CFG_TARGETS.index("regs")
        # Core target k: memory k or the register file (core_reg), whose bus id is its index.
        a_is = [a_target == k for k in range(len(CFG_TARGETS))]
        for c in range(n):
            cfg = mesh.cfg[c]
            mine, counted = a_mine[c], a_counted[c]
            lo = n_chip_words + c * words_per_core
            # One strobe per core target, each its own register: the core needs no decode
            # between them and its memories' ports. A host write of the chip flags clears every
            # core's flags (a broadcast write).
            b_we = stage(Cat((mine & a_we & a_is[k]) | (clear_flags if k == reg_sel else 0)
                             for k in range(len(CFG_TARGETS))), f"bus_b_we_{c}")
            b_re = stage(Cat(mine & ~a_we & a_is[k] for k in range(len(CFG_TARGETS))),
                         f"bus_b_re_{c}")
            b_counted = stage(counted, f"bus_b_counted_{c}")
            # The word registers load only for this core's requests: with the same inputs and
            # enable in every core, yosys would merge the 16 copies into one that spans the die.
            load = mine | counted | clear_flags
            b_caddr = stage(Mux(clear_flags, CORE_REGISTERS.index("flags"), a_addr),
                            f"bus_b_addr_{c}", load)
            b_cdata = stage(Mux(clear_flags, 0, a_data), f"bus_b_data_{c}", load)
            m.d.comb += [cfg.addr.eq(b_caddr), cfg.data.eq(b_cdata),
                         cfg.we.eq(b_we), cfg.re.eq(b_re)]
            r_mem = Signal(name=f"bus_r_mem_{c}")
            r_cnt = Signal(WORD_BITS, name=f"bus_r_counter_{c}")
            m.d.sync += [r_mem.eq(b_re.any()), r_cnt.eq(0)]
            with m.If(b_counted):
                with m.Switch(b_caddr):
                    for k in range(lo, lo + words_per_core):
                        with m.Case(k):
                            m.d.sync += r_cnt.eq(values[counter_names[k]])
            answers.append(stage(Mux(r_mem, cfg.rdata, 0) | r_cnt, f"bus_c_core_{c}"))

        # A RUN starts only once every write has landed (in stage B), so that its first step
        # never meets a configuration write.
        # `bus_b_write` is the OR of those stage B writes, kept at the chip: it equals
        # any(b_writes) | b_set_step | b_clear | b_inject.
        b_write = stage(a_core_write | clear_flags
                        | (a_valid & a_we & ((a_target == tid["inject"])
                                             | (a_chip_reg & (a_addr == P.register("step").addr)))),
                        "bus_b_write")
        m.d.comb += run_ready.eq(~(a_valid | b_write) if staged else 1)

        # Stage D: the answer. A read is answered 1 + 4 * registered_bus cycles after it is
        # accepted.
        r_valid = Signal()
        m.d.sync += r_valid.eq(b_read)
        m.d.comb += [
            bus.rvalid.eq(stage(stage(r_valid, "bus_c_valid"), "bus_d_valid")),
            bus.rdata.eq(stage(any_of(answers), "bus_d_data")),
        ]
        return m


class Chip(wiring.Component):
    """The neurotile chip: a :class:`~neurotile.hdl.hostport.HostPort` in front of a :class:`ChipEngine`.

    Everything (loading memories, injecting input packets, running steps, reading output packets,
    counters and flags) goes through the host protocol of :mod:`neurotile.hdl.protocol` on the two
    byte streams; a board wraps them in a UART, a co-simulation drives them directly.

    Parameters
    ----------
    arch : Arch
    image : ChipImage, optional
        Initial memory contents (zeros if omitted; a host can load an image with
        :meth:`~neurotile.hdl.protocol.HostClient.load_image` instead).
    frame_timeout : int
        Idle cycles after which the host port drops a partial frame.
    max_payload : int
        The host port's payload buffer in bytes.
    registered_bus : bool
        See :class:`ChipEngine`.

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the host (``rx.ready`` is the host port's).
    tx : ``Out(stream.Signature(8))``
        Bytes to the host; the byte and ``valid`` stay until ``ready``.
    engine : ChipEngine
    host_port : HostPort

    Raises
    ------
    NeurotileTypeError, NeurotileValueError, ImageError
        From :class:`ChipEngine` and :class:`~neurotile.hdl.hostport.HostPort`.
    """

    def __init__(self, arch, image=None, *, frame_timeout=DEFAULT_FRAME_TIMEOUT,
                 max_payload=P.DEFAULT_MAX_PAYLOAD, registered_bus=True):
        if not isinstance(arch, Arch):
            self._MustUse__silence = True
            raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
        try:
            self.host_port = HostPort(arch, frame_timeout=frame_timeout, max_payload=max_payload)
            self.engine = ChipEngine(arch, image, registered_bus=registered_bus)
        except Exception:
            self._MustUse__silence = True
            raise
        self.arch = arch
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.host_port = self.host_port
        m.submodules.engine = self.engine
        wiring.connect(m, self.host_port.bus, self.engine.bus)
        wiring.connect(m, wiring.flipped(self.rx), self.host_port.rx)
        wiring.connect(m, self.host_port.tx, wiring.flipped(self.tx))
        return m
