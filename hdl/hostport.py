"""The host port: frame parser, command executor and response generator of the host protocol.

The protocol (framing, commands, statuses, registers, bus targets) is defined once in
:mod:`neurotile.hdl.protocol`; :class:`~neurotile.hdl.protocol.HostPortModel` is this block's
golden model, transaction for transaction. Towards the chip the port is a master on the **host
bus** (:class:`HostBusSignature`), which the chip top implements.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileTypeError, NeurotileValueError
from . import protocol as P

__all__ = ["HostPort", "HostBusSignature", "request_layout", "run_layout",
           "DEFAULT_FRAME_TIMEOUT", "CLEAR_CHIP_REGISTERS"]

#: Default ``frame_timeout``: 2^20 idle cycles (87 ms at 12 MHz, about 90 byte times at 1 Mbaud).
DEFAULT_FRAME_TIMEOUT = 1 << 20
#: Chip registers CLEAR_STATE writes with 0, in this order (consecutive bus addresses).
CLEAR_CHIP_REGISTERS = ("step", "flags")
if [P.register(n).addr for n in CLEAR_CHIP_REGISTERS] != [0, 1]:   # pragma: no cover
    raise RuntimeError("CLEAR_STATE writes chip registers 0 and 1 with one loop")


def request_layout(arch):
    """Layout of a host-bus request (the ``payload`` of ``HostBusSignature.req``).

    ========  =========================  ==========================================================
    field     width                      meaning
    ========  =========================  ==========================================================
    target    clog2(13)                  index into :data:`~neurotile.hdl.protocol.TARGETS`
    core      clog2(n_cores)             core index y * mesh_w + x (0 for chip-level targets)
    addr      max clog2(target depth)    word address within the target
    we        1                          1: write ``data``; 0: read (answered on ``rdata``)
    data      max target word width      word to write, in its low bits, masked to the target's
                                         width (output entries: packet | offset << 8*packet bytes)
    ========  =========================  ==========================================================
    """
    target_bits, core_bits, addr_bits, data_bits = P.bus_widths(arch)
    return data.StructLayout({"target": target_bits, "core": core_bits, "addr": addr_bits,
                              "we": 1, "data": data_bits})


def run_layout(arch):
    """Layout of a run request: ``steps`` (u16, >= 1) and ``n_inject`` (packets buffered)."""
    return data.StructLayout({"steps": 16, "n_inject": arch.count_bits(arch.host_in_depth)})


class HostBusSignature(wiring.Signature):
    """The host bus, from the host port's side (the chip top uses ``In(HostBusSignature(arch))``).

    Members
    -------
    req : ``Out(stream.Signature(request_layout(arch)))``
        One memory, register or buffer access per handshake (``valid & ready``). A write takes
        effect when it is accepted (visible to any later request). ``ready`` may depend on
        ``valid``.
    rdata : ``In(data_bits)``; rvalid : ``In(1)``
        The answer to a read: ``rvalid`` high for exactly one cycle, at least one cycle after the
        read was accepted, with the word in ``rdata`` (bits above the target's width are ignored).
        The host port never has more than one read outstanding and issues no request while it
        waits.
    run : ``Out(stream.Signature(run_layout(arch)))``
        Run ``steps`` steps; the first step injects entries 0 .. ``n_inject - 1`` of the input
        buffer (target ``inject``). The chip clears its output buffer (``n_output``,
        ``out_dropped``) when it accepts the request.
    run_done : ``In(1)``
        One-cycle pulse, at least one cycle after ``run`` was accepted, once the last step is
        complete and every counter, flag and register of it is readable. The host port issues no
        request between accepting ``run`` and ``run_done``.

    Targets (``req.target``), all word addressed, see :data:`~neurotile.hdl.protocol.TARGETS`:
    0..7 the core memories (ids as the bits of ``NeuronCore``'s ``cfg.we``/``cfg.re``),
    8 ``core_reg`` (0 n_neurons, 1 n_axons), 9 ``chip_reg`` (0 step, 1 flags: a write clears
    every sticky flag and its step, 2 n_output, 3 out_dropped; read-only ones are never
    written), 10 ``inject`` (write only),
    11 ``output`` (read only: packet in the low ``8 * packet bytes`` bits, step offset u16
    above), 12 ``counter`` (read only, :func:`~neurotile.hdl.protocol.counter_map`). Requests
    are only issued between runs and always in range.
    """

    def __init__(self, arch):
        if not isinstance(arch, Arch):
            raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
        self.arch = arch
        self.target_bits, self.core_bits, self.addr_bits, self.data_bits = P.bus_widths(arch)
        super().__init__({
            "req": Out(stream.Signature(request_layout(arch))),
            "rdata": In(self.data_bits),
            "rvalid": In(1),
            "run": Out(stream.Signature(run_layout(arch))),
            "run_done": In(1),
        })

    def __eq__(self, other):
        return type(other) is HostBusSignature and other.arch == self.arch

    def __hash__(self):
        return hash(self.arch)


def _at_most(value, bound):
    """``value <= bound``, or a constant 1 when ``value``'s width cannot exceed ``bound`` (no
    always-true comparison in the netlist)."""
    return Const(1) if bound >= (1 << len(value)) - 1 else value <= bound


def _crc_taps():
    """For each bit j of the next CRC, the bits i of ``crc ^ byte`` whose XOR it is (CRC-8 is linear)."""
    taps = []
    for j in range(8):
        taps.append([i for i in range(8) if P.crc8(bytes([1 << i])) >> j & 1])
    return taps


def _crc_next(crc, byte):
    """CRC-8/0x07 of one more byte, MSB first: eight XOR trees (the byte-wide shift register)."""
    c = crc ^ byte
    bits = []
    for taps in _crc_taps():
        bit = c[taps[0]]
        for i in taps[1:]:
            bit = bit ^ c[i]
        bits.append(bit)
    return Cat(*bits)


class HostPort(wiring.Component):
    """The chip's host port (docs/architecture.md section 9).

    Receives command frames on ``rx``, checks them (CRC, command, length, arguments, input-buffer
    space), executes them as transactions on ``bus`` and sends exactly one response frame per
    frame on ``tx``. ``rx`` is not ready while a command executes or its response is sent; ``tx``
    honours back-pressure (``valid`` and the byte stay until ``ready``).

    The request payload (up to ``max_payload`` bytes) is held in a byte memory until the CRC byte
    has been checked, so a corrupt frame never reaches the bus; its first 8 bytes are also kept in
    a register as the command's arguments. A frame in which no byte arrives for ``frame_timeout``
    consecutive cycles, between its SYNC and its CRC byte, is dropped with a TRUNCATED response.
    Bytes received outside a frame, other than SYNC, are counted (``skipped`` in PING).

    The request checks are pipelined, so the host port stays off the chip's critical path. Done
    combinationally from the frame registers, the byte count ``count * item bytes`` (a multiplier),
    the compares and adders behind it and the state machine's decision were in series: the slowest
    path of the whole chip on the ECP5 (22 ns, 45 MHz at every mesh size). They now run in three
    register stages, every cycle, from the frame registers (final from the CRC byte's state on):
    command decode, range checks and the multiplier's operands; the multiplier alone; the compares
    with LEN and the payload buffer. The decision is taken three cycles after the CRC byte
    arrives, so responses start two cycles later than a combinational check would allow: no bus
    transaction and no chip step is timed from a frame's end, and the host waits for the
    response anyway. The multiplier (17 x 4 bits) stays: both open flows put it in a DSP
    (MULT18X18D, SB_MAC16), where it costs fewer LUTs than a shift-and-add byte count (yosys,
    host port alone: about 1000 against 1120 LUT4 on the ECP5, 1140 against 1220 on the iCE40
    with ``-dsp``; without DSPs the shift-and-add would be 45 LUTs smaller).

    Parameters
    ----------
    arch : Arch
    frame_timeout : int
        Idle cycles after which a partial frame is dropped (>= 1).
    max_payload : int
        Payload buffer in bytes (16 .. 65535): the longest request payload accepted and the
        longest response payload sent.

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the host.
    tx : ``Out(stream.Signature(8))``
        Bytes to the host.
    bus : ``Out(HostBusSignature(arch))``
        The host bus towards the chip top.

    Raises
    ------
    NeurotileTypeError
        ``arch`` is not an Arch, or a parameter not an int.
    NeurotileValueError
        ``frame_timeout`` or ``max_payload`` out of range.
    """

    def __init__(self, arch, *, frame_timeout=DEFAULT_FRAME_TIMEOUT,
                 max_payload=P.DEFAULT_MAX_PAYLOAD):
        try:
            if not isinstance(arch, Arch):
                raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
            if isinstance(frame_timeout, bool) or not isinstance(frame_timeout, int):
                raise NeurotileTypeError(f"frame_timeout must be an int, not {frame_timeout!r}")
            if not 1 <= frame_timeout <= 1 << 32:
                raise NeurotileValueError(f"frame_timeout must be between 1 and 2**32 cycles, "
                                          f"not {frame_timeout!r}")
            P._check_max_payload(max_payload)
        except Exception:
            self._MustUse__silence = True
            raise
        self.arch = arch
        self.frame_timeout = frame_timeout
        self.max_payload = max_payload
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "bus": Out(HostBusSignature(arch)),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        info = P.target_info(a)
        tid = {name: t.id for name, t in info.items()}
        mp = self.max_payload
        rx, tx, bus = self.rx, self.tx, self.bus
        sig = bus.signature
        pb = info["inject"].nbytes
        N = a.neurons_per_core

        # -- payload buffer ----------------------------------------------------------------------
        m.submodules.payload = buf = Memory(shape=8, depth=mp, init=[])
        wp = buf.write_port()
        rp = buf.read_port()

        # -- receive-side registers -----------------------------------------------------------------
        cmd = Signal(8)
        length = Signal(16)
        idx = Signal(16)                       # payload bytes received
        arg = Signal(8 * P.ARG_BYTES)          # the first payload bytes: the command's header
        crc = Signal(8)                        # running CRC (receive, then transmit)
        crc_ok = Signal()
        timer = Signal(range(self.frame_timeout + 1))
        skipped = Signal(32)
        level = Signal(range(a.host_in_depth + 1))   # packets in the host input buffer

        # -- execution registers ------------------------------------------------------------------
        max_count = max(0xFFFF, info["acc"].depth, len(P.CHIP_REGISTERS))
        ping_size = sum(f.size for f in P.command("PING").response)
        status = Signal(8)
        resp_len = Signal(16)
        hdr_i = Signal(2)
        target = Signal(sig.target_bits)
        core = Signal(sig.core_bits)
        addr = Signal(sig.addr_bits)
        count = Signal(range(max_count + 1))   # items left
        ib = Signal(range(max(16, ping_size + 1)))   # bytes per item
        byte_i = Signal(range(max(16, ping_size + 1)))
        ptr = Signal(range(mp + 1))            # payload read pointer
        zero = Signal()                        # write loop writes zeros (CLEAR_STATE)
        local = Signal()                       # response item preloaded in shreg (no bus read)
        shreg = Signal(max(sig.data_bits, 8 * ping_size))
        wdata = Signal(64)
        clr_core = Signal(range(max(2, a.n_cores)))
        clr_phase = Signal(2)

        def argf(cmd_name, field):
            c = P.command(cmd_name)
            off = c.field_offset(field)
            size = next(f.size for f in c.request if f.name == field)
            return arg[8 * off:8 * (off + size)]

        # The word mask of the current target, for bus writes and read answers.
        mask = Signal(sig.data_bits)
        with m.Switch(target):
            for name, t in info.items():
                with m.Case(t.id):
                    m.d.comb += mask.eq(t.mask)

        m.d.comb += [
            rp.addr.eq(ptr),
            wp.addr.eq(idx),
            wp.data.eq(rx.payload),
            bus.req.payload.target.eq(target),
            bus.req.payload.core.eq(core),
            bus.req.payload.addr.eq(addr),
            bus.req.payload.data.eq(wdata & mask),
            bus.run.payload.steps.eq(argf("RUN", "steps")),
            bus.run.payload.n_inject.eq(level),
        ]

        # -- request checks ------------------------------------------------------------------------
        # These mirror protocol.check_request, which states the rules. A three-stage pipeline runs
        # every cycle from the frame registers (cmd, length, arg: final from the CRC state on;
        # `level` only changes after CHECK): stage 1 decodes the command, the range checks and the
        # byte count's operands, stage 2 multiplies, stage 3 compares the byte count with LEN and
        # the payload buffer. CHECK, entered three cycles after the CRC state at the earliest,
        # sees only registered flags (see the class docstring for why).
        known = Signal()
        has_items = Signal()                   # variable length: header + count * item bytes
        item_known = Signal()                  # the item size is known (a valid memory id)
        has_resp = Signal()
        arg_ok = Signal()
        ovf = Signal()
        hdr_size = Signal(8)
        c_count = Signal(17)
        c_ib = Signal(range(max(16, ping_size + 1)))
        fits = Signal()                        # the byte count must be <= max_payload (a read)

        def items(count_v, ib_v):
            """The command's items: ``count_v`` (a field, or a constant) of ``ib_v`` bytes."""
            m.d.comb += [c_count.eq(count_v), c_ib.eq(ib_v)]

        def memory_checks(name):
            mem, maddr, mcount = argf(name, "memory"), argf(name, "addr"), argf(name, "count")
            range_ok = Signal(name=f"range_ok_{name.lower()}")
            with m.Switch(mem):
                for k, mname in enumerate(P.MEMORIES):
                    with m.Case(k):
                        t = info[mname]
                        items(mcount, t.nbytes)
                        m.d.comb += [item_known.eq(1), range_ok.eq(maddr + mcount <= t.depth)]
            return _at_most(argf(name, "core"), a.n_cores - 1) & item_known & range_ok

        def register_checks(name, write):
            code, rcore = argf(name, "register"), argf(name, "core")
            ok = Signal(name=f"reg_ok_{name.lower()}")
            with m.Switch(code):
                for r in P.REGISTERS:
                    with m.Case(r.code):
                        core_ok = (_at_most(rcore, a.n_cores - 1) if r.scope == "core"
                                   else rcore == 0)
                        if write:
                            value_ok = _at_most(argf(name, "value"), r.maximum(a))
                            m.d.comb += ok.eq(core_ok & value_ok if r.writable else 0)
                        else:
                            m.d.comb += ok.eq(core_ok)
            items(1, 4)
            return ok

        def buffer_checks(name, tname):
            t = info[tname]
            start, rcount = argf(name, "start"), argf(name, "count")
            items(rcount, t.nbytes)
            m.d.comb += fits.eq(1)
            return start + rcount <= t.depth

        with m.Switch(cmd):
            for c in P.COMMANDS:
                with m.Case(c.code):
                    m.d.comb += [known.eq(1), hdr_size.eq(c.header_size),
                                 has_items.eq(c.request_items is not None),
                                 has_resp.eq(bool(c.response or c.response_items))]
                    if c.name == "PING":
                        items(1, ping_size)
                        m.d.comb += arg_ok.eq(1)
                    elif c.name == "WRITE_MEM":
                        m.d.comb += arg_ok.eq(memory_checks(c.name))
                    elif c.name == "READ_MEM":
                        m.d.comb += [arg_ok.eq(memory_checks(c.name)), fits.eq(1)]
                    elif c.name in ("WRITE_REG", "READ_REG"):
                        m.d.comb += arg_ok.eq(register_checks(c.name, c.name == "WRITE_REG"))
                    elif c.name == "INJECT":
                        icount = argf(c.name, "count")
                        items(icount, pb)
                        m.d.comb += [arg_ok.eq(1), item_known.eq(1),
                                     ovf.eq(level + icount > a.host_in_depth)]
                    elif c.name == "RUN":
                        items(len(P.CHIP_REGISTERS), 4)
                        m.d.comb += arg_ok.eq(argf(c.name, "steps") != 0)
                    elif c.name == "READ_OUTPUT":
                        m.d.comb += arg_ok.eq(buffer_checks(c.name, "output"))
                    elif c.name == "READ_COUNTERS":
                        m.d.comb += arg_ok.eq(buffer_checks(c.name, "counter"))
                    elif c.name == "CLEAR_STATE":
                        m.d.comb += arg_ok.eq(1)
                    else:                                     # pragma: no cover
                        raise NotImplementedError(c.name)
        # Stage 1 registers (`_r`), stage 2 (the multiplier between registers) ...
        stage1 = (known, has_items, item_known, has_resp, arg_ok, ovf, hdr_size, fits, c_count,
                  c_ib)
        (known_r, has_items_r, item_known_r, has_resp_r, arg_ok_r, ovf_r, hdr_r, fits_r,
         c_count_r, c_ib_r) = stage1_r = [Signal.like(s, name=f"{s.name}_r") for s in stage1]
        m.d.sync += [r.eq(s) for s, r in zip(stage1, stage1_r)]
        nbytes_r = Signal(21)
        m.d.sync += nbytes_r.eq(c_count_r * c_ib_r)
        # ... and stage 3: LEN against the byte count, the byte count against the payload buffer.
        known_ok, len_ok, arg_ok2, ovf2 = (Signal(name=n) for n in
                                           ("known_ok", "len_ok", "arg_ok2", "ovf2"))
        resp_bytes = Signal(16)
        m.d.sync += [
            known_ok.eq(known_r),
            len_ok.eq(_at_most(length, mp) & Mux(
                has_items_r,
                (length >= hdr_r) & (~item_known_r | (length == hdr_r + nbytes_r)),
                length == hdr_r)),
            arg_ok2.eq(arg_ok_r & (~fits_r | (nbytes_r <= mp))),
            ovf2.eq(ovf_r),
            resp_bytes.eq(Mux(has_resp_r, nbytes_r, 0)),
        ]

        # -- the state machine ----------------------------------------------------------------------
        def respond_error(code):
            """Set up a 1-byte error response (the CMD byte) with status ``code``."""
            m.d.sync += [status.eq(code), resp_len.eq(1), shreg.eq(cmd), count.eq(1), ib.eq(1),
                         byte_i.eq(0), local.eq(1), hdr_i.eq(0)]
            m.next = "RESP_HDR"

        def frame_byte(body):
            """A receive state inside a frame: ``body`` on a byte, the frame timeout otherwise."""
            m.d.comb += rx.ready.eq(1)
            with m.If(rx.valid):
                m.d.sync += timer.eq(0)
                body()
            with m.Elif(timer == self.frame_timeout - 1):
                respond_error(P.Status.TRUNCATED)
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        def start_writes(tname_or_sig, core_v, addr_v, count_v, ib_v, src):
            m.d.sync += [target.eq(tname_or_sig), core.eq(core_v), addr.eq(addr_v),
                         count.eq(count_v), ib.eq(ib_v)]
            if src is None:
                m.d.sync += zero.eq(1)
            else:
                m.d.sync += [zero.eq(0), ptr.eq(src)]
            m.next = "WR_NEXT"

        def start_reads(tname_or_sig, core_v, addr_v, count_v, ib_v):
            m.d.sync += [target.eq(tname_or_sig), core.eq(core_v), addr.eq(addr_v),
                         count.eq(count_v), ib.eq(ib_v), local.eq(0), byte_i.eq(0)]
            m.next = "RESP_HDR"

        rx_byte = rx.payload
        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid):
                    with m.If(rx_byte == P.SYNC_COMMAND):
                        m.d.sync += [cmd.eq(0), crc.eq(0), idx.eq(0), arg.eq(0), timer.eq(0),
                                     length.eq(0)]
                        m.next = "CMD"
                    with m.Else():
                        m.d.sync += skipped.eq(skipped + 1)

            with m.State("CMD"):
                def on_cmd():
                    m.d.sync += [cmd.eq(rx_byte), crc.eq(_crc_next(crc, rx_byte))]
                    m.next = "LEN0"
                frame_byte(on_cmd)

            with m.State("LEN0"):
                def on_len0():
                    m.d.sync += [length[:8].eq(rx_byte), crc.eq(_crc_next(crc, rx_byte))]
                    m.next = "LEN1"
                frame_byte(on_len0)

            with m.State("LEN1"):
                def on_len1():
                    m.d.sync += [length[8:].eq(rx_byte), crc.eq(_crc_next(crc, rx_byte))]
                    with m.If(Cat(length[:8], rx_byte) == 0):
                        m.next = "CRC"
                    with m.Else():
                        m.next = "PAYLOAD"
                frame_byte(on_len1)

            with m.State("PAYLOAD"):
                def on_payload():
                    m.d.comb += wp.en.eq(idx < mp)
                    with m.If(idx < P.ARG_BYTES):
                        m.d.sync += arg.word_select(idx[:3], 8).eq(rx_byte)
                    m.d.sync += [idx.eq(idx + 1), crc.eq(_crc_next(crc, rx_byte))]
                    with m.If(idx == length - 1):
                        m.next = "CRC"
                frame_byte(on_payload)

            with m.State("CRC"):
                def on_crc():
                    m.d.sync += crc_ok.eq(rx_byte == crc)
                    m.next = "CHECK_WAIT1"
                frame_byte(on_crc)

            # Stages 2 and 3 of the request checks.
            with m.State("CHECK_WAIT1"):
                m.next = "CHECK_WAIT2"
            with m.State("CHECK_WAIT2"):
                m.next = "CHECK"

            with m.State("CHECK"):
                with m.If(~crc_ok):
                    respond_error(P.Status.BAD_CRC)
                with m.Elif(~known_ok):
                    respond_error(P.Status.UNKNOWN_COMMAND)
                with m.Elif(~len_ok):
                    respond_error(P.Status.BAD_LENGTH)
                with m.Elif(~arg_ok2):
                    respond_error(P.Status.BAD_ARGUMENT)
                with m.Elif(ovf2):
                    respond_error(P.Status.OVERFLOW)
                with m.Else():
                    m.d.sync += [status.eq(P.Status.OK), hdr_i.eq(0), byte_i.eq(0),
                                 resp_len.eq(resp_bytes)]
                    self._dispatch(m, cmd, argf, c_count, c_ib, tid, level, skipped, shreg,
                                   count, ib, local, clr_core, clr_phase, start_writes,
                                   start_reads, ping_size)

            # -- write loop: `count` words of `ib` bytes from the payload at `ptr` (or zeros) ----------
            with m.State("WR_NEXT"):
                with m.If(count == 0):
                    with m.If(cmd == P.command("CLEAR_STATE").code):
                        m.next = "CLR"
                    with m.Else():
                        m.next = "RESP_HDR"
                with m.Elif(zero):
                    m.d.sync += wdata.eq(0)
                    m.next = "WR_REQ"
                with m.Else():
                    m.d.sync += [wdata.eq(0), byte_i.eq(0)]
                    m.next = "WR_ADDR"
            with m.State("WR_ADDR"):
                m.next = "WR_DATA"                 # the payload memory reads `ptr` this cycle
            with m.State("WR_DATA"):
                m.d.sync += [wdata.word_select(byte_i[:3], 8).eq(rp.data), ptr.eq(ptr + 1)]
                with m.If(byte_i == ib - 1):
                    m.next = "WR_REQ"
                with m.Else():
                    m.d.sync += byte_i.eq(byte_i + 1)
                    m.next = "WR_ADDR"
            with m.State("WR_REQ"):
                m.d.comb += [bus.req.valid.eq(1), bus.req.payload.we.eq(1)]
                with m.If(bus.req.ready):
                    m.d.sync += [addr.eq(addr + 1), count.eq(count - 1)]
                    m.next = "WR_NEXT"

            # -- CLEAR_STATE: zero neuron_state and acc of every core, then step and flags ----------
            with m.State("CLR"):
                with m.Switch(clr_phase):
                    with m.Case(0):
                        start_writes(tid["neuron_state"], clr_core, 0, N, 0, None)
                        m.d.sync += clr_phase.eq(1)
                    with m.Case(1):
                        start_writes(tid["acc"], clr_core, 0, info["acc"].depth, 0, None)
                        with m.If(clr_core == a.n_cores - 1):
                            m.d.sync += clr_phase.eq(2)
                        with m.Else():
                            m.d.sync += [clr_core.eq(clr_core + 1), clr_phase.eq(0)]
                    with m.Case(2):
                        start_writes(tid["chip_reg"], 0, P.register(CLEAR_CHIP_REGISTERS[0]).addr,
                                     len(CLEAR_CHIP_REGISTERS), 0, None)
                        m.d.sync += clr_phase.eq(3)
                    with m.Case(3):
                        m.d.sync += level.eq(0)
                        m.next = "RESP_HDR"

            # -- RUN --------------------------------------------------------------------------------
            with m.State("RUN_REQ"):
                m.d.comb += bus.run.valid.eq(1)
                with m.If(bus.run.ready):
                    m.next = "RUN_WAIT"
            with m.State("RUN_WAIT"):
                with m.If(bus.run_done):
                    m.d.sync += level.eq(0)
                    start_reads(tid["chip_reg"], 0, 0, len(P.CHIP_REGISTERS), 4)

            # -- response: header, `count` items (bus reads or one preloaded item), CRC --------------
            with m.State("RESP_HDR"):
                m.d.comb += tx.valid.eq(1)
                with m.Switch(hdr_i):
                    with m.Case(0):
                        m.d.comb += tx.payload.eq(P.SYNC_RESPONSE)
                    with m.Case(1):
                        m.d.comb += tx.payload.eq(status)
                    with m.Case(2):
                        m.d.comb += tx.payload.eq(resp_len[:8])
                    with m.Case(3):
                        m.d.comb += tx.payload.eq(resp_len[8:])
                with m.If(tx.ready):
                    m.d.sync += [hdr_i.eq(hdr_i + 1),
                                 crc.eq(Mux(hdr_i == 0, 0, _crc_next(crc, tx.payload)))]
                    with m.If(hdr_i == 3):
                        with m.If(count == 0):
                            m.next = "RESP_CRC"
                        with m.Elif(local):
                            m.next = "SEND"
                        with m.Else():
                            m.next = "RD_REQ"
            with m.State("RD_REQ"):
                m.d.comb += bus.req.valid.eq(1)
                with m.If(bus.req.ready):
                    m.next = "RD_WAIT"
            with m.State("RD_WAIT"):
                with m.If(bus.rvalid):
                    m.d.sync += [shreg.eq(bus.rdata & mask), byte_i.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(shreg[:8])]
                with m.If(tx.ready):
                    m.d.sync += [crc.eq(_crc_next(crc, shreg[:8])), shreg.eq(shreg >> 8)]
                    with m.If(byte_i == ib - 1):
                        m.d.sync += [byte_i.eq(0), count.eq(count - 1), addr.eq(addr + 1)]
                        with m.If(count == 1):
                            m.next = "RESP_CRC"
                        with m.Else():
                            m.next = "RD_REQ"
                    with m.Else():
                        m.d.sync += byte_i.eq(byte_i + 1)
            with m.State("RESP_CRC"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(crc)]
                with m.If(tx.ready):
                    m.next = "IDLE"
        return m

    def _dispatch(self, m, cmd, argf, c_count, c_ib, tid, level, skipped, shreg, count, ib,
                  local, clr_core, clr_phase, start_writes, start_reads, ping_size):
        """The OK branch of CHECK: set up the command's write loop, reads or run."""
        a = self.arch
        with m.Switch(cmd):
            for c in P.COMMANDS:
                with m.Case(c.code):
                    n = c.name
                    if n == "PING":
                        const = (P.MAGIC + bytes([P.PROTOCOL_VERSION])
                                 + P.arch_hash(a).to_bytes(4, "little")
                                 + self.max_payload.to_bytes(2, "little"))
                        m.d.sync += [shreg.eq(Cat(Const(int.from_bytes(const, "little"),
                                                        8 * len(const)), skipped)),
                                     count.eq(1), ib.eq(ping_size), local.eq(1)]
                        m.next = "RESP_HDR"
                    elif n == "WRITE_MEM":
                        start_writes(argf(n, "memory"), argf(n, "core"), argf(n, "addr"), c_count,
                                     c_ib, P.command(n).header_size)
                    elif n == "READ_MEM":
                        start_reads(argf(n, "memory"), argf(n, "core"), argf(n, "addr"), c_count,
                                    c_ib)
                    elif n in ("WRITE_REG", "READ_REG"):
                        code = argf(n, "register")
                        chip = code[7]               # bit 7: chip register (core byte is 0)
                        t = Mux(chip, tid["chip_reg"], tid["core_reg"])
                        if n == "WRITE_REG":
                            start_writes(t, argf(n, "core"), code[:7], 1, 4,
                                         P.command(n).field_offset("value"))
                        else:
                            start_reads(t, argf(n, "core"), code[:7], 1, 4)
                    elif n == "INJECT":
                        start_writes(tid["inject"], 0, level, c_count, c_ib,
                                     P.command(n).header_size)
                        m.d.sync += level.eq(level + c_count)
                    elif n == "RUN":
                        m.next = "RUN_REQ"
                    elif n == "READ_OUTPUT":
                        start_reads(tid["output"], 0, argf(n, "start"), c_count, c_ib)
                    elif n == "READ_COUNTERS":
                        start_reads(tid["counter"], 0, argf(n, "start"), c_count, c_ib)
                    elif n == "CLEAR_STATE":
                        m.d.sync += [clr_core.eq(0), clr_phase.eq(0), count.eq(0)]
                        m.next = "CLR"
                    else:                                 # pragma: no cover
                        raise NotImplementedError(n)

