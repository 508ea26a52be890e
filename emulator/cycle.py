"""The cycle-accurate engine: docs/architecture.md sections 6, 7 and 8, clock by clock.

Every step runs the UPDATE phase on all cores with :func:`.neuron.lif_update` (it always lasts
``arch.update_cycles``), then simulates the SPIKE phase one clock cycle at a time: the fan-out unit
of every core (NEXT / INDEX / EMIT / DONE), the host injector (START / EMIT / DONE), every router
(five input FIFOs, XY route, one round-robin arbiter per output), every core input FIFO, the
synapse unit of every core (IDLE / AXON / SYN) and its accumulate pipeline, until the mesh is
quiescent; then the barrier and the controller cycles. The result is the same :class:`RunResult`
as the other engines, plus the cycle-level counters (:data:`~.result.COUNTERS_CYCLE`).

The SPIKE-phase cycle loop is one function over flat integer arrays (:func:`_spike_phase`). With
``backend="numba"`` it is compiled with ``numba.njit``; with ``backend="python"`` the very same
function runs as plain Python (slow, but it needs nothing beyond numpy and is what the numba build
is checked against).

How one cycle is evaluated
--------------------------
Section 7: "All decisions in a cycle are taken from the state at the start of that cycle". The
loop therefore first lets every router decide its transfers from the start-of-cycle FIFO levels
(grants and downstream room) without changing anything, then steps the synapse units, the fan-out
units and the host injector (each reads only state that nothing earlier in the same cycle has
changed: the synapse unit its core FIFO, a fan-out unit its router's L input, the injector router
(0, 0)'s W input), and finally commits the router transfers. FIFOs are ring buffers whose write
position is ``(head + level) mod depth``, so a pop and a push in the same cycle commute; a FIFO's
room is always judged on its start-of-cycle level, so a pop never makes room for a push in the
same cycle, and a word pushed in cycle k is first seen at a head in cycle k + 1.

Skipping cycles
---------------
Once every fan-out unit and the host injector are DONE and every FIFO is empty, no unit can
interact with another any more: each busy synapse unit just finishes its current packet, one
synapse per cycle. The engine then finishes those packets at once, with exactly the counts,
accumulator additions and quiescence cycle that the cycle-by-cycle loop would produce.

Round-robin pointers
--------------------
The arbiters' ``last[o]`` pointers are reset to 4 (L) at the start of every SPIKE phase (the
router's ``arb_reset`` input), so a step's cycles depend only on the chip state and the step's
inputs. :attr:`CycleEngine.router_last` holds their values at the end of the last step, for
inspection.
"""

import numpy as np

from ..compiler.errors import EmulatorError, NeurotileTypeError
from .neuron import lif_update
from .result import COUNTERS_CHIP, COUNTERS_CYCLE, COUNTERS_PER_CORE, RunResult, wrap_counters
from .state import ChipState
from .backends import numba_available, resolve_backend  # noqa: F401 (re-exported)
from .tables import ChipTables, concat_ranges

__all__ = ["CycleEngine", "BACKENDS", "TRACE_KINDS", "TRACE_DTYPE", "numba_available",
           "route_table", "grant_table", "downstream"]

#: Backends :class:`CycleEngine` accepts.
BACKENDS = ("auto", "numba", "python")

# Router ports (section 6) and the virtual discard port of a route that leaves the mesh.
N_PORT, E_PORT, S_PORT, W_PORT, L_PORT, BAD_PORT = 0, 1, 2, 3, 4, 5
# Fan-out unit, host injector and synapse unit states (section 7).
FO_NEXT, FO_INDEX, FO_EMIT, FO_DONE = 0, 1, 2, 3
INJ_START, INJ_EMIT, INJ_DONE = 0, 1, 2
SY_IDLE, SY_AXON, SY_SYN = 0, 1, 2

# Engine-internal packet encoding: a packet in a FIFO is one int64, host (bit 0) | x (4 bits) |
# y (4 bits) | index. This is not the chip's layout (whose fields are unpacked once from the image);
# x and y are at most 4 bits wide on any mesh (x_bits, y_bits <= 4 for mesh sizes up to 16), and the
# low 9 bits (host, x, y) are all a router needs to route the packet: they index ``route_tab``.
_PK_X_SHIFT, _PK_Y_SHIFT, _PK_INDEX_SHIFT, _PK_XY_MASK = 1, 5, 9, 0xF
_PK_KEY_MASK = (1 << _PK_INDEX_SHIFT) - 1
# Downstream of a router output (``down_r``): a router number >= 0, or one of the sinks below.
_DN_CORE, _DN_HOST, _DN_BAD = -1, -2, -3

#: Kinds of trace event, by code.
TRACE_KINDS = ("inject", "transfer", "discard", "consume")
#: One trace event. ``kind`` indexes :data:`TRACE_KINDS`:
#: ``inject``: a fan-out unit (``port`` 4) or the host injector (router 0, ``port`` 3) pushed the
#: packet into that input FIFO of ``router``; ``transfer``: the packet left ``router`` through
#: output ``port`` (0..4; port 3 of router 0 is the host exit); ``discard``: the packet's route
#: left the mesh at ``router`` (``port`` 5) and it was dropped (``bad_route``); ``consume``: the
#: synapse unit of core ``router`` popped it from its input FIFO (``port`` 4).
TRACE_DTYPE = np.dtype([("cycle", np.int64), ("kind", np.int8), ("router", np.int32),
                        ("port", np.int8), ("host", np.int8), ("x", np.int16), ("y", np.int16),
                        ("index", np.int64)])

# Per-core kernel outputs (columns of ``core_out``).
_PACKETS_OUT, _PACKETS_IN, _SYNOPS, _FANOUT_BUSY, _SYN_BUSY = range(5)
# Chip-wide kernel outputs (entries of ``misc``).
_P_Q, _HOST_IN, _HOST_OUT, _HOPS, _BAD_AXON, _BAD_ROUTE, _N_TRACE = range(7)


def _spike_phase(t, mesh_w, mesh_h, depth, cdepth, D, acc_bits, acc_latency,
                 fo_base, fo_count, fo_off, fo_pk, spk_off, spk_n, host_pk,
                 n_axons, axon_off, axon_base, axon_count,
                 syn_off, syn_target, syn_value, syn_delay,
                 acc, last, route_tab, grant_tab, down_r, down_p,
                 fifo_buf, fifo_rt, fifo_head, fifo_lvl, cf_buf, cf_head, cf_lvl,
                 core_out, link, misc, skip_tail, trace_on,
                 tr_cycle, tr_kind, tr_router, tr_port, tr_pk):
    """Simulate one SPIKE phase cycle by cycle (section 7). Plain Python, numba-compilable.

    Parameters
    ----------
    t : int
        The step (selects accumulator slots ``(t + delay) mod D``).
    mesh_w, mesh_h, depth, cdepth, D, acc_bits, acc_latency : int
        Mesh size, ``fifo_depth``, ``core_fifo_depth``, ``max_delay``, ``acc_bits``,
        ``ACC_LATENCY``.
    fo_base, fo_count : int64 [n_cores, N]
        Fan-out index of every neuron.
    fo_off : int64 [n_cores + 1]; fo_pk : int64 [total fan-out words]
        Fan-out words, engine-encoded packets.
    spk_off : int64 [n_cores + 1]; spk_n : int64 [spikes]
        Each core's spike queue (local neuron numbers in increasing order).
    host_pk : int64 [packets]
        The step's host input packets, in injection order.
    n_axons, axon_off, axon_base, axon_count, syn_off, syn_target, syn_value, syn_delay
        Axon and synapse tables (:class:`~.tables.ChipTables`); ``syn_value`` is
        ``weight << wexp``, ``syn_delay`` the delay in steps.
    acc : int64 [n_cores, D, N]
        Accumulator rings, updated in place (wrapping to ``acc_bits``).
    last : int64 [n_cores, 6]
        Round-robin pointers of the five outputs and the discard port, updated in place.
    route_tab : int64 [n_cores, 512]
        Output (0..4, or 5 for a route off the mesh) of a packet at each router, indexed by the
        packet's low 9 bits (host, x, y); see :func:`route_table`.
    grant_tab : int64 [5, 32]
        The round-robin grant for a pointer ``last`` and a mask of requesting inputs; see
        :func:`grant_table`.
    down_r, down_p : int64 [n_cores, 6]
        What each output feeds: router ``down_r`` input ``down_p``, or ``_DN_CORE`` (the core
        input FIFO), ``_DN_HOST`` (the host exit) or ``_DN_BAD`` (the discard port).
    fifo_buf, fifo_rt, fifo_head, fifo_lvl : int64 [n_cores, 5, depth] (twice), [n_cores, 5] (twice)
        Router input FIFOs (empty on entry and on return); ``fifo_rt`` holds the output each
        stored packet requests, computed when it is pushed.
    cf_buf, cf_head, cf_lvl : int64 [n_cores, cdepth], [n_cores], [n_cores]
        Core input FIFOs (empty on entry and on return).
    core_out : int64 [n_cores, 5]
        Out (zeroed on entry): packets_out, packets_in, synops, fanout_busy, syn_busy.
    link : int64 [n_cores, 5]
        Out (zeroed on entry): transfers per router output port.
    misc : int64 [7]
        Out (zeroed on entry): p_q, host_in, host_out, hops, bad_axon, bad_route, trace events.
    skip_tail : bool
        Finish the synapse units' last packets at once when nothing else is left (see the module
        doc); False simulates those cycles one by one (same result, for tests).
    trace_on : bool
        Record packet events into ``tr_*`` (sized by the caller for the worst case).
    """
    n_cores = mesh_w * mesh_h
    acc_half = 1 << (acc_bits - 1)
    acc_mask = (1 << acc_bits) - 1
    d_mask = D - 1                                    # D is a power of two
    n_host = host_pk.shape[0]
    n_tr = 0

    # Unit states at p = 0.
    fo_state = np.zeros(n_cores, np.int64)            # FO_NEXT
    fo_q = spk_off[:-1].copy()                        # next spike-queue entry
    fo_n = np.zeros(n_cores, np.int64)
    fo_ptr = np.zeros(n_cores, np.int64)
    fo_rem = np.zeros(n_cores, np.int64)
    sy_state = np.zeros(n_cores, np.int64)            # SY_IDLE
    sy_axon = np.zeros(n_cores, np.int64)
    sy_ptr = np.zeros(n_cores, np.int64)
    sy_rem = np.zeros(n_cores, np.int64)
    inj_state = INJ_START
    inj_pos = 0
    n_fo_active = n_cores                             # fan-out units not DONE
    n_sy_active = 0                                   # synapse units not IDLE
    occupancy = 0                                     # words in all router and core FIFOs
    r_occ = np.zeros(n_cores, np.int64)               # words in each router's input FIFOs
    pipe_until = -1                                   # last cycle some accumulate pipeline is busy
    # Router transfers decided in a cycle: (router, input, output).
    mv_r = np.zeros(n_cores * 6, np.int64)
    mv_i = np.zeros(n_cores * 6, np.int64)
    mv_o = np.zeros(n_cores * 6, np.int64)
    req = np.zeros(6, np.int64)                       # per output, mask of requesting inputs

    p = 0
    while True:
        # -- barrier: quiescence is judged on the state at the start of cycle p ---------------
        if (n_fo_active == 0 and inj_state == INJ_DONE and occupancy == 0 and n_sy_active == 0
                and pipe_until < p):
            break
        if skip_tail and n_fo_active == 0 and inj_state == INJ_DONE and occupancy == 0:
            # Only synapse units still work, each on its own packet with no FIFO to wait for:
            # finish every one of them now (the exact cycle-by-cycle outcome, see module doc).
            end = p
            for c in range(n_cores):
                s = sy_state[c]
                if s == SY_IDLE:
                    continue
                q = p
                if s == SY_AXON:
                    core_out[c, _SYN_BUSY] += 1
                    core_out[c, _PACKETS_IN] += 1
                    a = sy_axon[c]
                    cnt = 0
                    if a >= n_axons[c]:
                        misc[_BAD_AXON] = 1
                    else:
                        sy_ptr[c] = axon_base[axon_off[c] + a]
                        cnt = axon_count[axon_off[c] + a]
                    sy_rem[c] = cnt
                    q += 1
                rem = sy_rem[c]
                base = syn_off[c] + sy_ptr[c]
                for j in range(base, base + rem):
                    slot = (t + syn_delay[j]) & d_mask
                    n = syn_target[j]
                    acc[c, slot, n] = ((acc[c, slot, n] + syn_value[j] + acc_half) & acc_mask) \
                        - acc_half
                core_out[c, _SYNOPS] += rem
                core_out[c, _SYN_BUSY] += rem
                if rem > 0:
                    # The last synapse enters the pipeline in cycle q + rem - 1.
                    if q + rem - 1 + acc_latency - 1 > pipe_until:
                        pipe_until = q + rem - 1 + acc_latency - 1
                q += rem
                sy_state[c] = SY_IDLE
                sy_rem[c] = 0
                if q > end:
                    end = q
            n_sy_active = 0
            p = end if end > pipe_until + 1 else pipe_until + 1
            break

        # -- routers decide (start-of-cycle levels only; nothing changes yet) ------------------
        n_mv = 0
        for r in range(n_cores):
            if r_occ[r] == 0:
                continue
            for o in range(6):
                req[o] = 0
            for i in range(5):
                if fifo_lvl[r, i] != 0:
                    req[fifo_rt[r, i, fifo_head[r, i]]] |= 1 << i
            for o in range(6):
                mask = req[o]
                if mask == 0:
                    continue
                nr = down_r[r, o]
                if nr >= 0:
                    room = fifo_lvl[nr, down_p[r, o]] < depth
                elif nr == _DN_CORE:
                    room = cf_lvl[r] < cdepth
                else:
                    room = True                       # the host exit, or the discard port
                if room:
                    mv_r[n_mv] = r
                    mv_i[n_mv] = grant_tab[last[r, o], mask]
                    mv_o[n_mv] = o
                    n_mv += 1

        # -- synapse units ----------------------------------------------------------------------
        for c in range(n_cores):
            s = sy_state[c]
            if s == SY_IDLE:
                if cf_lvl[c] > 0:
                    pk = cf_buf[c, cf_head[c]]
                    cf_head[c] = cf_head[c] + 1 if cf_head[c] + 1 < cdepth else 0
                    cf_lvl[c] -= 1
                    occupancy -= 1
                    sy_axon[c] = pk >> _PK_INDEX_SHIFT
                    sy_state[c] = SY_AXON
                    n_sy_active += 1
                    if trace_on:
                        tr_cycle[n_tr] = p
                        tr_kind[n_tr] = 3
                        tr_router[n_tr] = c
                        tr_port[n_tr] = L_PORT
                        tr_pk[n_tr] = pk
                        n_tr += 1
            elif s == SY_AXON:
                core_out[c, _SYN_BUSY] += 1
                core_out[c, _PACKETS_IN] += 1
                a = sy_axon[c]
                cnt = 0
                if a >= n_axons[c]:
                    misc[_BAD_AXON] = 1               # an empty list
                else:
                    sy_ptr[c] = axon_base[axon_off[c] + a]
                    cnt = axon_count[axon_off[c] + a]
                if cnt == 0:
                    sy_state[c] = SY_IDLE
                    n_sy_active -= 1
                else:
                    sy_rem[c] = cnt
                    sy_state[c] = SY_SYN
            else:
                core_out[c, _SYN_BUSY] += 1
                core_out[c, _SYNOPS] += 1
                j = syn_off[c] + sy_ptr[c]
                slot = (t + syn_delay[j]) & d_mask
                n = syn_target[j]
                # The accumulator wraps modulo 2^acc_bits (section 5).
                acc[c, slot, n] = ((acc[c, slot, n] + syn_value[j] + acc_half) & acc_mask) \
                    - acc_half
                pipe_until = p + acc_latency - 1      # busy to the end of p + ACC_LATENCY - 1
                sy_ptr[c] += 1
                sy_rem[c] -= 1
                if sy_rem[c] == 0:
                    sy_state[c] = SY_IDLE
                    n_sy_active -= 1

        # -- fan-out units ----------------------------------------------------------------------
        if n_fo_active > 0:
            for c in range(n_cores):
                s = fo_state[c]
                if s == FO_DONE:
                    continue
                core_out[c, _FANOUT_BUSY] += 1
                if s == FO_NEXT:
                    if fo_q[c] == spk_off[c + 1]:
                        fo_state[c] = FO_DONE
                        n_fo_active -= 1
                    else:
                        fo_n[c] = spk_n[fo_q[c]]
                        fo_q[c] += 1
                        fo_state[c] = FO_INDEX
                elif s == FO_INDEX:
                    cnt = fo_count[c, fo_n[c]]
                    if cnt == 0:
                        fo_state[c] = FO_NEXT
                    else:
                        fo_ptr[c] = fo_base[c, fo_n[c]]
                        fo_rem[c] = cnt
                        fo_state[c] = FO_EMIT
                elif fifo_lvl[c, L_PORT] < depth:     # EMIT, and the L input has room
                    pk = fo_pk[fo_off[c] + fo_ptr[c]]
                    pos = fifo_head[c, L_PORT] + fifo_lvl[c, L_PORT]
                    if pos >= depth:
                        pos -= depth
                    fifo_buf[c, L_PORT, pos] = pk
                    fifo_rt[c, L_PORT, pos] = route_tab[c, pk & _PK_KEY_MASK]
                    fifo_lvl[c, L_PORT] += 1
                    r_occ[c] += 1
                    occupancy += 1
                    core_out[c, _PACKETS_OUT] += 1
                    if trace_on:
                        tr_cycle[n_tr] = p
                        tr_kind[n_tr] = 0
                        tr_router[n_tr] = c
                        tr_port[n_tr] = L_PORT
                        tr_pk[n_tr] = pk
                        n_tr += 1
                    fo_ptr[c] += 1
                    fo_rem[c] -= 1
                    if fo_rem[c] == 0:
                        fo_state[c] = FO_NEXT

        # -- host injector (router (0, 0), W input) ---------------------------------------------
        if inj_state == INJ_START:
            inj_state = INJ_EMIT if n_host > 0 else INJ_DONE
        elif inj_state == INJ_EMIT and fifo_lvl[0, W_PORT] < depth:
            pk = host_pk[inj_pos]
            pos = fifo_head[0, W_PORT] + fifo_lvl[0, W_PORT]
            if pos >= depth:
                pos -= depth
            fifo_buf[0, W_PORT, pos] = pk
            fifo_rt[0, W_PORT, pos] = route_tab[0, pk & _PK_KEY_MASK]
            fifo_lvl[0, W_PORT] += 1
            r_occ[0] += 1
            occupancy += 1
            misc[_HOST_IN] += 1
            if trace_on:
                tr_cycle[n_tr] = p
                tr_kind[n_tr] = 0
                tr_router[n_tr] = 0
                tr_port[n_tr] = W_PORT
                tr_pk[n_tr] = pk
                n_tr += 1
            inj_pos += 1
            if inj_pos == n_host:
                inj_state = INJ_DONE

        # -- routers commit the transfers decided above -----------------------------------------
        for m in range(n_mv):
            r = mv_r[m]
            i = mv_i[m]
            o = mv_o[m]
            pk = fifo_buf[r, i, fifo_head[r, i]]
            fifo_head[r, i] = fifo_head[r, i] + 1 if fifo_head[r, i] + 1 < depth else 0
            fifo_lvl[r, i] -= 1
            r_occ[r] -= 1
            last[r, o] = i
            if trace_on:
                tr_cycle[n_tr] = p
                tr_kind[n_tr] = 2 if o == BAD_PORT else 1
                tr_router[n_tr] = r
                tr_port[n_tr] = o
                tr_pk[n_tr] = pk
                n_tr += 1
            nr = down_r[r, o]
            if nr == _DN_BAD:
                misc[_BAD_ROUTE] = 1
                occupancy -= 1
                continue
            link[r, o] += 1
            if nr == _DN_CORE:
                pos = cf_head[r] + cf_lvl[r]
                if pos >= cdepth:
                    pos -= cdepth
                cf_buf[r, pos] = pk
                cf_lvl[r] += 1
            elif nr == _DN_HOST:
                misc[_HOST_OUT] += 1
                occupancy -= 1
            else:
                misc[_HOPS] += 1
                np_ = down_p[r, o]
                pos = fifo_head[nr, np_] + fifo_lvl[nr, np_]
                if pos >= depth:
                    pos -= depth
                fifo_buf[nr, np_, pos] = pk
                fifo_rt[nr, np_, pos] = route_tab[nr, pk & _PK_KEY_MASK]
                fifo_lvl[nr, np_] += 1
                r_occ[nr] += 1
        p += 1

    misc[_P_Q] = p
    misc[_N_TRACE] = n_tr


_KERNELS = {"python": _spike_phase}


def route_table(arch):
    """The output every possible packet requests at every router (section 6).

    A host packet (``host = 1``) is routed as if to core (0, 0) and leaves (0, 0) through W;
    otherwise, towards (dx, dy): ``dx > x`` E, ``dx < x`` W, else ``dy > y`` S, ``dy < y`` N, else
    L. A route through a port that does not exist at the router (off the mesh) becomes port 5, the
    discard port (``bad_route``).

    Returns
    -------
    ndarray of int64, shape [n_cores, 512]
        Indexed by router ``y * mesh_w + x`` and the packet key ``host | dx << 1 | dy << 5``.
    """
    n = arch.n_cores
    x = (np.arange(n) % arch.mesh_w)[:, None]
    y = (np.arange(n) // arch.mesh_w)[:, None]
    key = np.arange(1 << _PK_INDEX_SHIFT)[None, :]
    host = (key & 1) == 1
    dx = np.where(host, 0, (key >> _PK_X_SHIFT) & _PK_XY_MASK)
    dy = np.where(host, 0, (key >> _PK_Y_SHIFT) & _PK_XY_MASK)
    out = np.select([dx > x, dx < x, dy > y, dy < y, host],
                    [E_PORT, W_PORT, S_PORT, N_PORT, W_PORT], L_PORT)
    # Ports that exist: N needs y > 0, E x < w - 1, S y < h - 1, W x > 0 (or the host at (0, 0)).
    exists = np.stack([y > 0, x < arch.mesh_w - 1, y < arch.mesh_h - 1,
                       (x > 0) | ((x == 0) & (y == 0)), np.ones_like(x, bool)], -1)[:, 0, :]
    ok = np.take_along_axis(exists, out, axis=1)
    return np.where(ok, out, BAD_PORT).astype(np.int64)


def grant_table():
    """Round-robin grants (section 6): ``table[last, mask]`` is the first input with its bit set in
    ``mask`` in the order ``last + 1, last + 2, ...`` (mod 5), or -1 for an empty mask.

    Returns
    -------
    ndarray of int64, shape [5, 32]
    """
    table = np.full((5, 32), -1, np.int64)
    for last in range(5):
        for mask in range(1, 32):
            for k in range(1, 6):
                if mask >> ((last + k) % 5) & 1:
                    table[last, mask] = (last + k) % 5
                    break
    return table


def downstream(arch):
    """What each router output feeds (section 6): ``(down_r, down_p)``, each int64 [n_cores, 6].

    N feeds input S of the router at y - 1, E input W at x + 1, S input N at y + 1, W input E at
    x - 1; L feeds the core input FIFO (``down_r = -1``), W of (0, 0) the host (-2), and port 5 and
    every port off the mesh discard (-3).
    """
    n, w = arch.n_cores, arch.mesh_w
    down_r = np.full((n, 6), _DN_BAD, np.int64)
    down_p = np.zeros((n, 6), np.int64)
    for r in range(n):
        x, y = r % w, r // w
        for o, (nx, ny, port) in enumerate(((x, y - 1, S_PORT), (x + 1, y, W_PORT),
                                            (x, y + 1, N_PORT), (x - 1, y, E_PORT))):
            if 0 <= nx < w and 0 <= ny < arch.mesh_h:
                down_r[r, o] = ny * w + nx
                down_p[r, o] = port
        down_r[r, L_PORT] = _DN_CORE
    down_r[0, W_PORT] = _DN_HOST
    return down_r, down_p


def _kernel(backend):
    """The SPIKE-phase kernel of ``backend`` ("numba" compiles it on first use, cached on disk)."""
    if backend not in _KERNELS:
        import numba
        _KERNELS[backend] = numba.njit(cache=True, nogil=True)(_spike_phase)
    return _KERNELS[backend]


def _encode(arch, host, x, y, index):
    """Engine-internal packet words from field arrays (see ``_PK_*``).

    ``x`` and ``y`` keep the ``x_bits`` and ``y_bits`` the chip's packet carries (a value that
    does not fit cannot be packed into a valid image; this is what the wires would hold).
    """
    host, x, y, index = (np.asarray(f, np.int64) for f in (host, x, y, index))
    x = x & ((1 << arch.x_bits) - 1)
    y = y & ((1 << arch.y_bits) - 1)
    return (host & 1) | (x << _PK_X_SHIFT) | (y << _PK_Y_SHIFT) | (index << _PK_INDEX_SHIFT)


def _decode_trace(cycle, kind, router, port, pk):
    out = np.zeros(cycle.size, TRACE_DTYPE)
    out["cycle"] = cycle
    out["kind"] = kind
    out["router"] = router
    out["port"] = port
    out["host"] = pk & 1
    out["x"] = (pk >> _PK_X_SHIFT) & _PK_XY_MASK
    out["y"] = (pk >> _PK_Y_SHIFT) & _PK_XY_MASK
    out["index"] = pk >> _PK_INDEX_SHIFT
    return out


class CycleEngine:
    """Runs a chip image clock cycle by clock cycle (``mode="cycle"``).

    Spikes, state and every functional counter are those of the other engines; in addition each
    step's length in cycles, its UPDATE and SPIKE phase lengths and the per-core busy cycles of
    the fan-out and synapse units are counted exactly as the RTL counts them (docs/architecture.md
    sections 6 to 8).

    Parameters
    ----------
    image : ChipImage
        The image to run; it is read, never changed.
    backend : {"auto", "numba", "python"}
        ``"numba"`` compiles the SPIKE-phase cycle loop (a few seconds the first time, then cached
        on disk); ``"python"`` runs the same loop as plain Python, slowly; ``"auto"`` picks numba
        when it can be imported.

    Members
    -------
    image : ChipImage
    arch : Arch
    tables : ChipTables
    backend : str
        The backend in use, ``"numba"`` or ``"python"``.
    router_last : ndarray of int64, shape [n_cores, 6]
        The round-robin pointer ``last[o]`` of every router output (N, E, S, W, L, and the discard
        port of off-mesh routes). Reset to 4 by :meth:`reset`, kept from step to step.

    Raises
    ------
    NeurotileTypeError
        ``image`` is not a ChipImage.
    EmulatorError
        Unknown backend, or ``backend="numba"`` without numba installed.
    """

    mode = "cycle"

    def __init__(self, image, backend="auto"):
        from ..compiler.image import ChipImage
        if not isinstance(image, ChipImage):
            raise NeurotileTypeError(f"image must be an nt.ChipImage, not {type(image).__name__}")
        backend = resolve_backend(backend, BACKENDS, "python")
        self.image = image
        self.backend = backend
        a = self.arch = image.arch
        tb = self.tables = ChipTables(image)
        n_cores, N = a.n_cores, a.neurons_per_core
        c64 = np.ascontiguousarray
        self._fo_pk = c64(_encode(a, tb.fo_host, tb.fo_x, tb.fo_y, tb.fo_index))
        self._in_pk = c64(_encode(a, tb.in_pk_host, tb.in_pk_x, tb.in_pk_y, tb.in_pk_index))
        self._tabs = dict(
            fo_base=c64(tb.fo_base), fo_count=c64(tb.fo_count), fo_off=c64(tb.fo_off),
            n_axons=c64(tb.n_axons), axon_off=c64(tb.axon_off), axon_base=c64(tb.axon_base),
            axon_count=c64(tb.axon_count), syn_off=c64(tb.syn_off),
            syn_target=c64(tb.syn_target), syn_value=c64(tb.syn_value),
            syn_delay=c64(tb.syn_delay))
        self._route_tab = route_table(a)
        self._grant_tab = grant_table()
        self._down_r, self._down_p = downstream(a)
        # FIFOs: empty between steps, reused.
        self._fifo_buf = np.zeros((n_cores, 5, a.fifo_depth), np.int64)
        self._fifo_rt = np.zeros((n_cores, 5, a.fifo_depth), np.int64)
        self._fifo_head = np.zeros((n_cores, 5), np.int64)
        self._fifo_lvl = np.zeros((n_cores, 5), np.int64)
        self._cf_buf = np.zeros((n_cores, a.core_fifo_depth), np.int64)
        self._cf_head = np.zeros(n_cores, np.int64)
        self._cf_lvl = np.zeros(n_cores, np.int64)
        self._in_use = np.arange(N)[None, :] < tb.n_neurons[:, None]
        self.router_last = np.zeros((n_cores, 6), np.int64)
        self._skip_tail = True        # tests turn it off to check the skip is exact
        self.reset()

    def reset(self):
        """Put every round-robin pointer back to its reset value 4 (L), as a chip reset does."""
        self.router_last[:] = L_PORT

    # -- input checks ----------------------------------------------------------------------------

    def _check(self, state, channels, probes):
        if not isinstance(state, ChipState):
            raise NeurotileTypeError(f"state must be a ChipState, not {type(state).__name__}")
        channels = np.asarray(channels)
        n_channels = self.tables.n_channels
        if channels.dtype != bool:
            raise EmulatorError(f"channels must be a bool array, not an array of {channels.dtype}")
        if channels.ndim != 2 or channels.shape[1] != n_channels:
            raise EmulatorError(f"channels must have shape [steps, {n_channels}] (the input "
                                f"channels of {list(self.image.inputs)} concatenated), not "
                                f"{channels.shape}")
        a = self.arch
        want = (a.n_cores, a.neurons_per_core)
        if state.u.shape != want or state.v.shape != want or \
                state.acc.shape != (a.n_cores, a.max_delay, a.neurons_per_core):
            raise EmulatorError(f"state does not belong to this image: u, v must be {want} and "
                                f"acc {(a.n_cores, a.max_delay, a.neurons_per_core)}, not "
                                f"{state.u.shape}, {state.v.shape}, {state.acc.shape}")
        if not (state.acc.dtype == np.int64 and state.acc.flags.c_contiguous):
            raise EmulatorError("state.acc must be a C-contiguous int64 array "
                                "(ChipState.from_image makes one)")
        checked = []
        for probe in probes:
            try:
                name, var = probe
            except (TypeError, ValueError):
                raise EmulatorError(f"a probe must be a (population, 'u' or 'v') pair, "
                                    f"not {probe!r}") from None
            if name not in self.image.populations:
                raise EmulatorError(f"probe names population {name!r}, which the image does not "
                                    f"hold; populations: {', '.join(self.image.populations)}")
            if var not in ("u", "v"):
                raise EmulatorError(f"probe variable must be 'u' or 'v', not {var!r}")
            checked.append((name, var))
        # Host packets per step, checked before anything runs so that an error changes nothing.
        n_in = channels.astype(np.int64) @ self.tables.in_count if n_channels else \
            np.zeros(channels.shape[0], np.int64)
        if n_in.size and n_in.max() > self.arch.host_in_depth:
            k = int(np.argmax(n_in))
            raise EmulatorError(f"step {int(state.t) + k} injects {int(n_in[k])} input packets, "
                                f"more than the host port's host_in_depth "
                                f"({self.arch.host_in_depth}); spread the input spikes over more "
                                f"steps or use an Arch with a larger host_in_depth")
        return channels, checked

    # -- running ---------------------------------------------------------------------------------

    def run(self, state, channels, probes=(), progress=None, trace=False):
        """Run ``len(channels)`` steps from ``state``, which is advanced in place.

        Parameters
        ----------
        state : ChipState
        channels : ndarray of bool, shape [steps, n_channels]
            Input spikes; the channels of the image's input groups concatenated in
            ``image.inputs`` order.
        probes : sequence of (population name, "u" or "v")
            State recorded after every step's UPDATE (after reset).
        progress : callable, optional
            Called as ``progress(steps_done, steps)`` after every step.
        trace : bool
            Also return the packet events of every step (see :data:`TRACE_DTYPE`) as
            ``result.trace``, a list with one structured array per step in event order.

        Returns
        -------
        RunResult
            ``mode="cycle"``: spikes of every population, the probes, the counters of
            :data:`~.result.COUNTERS_PER_CORE`, :data:`~.result.COUNTERS_CHIP`,
            :data:`~.result.COUNTERS_CYCLE` and ``link``, and the sticky flags.

        Raises
        ------
        EmulatorError
            Channels of the wrong dtype or shape, unknown probes, or more input packets in one
            step than the host port's ``host_in_depth`` (then nothing has run).
        """
        channels, probes = self._check(state, channels, probes)
        a, tb = self.arch, self.tables
        kernel = _kernel(self.backend)
        steps = channels.shape[0]
        n_cores, N, D = a.n_cores, a.neurons_per_core, a.max_delay
        start = int(state.t)
        in_use = self._in_use
        spiked = np.zeros((steps, n_cores, N), bool)
        probe_out = {}
        where = {name: tb.populations[name] for name, _ in probes}
        for name, var in probes:
            probe_out[f"{name}.{var}"] = np.zeros((steps, where[name][0].size), np.int64)
        counters = {k: np.zeros((steps, n_cores), np.int64) for k in COUNTERS_PER_CORE}
        counters.update({k: np.zeros(steps, np.int64) for k in COUNTERS_CHIP})
        counters.update({k: np.zeros(steps, np.int64) for k in COUNTERS_CYCLE[:3]})
        counters.update({k: np.zeros((steps, n_cores), np.int64) for k in COUNTERS_CYCLE[3:]})
        counters["link"] = np.zeros((steps, n_cores, 5), np.int64)
        traces = [] if trace else None

        acc = state.acc
        # Every SPIKE phase drains the mesh; start empty even after an interrupted run.
        for fifo in (self._fifo_head, self._fifo_lvl, self._cf_head, self._cf_lvl):
            fifo[:] = 0
        core_out = np.zeros((n_cores, 5), np.int64)
        link = np.zeros((n_cores, 5), np.int64)
        misc = np.zeros(7, np.int64)
        empty = np.zeros(0, np.int64)
        spk_off = np.zeros(n_cores + 1, np.int64)
        hops_max = a.mesh_w + a.mesh_h + 2            # events per packet, at most (see trace)

        for k in range(steps):
            t = start + k
            # -- UPDATE phase: every core, neurons in use only (sections 4, 5, 7) ---------------
            slot = t % D
            acc_slot = acc[:, slot, :]
            u_new, v_new, spike, sat = lif_update(
                state.u, state.v, acc_slot, tb.du, tb.dv, tb.vth, tb.bias_mant, tb.bias_exp,
                decay_mode=a.decay_mode, reset_mode=a.reset_mode)
            state.u[:] = np.where(in_use, u_new, state.u)
            state.v[:] = np.where(in_use, v_new, state.v)
            acc_slot[in_use] = 0
            spike &= in_use
            if np.any(sat & in_use):
                state.raise_flag("acc_sat", t)
            spiked[k] = spike
            counters["updates"][k] = tb.n_neurons
            fired = spike.sum(axis=1)
            counters["spikes"][k] = fired
            for name, var in probes:
                core, local = where[name]
                probe_out[f"{name}.{var}"][k] = (state.u if var == "u" else state.v)[core, local]

            # -- SPIKE phase ----------------------------------------------------------------------
            np.cumsum(fired, out=spk_off[1:])
            spk_n = np.nonzero(spike)[1].astype(np.int64)   # row-major: core, then increasing n
            ch = np.flatnonzero(channels[k])
            host_pk = self._in_pk[concat_ranges(tb.in_base[ch], tb.in_count[ch])] if ch.size else empty
            if trace:
                n_pk = int(tb.fo_count[spike].sum()) + host_pk.size
                cap = n_pk * hops_max
                tr = [np.zeros(cap, np.int64) for _ in range(5)]
            else:
                tr = [empty] * 5
            core_out[:] = 0
            link[:] = 0
            misc[:] = 0
            self.router_last[:] = L_PORT      # arb_reset at the start of every SPIKE phase
            kernel(t, a.mesh_w, a.mesh_h, a.fifo_depth, a.core_fifo_depth, D, a.acc_bits,
                   a.ACC_LATENCY, self._tabs["fo_base"], self._tabs["fo_count"],
                   self._tabs["fo_off"], self._fo_pk, spk_off, spk_n, host_pk,
                   self._tabs["n_axons"], self._tabs["axon_off"], self._tabs["axon_base"],
                   self._tabs["axon_count"], self._tabs["syn_off"], self._tabs["syn_target"],
                   self._tabs["syn_value"], self._tabs["syn_delay"],
                   acc, self.router_last, self._route_tab, self._grant_tab,
                   self._down_r, self._down_p,
                   self._fifo_buf, self._fifo_rt, self._fifo_head, self._fifo_lvl,
                   self._cf_buf, self._cf_head, self._cf_lvl,
                   core_out, link, misc, self._skip_tail, bool(trace), *tr)
            p_q = int(misc[_P_Q])
            spike_cycles = p_q + a.BARRIER_LATENCY
            counters["packets_out"][k] = core_out[:, _PACKETS_OUT]
            counters["packets_in"][k] = core_out[:, _PACKETS_IN]
            counters["synops"][k] = core_out[:, _SYNOPS]
            counters["fanout_busy"][k] = core_out[:, _FANOUT_BUSY]
            counters["syn_busy"][k] = core_out[:, _SYN_BUSY]
            counters["link"][k] = link
            counters["host_in"][k] = misc[_HOST_IN]
            counters["host_out"][k] = misc[_HOST_OUT]
            counters["hops"][k] = misc[_HOPS]
            counters["update_cycles"][k] = a.update_cycles
            counters["spike_cycles"][k] = spike_cycles
            counters["cycles"][k] = a.update_cycles + spike_cycles + a.STEP_OVERHEAD
            if misc[_BAD_AXON]:
                state.raise_flag("bad_axon", t)
            if misc[_BAD_ROUTE]:
                state.raise_flag("bad_route", t)
            if spike_cycles > a.step_timeout:
                state.raise_flag("step_timeout", t)
            if trace:
                n = int(misc[_N_TRACE])
                traces.append(_decode_trace(*(x[:n] for x in tr)))
            state.t = t + 1
            if progress is not None:
                progress(k + 1, steps)

        spikes = {name: spiked[:, core, local] for name, (core, local) in tb.populations.items()}
        result = RunResult(mode=self.mode, steps=steps, start_step=start, spikes=spikes,
                           probes=probe_out, counters=wrap_counters(counters, self.arch),
                           flags=dict(state.flags),
                           flag_step=dict(state.flag_step))
        if trace:
            result.trace = traces
        return result
