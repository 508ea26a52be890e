"""Cycle-exact golden model of the mesh router (:mod:`neurotile.hdl.router`).

This module is plain Python on purpose: it is the reference the RTL is checked against in Amaranth's simulator, and
the reference the emulator's vectorised cycle mode reimplements. Every rule below is part of the architecture spec.

Cycle rules
-----------
Ports are numbered ``0=N`` (towards y-1), ``1=E`` (towards x+1), ``2=S`` (towards y+1), ``3=W`` (towards x-1),
``4=L`` (local core). The host attaches to router (0, 0)'s W port in both directions.

1. Every existing input port owns a FIFO of ``fifo_depth`` entries. Its ``ready`` is ``level != depth`` taken from
   the *start-of-cycle* level: a pop in the same cycle does not make room for a push.
   A packet pushed in cycle k is at the FIFO head (and can leave the router) in cycle k+1.
2. The head packet ``p`` of a non-empty FIFO requests exactly one output, given by :func:`xy_route`. A request for an
   output that does not exist at this router (off the mesh edge) goes to the virtual port :data:`BAD` instead.
3. Each output ``o`` (and :data:`BAD`) keeps a pointer ``last[o]``, reset to 4 (``L``). The grant goes to the first
   requesting input in the order ``last[o]+1, last[o]+2, ..., last[o]+5`` (mod 5).
4. Output ``o`` is valid when it has a grant, with the granted head as payload. If its downstream is ready the packet
   transfers this cycle: the input FIFO pops and ``last[o]`` becomes the granted input. Otherwise nothing moves and
   ``last[o]`` is kept. The :data:`BAD` port is always ready; a transfer there discards the packet and sets the
   sticky ``bad_route`` flag (visible from the next cycle on).
5. ``idle`` is true when every input FIFO is empty (start of cycle).

Packets are handled as ``int`` bit patterns of the packet :class:`~amaranth.lib.data.StructLayout`; the fields are
read with the offsets and widths of that same layout (see :func:`unpack_packet`).
"""

from collections import deque

__all__ = [
    "N", "E", "S", "W", "L", "BAD", "NUM_PORTS", "PORT_NAMES", "OPPOSITE",
    "pack_packet", "unpack_packet", "port_exists", "xy_route", "RouterModel", "MeshModel",
]

#: Port numbers. ``BAD`` is the virtual discard port for packets that would leave the mesh.
N, E, S, W, L, BAD = range(6)
#: Number of real ports of a router.
NUM_PORTS = 5
#: Port names, indexed by port number.
PORT_NAMES = ("N", "E", "S", "W", "L")
#: The input port of the neighbour that an output port feeds (N of one router feeds S of the one above, ...).
OPPOSITE = {N: S, E: W, S: N, W: E}


def pack_packet(packet_layout, **fields):
    """Pack field values into the ``int`` bit pattern of ``packet_layout``.

    Parameters
    ----------
    packet_layout : :class:`amaranth.lib.data.StructLayout`
        Packet layout; the field offsets and widths come from it.
    **fields : int
        Field values; missing fields are 0. Values are truncated to the field width, as the hardware would.

    Returns
    -------
    int
        The packed packet.
    """
    bits = 0
    for name, value in fields.items():
        field = packet_layout[name]
        bits |= (int(value) & ((1 << field.width) - 1)) << field.offset
    return bits


def unpack_packet(packet_layout, bits):
    """Unpack an ``int`` bit pattern of ``packet_layout`` into a ``dict`` of unsigned field values.

    Parameters
    ----------
    packet_layout : :class:`amaranth.lib.data.StructLayout`
        Packet layout; the field offsets and widths come from it.
    bits : int
        Packed packet.

    Returns
    -------
    dict of str to int
    """
    return {name: (bits >> field.offset) & ((1 << field.width) - 1) for name, field in packet_layout}


def port_exists(x, y, mesh_w, mesh_h, port):
    """Whether output (and input) ``port`` of router (``x``, ``y``) is connected to something.

    N exists for ``y > 0``, S for ``y < mesh_h - 1``, E for ``x < mesh_w - 1``, W for ``x > 0`` and at (0, 0), where
    it is the host link. L always exists.
    """
    if port == N:
        return y > 0
    if port == E:
        return x < mesh_w - 1
    if port == S:
        return y < mesh_h - 1
    if port == W:
        return x > 0 or (x == 0 and y == 0)
    if port == L:
        return True
    raise ValueError(f"`port` must be one of 0..4, not {port!r}")


def xy_route(x, y, host, dest_x, dest_y):
    """Dimension-order (X then Y) route of one packet at router (``x``, ``y``), ignoring the mesh edges.

    A host packet (``host`` set) heads for (0, 0) and leaves there through W (the host link) instead of L.

    Returns
    -------
    int
        One of :data:`N`, :data:`E`, :data:`S`, :data:`W`, :data:`L`.
    """
    if host:
        dest_x, dest_y = 0, 0
    if dest_x > x:
        return E
    if dest_x < x:
        return W
    if dest_y > y:
        return S
    if dest_y < y:
        return N
    return W if host else L


class RouterModel:
    """Cycle-exact model of one router.

    Parameters
    ----------
    x, y : int
        Router coordinates.
    mesh_w, mesh_h : int
        Mesh size; decides which edge ports exist (see :func:`port_exists`).
    packet_layout : :class:`amaranth.lib.data.StructLayout`
        Packet layout with at least ``host``, ``x``, ``y`` and ``index`` fields.
    fifo_depth : int
        Entries of each input FIFO.

    Members
    -------
    fifos : list of (:class:`collections.deque` or None)
        Input FIFOs, head at index 0; ``None`` for ports that do not exist (never ready, never valid).
    last : list of int
        Arbitration pointer per output, 6 entries (the 6th is :data:`BAD`), reset to 4.
    bad_route : bool
        Sticky: a packet was discarded because it would leave the mesh.
    transfers : list of bool
        Per output port, whether a packet left through it in the last :meth:`step`.
    """

    def __init__(self, *, x, y, mesh_w, mesh_h, packet_layout, fifo_depth):
        if not isinstance(fifo_depth, int) or fifo_depth < 1:
            raise ValueError(f"`fifo_depth` must be a positive integer, not {fifo_depth!r}")
        self.x, self.y = x, y
        self.mesh_w, self.mesh_h = mesh_w, mesh_h
        self.packet_layout = packet_layout
        self.fifo_depth = fifo_depth
        self.exists = [port_exists(x, y, mesh_w, mesh_h, p) for p in range(NUM_PORTS)]
        self.fifos = [deque() if self.exists[p] else None for p in range(NUM_PORTS)]
        self.last = [L] * (NUM_PORTS + 1)
        self.bad_route = False
        self.transfers = [False] * NUM_PORTS

    def reset_arbitration(self):
        """Set every round-robin pointer back to 4 (L), as ``arb_reset`` does each SPIKE phase."""
        self.last = [L] * (NUM_PORTS + 1)

    def route(self, packet):
        """Output for ``packet`` at this router: a port number, or :data:`BAD` if that port does not exist."""
        f = unpack_packet(self.packet_layout, packet)
        port = xy_route(self.x, self.y, f["host"], f["x"], f["y"])
        return port if self.exists[port] else BAD

    @property
    def idle(self):
        """Whether every input FIFO is empty."""
        return all(not fifo for fifo in self.fifos if fifo is not None)

    def input_ready(self):
        """Per input port, ``ready`` this cycle (from the current, start-of-cycle FIFO levels)."""
        return [fifo is not None and len(fifo) < self.fifo_depth for fifo in self.fifos]

    def grants(self):
        """Per output (6 entries, the last is :data:`BAD`), the granted input port or ``None``."""
        requests = [[] for _ in range(NUM_PORTS + 1)]
        for i, fifo in enumerate(self.fifos):
            if fifo:
                requests[self.route(fifo[0])].append(i)
        grants = []
        for o, requesters in enumerate(requests):
            grant = None
            for k in range(1, NUM_PORTS + 1):
                candidate = (self.last[o] + k) % NUM_PORTS
                if candidate in requesters:
                    grant = candidate
                    break
            grants.append(grant)
        return grants

    def outputs(self):
        """Per output port, the valid payload this cycle or ``None``. Does not depend on downstream ``ready``."""
        return [None if g is None else self.fifos[g][0] for g in self.grants()[:NUM_PORTS]]

    def step(self, inputs_valid_packets, downstream_ready):
        """Advance one clock cycle.

        Parameters
        ----------
        inputs_valid_packets : sequence of (int or None)
            Per input port, the packet offered (``valid``) this cycle, or ``None``.
        downstream_ready : sequence of bool
            Per output port, the downstream ``ready`` this cycle.

        Returns
        -------
        accepted_inputs : list of bool
            Per input port, whether the offered packet was taken (``valid & ready``).
        outputs : list of (int or None)
            Per output port, the payload presented with ``valid`` this cycle, or ``None``. It transferred iff
            ``downstream_ready[o]`` (also recorded in :attr:`transfers`).
        """
        if len(inputs_valid_packets) != NUM_PORTS or len(downstream_ready) != NUM_PORTS:
            raise ValueError(f"`step` needs {NUM_PORTS} inputs and {NUM_PORTS} ready flags, not "
                             f"{len(inputs_valid_packets)} and {len(downstream_ready)}")
        # Everything below is decided from the start-of-cycle state, then committed at the clock edge.
        in_ready = self.input_ready()
        grants = self.grants()
        ready = [bool(r) for r in downstream_ready] + [True]      # the BAD port always accepts
        outputs = [None if g is None else self.fifos[g][0] for g in grants[:NUM_PORTS]]
        accepted = [p is not None and r for p, r in zip(inputs_valid_packets, in_ready)]
        self.transfers = [g is not None and ready[o] for o, g in enumerate(grants[:NUM_PORTS])]
        # Clock edge.
        for o, g in enumerate(grants):
            if g is not None and ready[o]:
                self.fifos[g].popleft()
                self.last[o] = g
                if o == BAD:
                    self.bad_route = True
        for i, packet in enumerate(inputs_valid_packets):
            if accepted[i]:
                self.fifos[i].append(packet)
        return accepted, outputs


class MeshModel:
    """Cycle-exact model of a ``mesh_w`` x ``mesh_h`` mesh of :class:`RouterModel`.

    Output N of (x, y) feeds input S of (x, y-1), E feeds W of (x+1, y), and so on; the host sends into and receives
    from (0, 0).W, and core (x, y) sends into and receives from (x, y).L. Each core and the host have an unbounded
    send queue whose head is offered to the router as a stream (held until accepted).

    Parameters
    ----------
    mesh_w, mesh_h : int
        Mesh size.
    packet_layout : :class:`amaranth.lib.data.StructLayout`
        Packet layout.
    fifo_depth : int
        Entries of each router input FIFO.
    local_ready : callable, optional
        ``local_ready(cycle, x, y) -> bool``: whether core (x, y) accepts a packet this cycle. Default: always.
    host_ready : callable, optional
        ``host_ready(cycle) -> bool``: whether the host accepts a packet this cycle. Default: always.

    Members
    -------
    routers : dict of (int, int) to :class:`RouterModel`
    delivered : dict of (int, int) to list of (int, int)
        Per core, ``(cycle, packet)`` of each packet that left its router's L port.
    host_received : list of (int, int)
        ``(cycle, packet)`` of each packet delivered to the host.
    link_transfers : dict of (int, int) to list of int
        Per router, number of transfers through each output port so far.
    cycle : int
        Number of cycles stepped so far.
    """

    def __init__(self, *, mesh_w, mesh_h, packet_layout, fifo_depth, local_ready=None, host_ready=None):
        for name, value in (("mesh_w", mesh_w), ("mesh_h", mesh_h)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, not {value!r}")
        self.mesh_w, self.mesh_h = mesh_w, mesh_h
        self.packet_layout = packet_layout
        self.local_ready = local_ready if local_ready is not None else (lambda cycle, x, y: True)
        self.host_ready = host_ready if host_ready is not None else (lambda cycle: True)
        self.coords = [(x, y) for y in range(mesh_h) for x in range(mesh_w)]
        self.routers = {(x, y): RouterModel(x=x, y=y, mesh_w=mesh_w, mesh_h=mesh_h, packet_layout=packet_layout,
                                            fifo_depth=fifo_depth) for x, y in self.coords}
        self.core_queues = {c: deque() for c in self.coords}
        self.host_queue = deque()
        self.delivered = {c: [] for c in self.coords}
        self.host_received = []
        self.link_transfers = {c: [0] * NUM_PORTS for c in self.coords}
        self.cycle = 0

    @staticmethod
    def neighbour(x, y, port):
        """Coordinates of the router on the other side of output ``port`` (may be off the mesh)."""
        return {N: (x, y - 1), E: (x + 1, y), S: (x, y + 1), W: (x - 1, y)}[port]

    def reset_arbitration(self):
        """Reset every router's round-robin pointers (the start of a SPIKE phase)."""
        for router in self.routers.values():
            router.reset_arbitration()

    def send(self, x, y, packet):
        """Queue ``packet`` for core (``x``, ``y``) to send into its router's L port."""
        self.core_queues[(x, y)].append(packet)

    def host_send(self, packet):
        """Queue ``packet`` for the host to send into router (0, 0)'s W port."""
        self.host_queue.append(packet)

    @property
    def idle(self):
        """Whether every router FIFO and every send queue is empty."""
        return (all(r.idle for r in self.routers.values()) and not self.host_queue
                and not any(self.core_queues.values()))

    def step(self):
        """Advance the whole mesh one clock cycle."""
        in_ready = {c: r.input_ready() for c, r in self.routers.items()}
        # Downstream ready of every output, from start-of-cycle state only.
        down_ready = {}
        for (x, y), r in self.routers.items():
            ready = [False] * NUM_PORTS
            for o in (N, E, S, W):
                if not r.exists[o]:
                    continue
                if (x, y, o) == (0, 0, W):
                    ready[o] = bool(self.host_ready(self.cycle))
                else:
                    ready[o] = in_ready[self.neighbour(x, y, o)][OPPOSITE[o]]
            ready[L] = bool(self.local_ready(self.cycle, x, y))
            down_ready[(x, y)] = ready
        outputs = {c: r.outputs() for c, r in self.routers.items()}
        # Offered inputs: neighbours' outputs, the core's and the host's queue heads.
        for (x, y), r in self.routers.items():
            offered = [None] * NUM_PORTS
            for i in (N, E, S, W):
                if not r.exists[i]:
                    continue
                if (x, y, i) == (0, 0, W):
                    offered[i] = self.host_queue[0] if self.host_queue else None
                else:
                    offered[i] = outputs[self.neighbour(x, y, i)][OPPOSITE[i]]
            queue = self.core_queues[(x, y)]
            offered[L] = queue[0] if queue else None
            accepted, outs = r.step(offered, down_ready[(x, y)])
            if outs != outputs[(x, y)]:
                raise RuntimeError("router outputs changed within one cycle")   # cannot happen: pure function
            if accepted[L]:
                queue.popleft()
            if (x, y) == (0, 0) and accepted[W]:
                self.host_queue.popleft()
            for o in range(NUM_PORTS):
                if r.transfers[o]:
                    self.link_transfers[(x, y)][o] += 1
            if r.transfers[L]:
                self.delivered[(x, y)].append((self.cycle, outs[L]))
            if (x, y) == (0, 0) and r.transfers[W]:
                self.host_received.append((self.cycle, outs[W]))
        self.cycle += 1

    def run(self, max_cycles):
        """Step until :attr:`idle` or ``max_cycles`` cycles have run; return the number of cycles run."""
        start = self.cycle
        while not self.idle and self.cycle - start < max_cycles:
            self.step()
        return self.cycle - start
