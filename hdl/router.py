"""Five-port mesh router with input FIFOs, dimension-order (XY) routing and round-robin output arbitration.

The exact cycle behaviour is part of the architecture spec; its golden model is
:class:`neurotile.hdl.router_model.RouterModel`, whose module docstring lists the rules.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .bitwise import any_of
from .router_model import BAD, E, L, N, NUM_PORTS, PORT_NAMES, S, W, port_exists
from ..compiler.errors import NeurotileTypeError, NeurotileValueError

__all__ = ["Router", "check_packet_layout"]


def check_packet_layout(packet_layout, *, mesh_w=None, mesh_h=None):
    """Check that ``packet_layout`` can carry mesh packets, and return it.

    Parameters
    ----------
    packet_layout : :class:`amaranth.lib.data.StructLayout`
        Must have unsigned fields ``host`` (1 bit), ``x``, ``y`` and ``index``; other fields are carried untouched.
    mesh_w, mesh_h : int, optional
        If given, ``x`` must hold ``mesh_w - 1`` and ``y`` must hold ``mesh_h - 1``.

    Raises
    ------
    TypeError
        If ``packet_layout`` is not a :class:`~amaranth.lib.data.StructLayout`.
    ValueError
        If a field is missing, signed, or too narrow.
    """
    if not isinstance(packet_layout, data.StructLayout):
        raise NeurotileTypeError(f"`packet_layout` must be an amaranth.lib.data.StructLayout, not {packet_layout!r}")
    fields = {name: field for name, field in packet_layout}
    for name in ("host", "x", "y", "index"):
        if name not in fields:
            raise NeurotileValueError(f"`packet_layout` must have a `{name}` field, not only {sorted(fields)!r}")
        shape = fields[name].shape
        if not isinstance(shape, int) and getattr(shape, "signed", False):
            raise NeurotileValueError(f"`packet_layout` field `{name}` must be unsigned, not {shape!r}")
    if fields["host"].width != 1:
        raise NeurotileValueError(f"`packet_layout` field `host` must be 1 bit wide, not {fields['host'].width}")
    for name, size in (("x", mesh_w), ("y", mesh_h)):
        if size is not None and (size - 1).bit_length() > fields[name].width:
            raise NeurotileValueError(f"`packet_layout` field `{name}` must be at least {(size - 1).bit_length()} bits wide "
                             f"for a mesh of {mesh_w}x{mesh_h}, not {fields[name].width}")
    return packet_layout


class Router(wiring.Component):
    """Mesh router at (``x``, ``y``) of a ``mesh_w`` x ``mesh_h`` mesh.

    One flit is one packet. Ports are numbered 0=N (towards y-1), 1=E (towards x+1), 2=S (towards y+1), 3=W (towards
    x-1), 4=L (local core); the host attaches to router (0, 0)'s W port. Each input port has its own
    :class:`~amaranth.lib.fifo.SyncFIFO` of ``fifo_depth`` entries; outputs are driven combinationally from the FIFO
    heads (no output registers), so a packet pushed into an input FIFO in cycle k can leave in cycle k+1.

    Routing is dimension-order XY: a packet goes E/W until its ``x`` matches, then S/N, then out of L. A packet
    with ``host`` set heads for (0, 0) and leaves there through W. Each output grants the first requesting input
    after the last one it served (round robin, first priority to input 0 after reset); the granted packet moves iff
    the downstream is ready. A packet whose route would leave the mesh (only possible from a corrupt chip image) is
    discarded through an always-ready virtual output with the same arbitration, and sets the sticky ``bad_route``.

    All five input and output ports are always present in the signature, so that every router has the same
    interface. Ports that do not exist at this position (N at y=0, S at y=mesh_h-1, E at x=mesh_w-1, W at x=0
    except at (0, 0)) have no FIFO: their input ``ready`` is 0 and their output ``valid`` is 0, so the mesh can leave
    them unconnected.

    Output payloads are only meaningful while ``valid``. While an output is stalled its ``valid`` stays high, but
    its payload can switch to a newly arrived input that is earlier in round-robin order; every downstream in the
    chip is a FIFO (or the host) whose ``ready`` does not depend on ``valid`` or the payload, so this is safe.

    Parameters
    ----------
    x, y : int
        Router coordinates, ``0 <= x < mesh_w``, ``0 <= y < mesh_h``.
    mesh_w, mesh_h : int
        Mesh size in routers.
    packet_layout : :class:`amaranth.lib.data.StructLayout`
        Packet (flit) layout; see :func:`check_packet_layout`.
    fifo_depth : int
        Entries per input FIFO, at least 1.

    Members
    -------
    inputs : ``In(stream.Signature(packet_layout)).array(5)``
        Input ports, indexed N, E, S, W, L. ``ready`` is the FIFO's ``w_rdy`` (``level != fifo_depth``).
    outputs : ``Out(stream.Signature(packet_layout)).array(5)``
        Output ports, indexed N, E, S, W, L.
    transfers : ``Out(5)``
        Bit ``o`` pulses in each cycle in which a packet leaves through output ``o`` (``valid & ready``), for hop and
        link-utilisation counters.
    idle : ``Out(1)``
        All input FIFOs are empty.
    bad_route : ``Out(1)``
        Sticky: a packet that would have left the mesh has been discarded. Rises the cycle after the discard.
    arb_reset : ``In(1)``
        While high, every round-robin pointer is set back to 4 (L) at the clock edge; the chip asserts it
        at the start of every SPIKE phase so that no step's timing depends on an earlier step.

    Raises
    ------
    TypeError
        If a parameter has the wrong type.
    ValueError
        If a parameter is out of range.
    """

    def __init__(self, *, x, y, mesh_w, mesh_h, packet_layout, fifo_depth=2):
        for name, value in (("mesh_w", mesh_w), ("mesh_h", mesh_h), ("fifo_depth", fifo_depth)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise NeurotileTypeError(f"`{name}` must be an integer, not {value!r}")
            if value < 1:
                raise NeurotileValueError(f"`{name}` must be at least 1, not {value!r}")
        for name, value, size in (("x", x, mesh_w), ("y", y, mesh_h)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise NeurotileTypeError(f"`{name}` must be an integer, not {value!r}")
            if not 0 <= value < size:
                raise NeurotileValueError(f"`{name}` must be in range 0..{size - 1} for a mesh of {mesh_w}x{mesh_h}, "
                                 f"not {value!r}")
        self.x, self.y = x, y
        self.mesh_w, self.mesh_h = mesh_w, mesh_h
        self.packet_layout = check_packet_layout(packet_layout, mesh_w=mesh_w, mesh_h=mesh_h)
        self.fifo_depth = fifo_depth
        #: Which of the five ports exist at this position.
        self.port_exists = tuple(port_exists(x, y, mesh_w, mesh_h, p) for p in range(NUM_PORTS))
        super().__init__({
            "inputs": In(stream.Signature(packet_layout)).array(NUM_PORTS),
            "outputs": Out(stream.Signature(packet_layout)).array(NUM_PORTS),
            "transfers": Out(NUM_PORTS),
            "idle": Out(1),
            "bad_route": Out(1),
            "arb_reset": In(1),
        })

    def _route(self, m, head, valid, requests):
        """Set ``requests[o]`` for the XY output ``o`` of packet view ``head`` while ``valid`` (its FIFO is non-empty).

        ``requests`` maps each output that exists (and :data:`BAD`, if some port is missing) to a 1-bit signal; a
        route towards a missing port sets ``requests[BAD]`` instead.
        """
        def request(p):
            return requests[p if self.port_exists[p] else BAD].eq(1)

        # A host packet heads for (0, 0), whose position relative to this router is known at elaboration time.
        # Comparisons that are constant at this position (x < 0, y < 0) are left out.
        # Likewise x > self.x where self.x is the largest value the field holds (the far edge of a power-of-two mesh).
        host_port = W if self.x > 0 else N if self.y > 0 else W
        x_max, y_max = (1 << len(head.x)) - 1, (1 << len(head.y)) - 1
        with m.If(valid):
            with m.If(head.host):
                m.d.comb += request(host_port)
            if self.x < x_max:
                with m.Elif(head.x > self.x):
                    m.d.comb += request(E)
            if self.x > 0:
                with m.Elif(head.x < self.x):
                    m.d.comb += request(W)
            if self.y < y_max:
                with m.Elif(head.y > self.y):
                    m.d.comb += request(S)
            if self.y > 0:
                with m.Elif(head.y < self.y):
                    m.d.comb += request(N)
            with m.Else():
                m.d.comb += request(L)

    def elaborate(self, platform):
        m = Module()
        width = self.packet_layout.size
        inputs = [i for i in range(NUM_PORTS) if self.port_exists[i]]
        # Arbitrated outputs: the existing ones, plus the always-ready BAD discard port if some port is missing.
        arbitrated = [o for o in range(NUM_PORTS) if self.port_exists[o]]
        if not all(self.port_exists):
            arbitrated.append(BAD)

        def port_name(p):
            return PORT_NAMES[p].lower() if p < NUM_PORTS else "bad"

        # Input FIFOs. `requests[i][o]`: FIFO i is non-empty and its head packet routes to output o.
        # Missing input ports keep ready = 0, missing output ports keep valid = 0 (reset values of the ports).
        fifos, heads, head_valid, requests = {}, {}, {}, {}
        for i in inputs:
            name = port_name(i)
            fifo = fifos[i] = m.submodules[f"fifo_{name}"] = SyncFIFO(width=width, depth=self.fifo_depth)
            heads[i] = data.View(self.packet_layout, fifo.r_data)
            head_valid[i] = fifo.r_rdy
            requests[i] = {o: Signal(name=f"request_{name}_{port_name(o)}") for o in arbitrated}
            m.d.comb += [
                fifo.w_data.eq(self.inputs[i].payload),
                fifo.w_en.eq(self.inputs[i].valid),
                self.inputs[i].ready.eq(fifo.w_rdy),
            ]
            self._route(m, heads[i], head_valid[i], requests[i])

        m.d.comb += self.idle.eq(~any_of(head_valid.values()))

        # Output arbiters.
        pop_terms = {i: [] for i in inputs}
        for o in arbitrated:
            name = port_name(o)
            last = Signal(NUM_PORTS, init=1 << L, name=f"last_{name}")     # one-hot: input served last
            grant = Signal(NUM_PORTS, name=f"grant_{name}")                # one-hot: input granted now
            transfer = Signal(name=f"transfer_{name}")
            # Round robin: the first requester in the order last+1, last+2, ..., last+5 (mod 5).
            for prev in range(NUM_PORTS):
                if prev == 0:
                    case = m.If(last[prev])
                elif prev < NUM_PORTS - 1:
                    case = m.Elif(last[prev])
                else:
                    case = m.Else()                                        # last[4], the reset value
                with case:
                    order = [(prev + k) % NUM_PORTS for k in range(1, NUM_PORTS + 1)]
                    for n, i in enumerate(j for j in order if j in requests):
                        with (m.If if n == 0 else m.Elif)(requests[i][o]):
                            m.d.comb += grant.eq(1 << i)
            if o < NUM_PORTS:
                port = self.outputs[o]
                m.d.comb += [
                    port.valid.eq(grant.any()),
                    port.payload.eq(any_of(Mux(grant[i], heads[i].as_value(), 0) for i in inputs)),
                    transfer.eq(port.valid & port.ready),
                    self.transfers[o].eq(transfer),
                ]
            else:
                m.d.comb += transfer.eq(grant.any())
                with m.If(transfer):
                    m.d.sync += self.bad_route.eq(1)
            with m.If(transfer):
                m.d.sync += last.eq(grant)
            with m.If(self.arb_reset):
                m.d.sync += last.eq(1 << L)                                # start of a SPIKE phase
            for i in inputs:
                pop_terms[i].append(transfer & grant[i])

        # An input only ever requests one output, so at most one of its pop terms is set.
        for i in inputs:
            m.d.comb += fifos[i].r_en.eq(any_of(pop_terms[i]))

        return m
