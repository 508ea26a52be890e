"""The functional engine: every spike, state bit and non-cycle counter of the chip, fast.

It computes what docs/architecture.md says a step produces (sections 4, 5, 6 and 8) without
simulating clock cycles. Packets are never queued: the result of the SPIKE phase does not depend
on the order in which packets arrive (accumulators only add, section 5), and every counter that is
not cycle-level is a sum over the packets of the step, each of which follows a fixed XY path.
So at construction the image is flattened, once, into per-source tables (:class:`_Plan`):

- a *source* is a neuron of a core (global index ``core * N + local``) or a host input channel
  (index ``n_cores * N + channel``);
- for each source, its synapses in groups of one delay (one ring slot) each, partitioned by
  destination core so that threads never write the same accumulator. A group whose synapses all
  add the same value keeps only their targets (16 bits on chips of up to 65536 neurons) and the
  value once; the others keep one word per synapse, ``value << 16 | target``;
- for each source, its packets: a list of words (synapses it triggers, destination core or host)
  or, for sources that reach many destinations, a dense row of 8-bit packet and synapse counts
  per destination that the kernel adds with vector instructions.

Per step the engine updates every neuron in use (section 4), then scatter-adds the synapses of
the neurons that fired and of the input channels that spiked into the accumulator ring. The ring
is one flat ``int32`` array ``[D * n_cores * N]``: accumulator additions wrap modulo
``2^acc_bits`` (section 5) and ``acc_bits <= 32``, so adding in 32-bit two's complement and
wrapping to ``acc_bits`` when a slot is read is exact. The packets of the step are summed per
(source router row, destination) and per (source router, destination column); every packet
between two routers takes the same XY path, so the router-port counts follow from these sums
(:func:`_mesh_links`).

Two backends give identical results: a numba kernel that runs whole chunks of steps in one call
(optionally with threads that split the cores; it prefetches the tables of the next sources to
fire, which are scattered over tens of MB for large networks), and a pure-numpy fallback.
"""

import types

import numpy as np

from ..compiler.arch import Arch
from ..compiler.errors import EmulatorError, NeurotileTypeError
from .result import RunResult, wrap_counters
from .state import FLAGS
from .backends import numba_available, resolve_backend  # noqa: F401 (re-exported)
from .tables import ChipTables, concat_ranges

__all__ = ["FunctionalEngine", "BACKENDS"]

#: Backends of :class:`FunctionalEngine`.
BACKENDS = ("auto", "numba", "numpy")

#: Steps per kernel call: bounds the chunk buffers and sets how often progress is reported.
CHUNK = 256

#: A source gets a dense packet row (see :class:`_Plan`) when its packets number at least
#: 1 / DENSE_MIN_FILL of the destinations (cores and the host): the row then takes at most twice
#: the memory of the packet list, and adding it with vector instructions is much faster.
DENSE_MIN_FILL = 4

_F_BAD_AXON = 1 << FLAGS.index("bad_axon")
_F_BAD_ROUTE = 1 << FLAGS.index("bad_route")

# Neuron-model widths (Arch constants; numba folds these module globals into the kernel).
_ACT_SHIFT = Arch.ACT_SHIFT                                   # input << 6 lines up with u
_DECAY_SHIFT = Arch.DECAY_SHIFT                               # 12-bit decay fractions
_INPUT_HALF = 1 << (Arch.STATE_BITS - Arch.ACT_SHIFT - 1)     # sat18: [-2^17, 2^17 - 1]
_STATE_HALF = 1 << (Arch.STATE_BITS - 1)                      # wrap24 / sat24 around 2^23

# Router output ports (section 6).
PORT_N, PORT_E, PORT_S, PORT_W, PORT_L = range(5)


def _wrap(x, bits):
    """Two's-complement wrap of int64 values to ``bits`` bits (a ``bits``-wide register)."""
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) & ((half << np.int64(1)) - 1)) - half


class _Plan:
    """The per-source tables of one image for ``P`` destination partitions (see module doc).

    ``fast``: the layouts of the numba kernel (dense packet rows for sources that reach many
    destinations, targets and one value for groups of synapses that add the same value); the
    numpy backend reads packet lists and one word per synapse.
    """

    def __init__(self, tables, P, fast=False):
        tb = tables
        a = tb.arch
        C, N, D = tb.n_cores, tb.N, tb.D
        W, Hm = a.mesh_w, a.mesh_h
        NT = C * N
        n_ch = tb.n_channels
        S = NT + n_ch
        self.C, self.N, self.D, self.W, self.Hm = C, N, D, W, Hm
        self.NT, self.S, self.n_ch = NT, S, n_ch
        self.acc_bits = a.acc_bits

        # -- neurons in use, in core order, with their resolved profile fields --------------------
        local = np.arange(N)
        in_use = local[None, :] < tb.n_neurons[:, None]             # [C, N]
        act = np.flatnonzero(in_use.ravel())
        self.act_g = act.astype(np.int32)
        self.act_core = (act // N).astype(np.int32)
        du, dv = tb.du.ravel()[act], tb.dv.ravel()[act]
        if a.decay_mode == "loihi":
            # decay(x, d) multiplies |x| by (4096 - d); u uses d = du + 1 (Loihi's ds_offset).
            self.fu, self.fv = 4095 - du, 4096 - dv
        else:
            self.fu, self.fv = du, dv                                  # shift amounts
        self.loihi = a.decay_mode == "loihi"
        self.subtract = a.reset_mode == "subtract"
        self.vth6 = tb.vth.ravel()[act] << a.VTH_SHIFT
        self.bias = tb.bias_mant.ravel()[act] << tb.bias_exp.ravel()[act]
        if not self.loihi:
            # (shift amounts are 0..23; beyond 63 an int64 shift gives what 63 gives)
            self.fu, self.fv = np.minimum(self.fu, 63), np.minimum(self.fv, 63)
        for f in ("fu", "fv", "vth6", "bias"):
            x = getattr(self, f)
            fits = not x.size or (x.min() >= -(1 << 31) and x.max() < 1 << 31)
            setattr(self, f, np.ascontiguousarray(x, np.int32 if fits else np.int64))
        self.n_neurons = tb.n_neurons.astype(np.int64)
        self.core_j0 = (np.cumsum(self.n_neurons) - self.n_neurons).astype(np.int64)

        # -- every packet of every source, in source order ----------------------------------------
        # Neuron sources: their fan-out lists (only neurons in use ever fire).
        fo_start = (tb.fo_off[:-1, None] + tb.fo_base).ravel()
        fo_len = np.where(in_use, tb.fo_count, 0).ravel()
        w_fo = concat_ranges(fo_start, fo_len)
        src_fo = np.repeat(np.arange(NT), fo_len)
        # Channel sources: the host driver's packet lists.
        w_in = concat_ranges(tb.in_base, tb.in_count)
        src_in = NT + np.repeat(np.arange(n_ch), tb.in_count)
        pk_src = np.concatenate([src_fo, src_in]).astype(np.int64)
        pk_host = np.concatenate([tb.fo_host[w_fo], tb.in_pk_host[w_in]]).astype(bool)
        pk_x = np.concatenate([tb.fo_x[w_fo], tb.in_pk_x[w_in]])
        pk_y = np.concatenate([tb.fo_y[w_fo], tb.in_pk_y[w_in]])
        pk_idx = np.concatenate([tb.fo_index[w_fo], tb.in_pk_index[w_in]])
        del w_fo, w_in, src_fo, src_in
        self.src_npk = np.bincount(pk_src, minlength=S).astype(np.int64)
        # The router a packet enters: its core's, or (0, 0) for the host injector.
        src_core = np.where(np.arange(S) < NT, np.arange(S) // N, 0)
        pk_from = src_core[pk_src]

        # Host-bound packets travel as if to core (0, 0) and leave through its W port.
        off_mesh = ~pk_host & ((pk_x >= W) | (pk_y >= Hm))
        dest = np.where(pk_host, C, pk_y * W + pk_x)
        core_pk = ~pk_host & ~off_mesh
        dcore = np.where(core_pk, dest, 0)
        bad_axon = core_pk & (pk_idx >= tb.n_axons[dcore])
        ok = core_pk & ~bad_axon
        ax = (tb.axon_off[dcore] + pk_idx)[ok]
        pk_nsyn = np.zeros(ok.size, np.int64)
        pk_nsyn[ok] = tb.axon_count[ax]
        pk_syn0 = np.zeros(ok.size, np.int64)
        pk_syn0[ok] = tb.syn_off[dcore[ok]] + tb.axon_base[ax]

        flags = np.zeros(S, np.int64)
        np.bitwise_or.at(flags, pk_src[bad_axon], _F_BAD_AXON)
        np.bitwise_or.at(flags, pk_src[off_mesh], _F_BAD_ROUTE)
        self.src_flags = flags
        # Packets sent per spike: packets_out of a neuron's core, host_in of a channel.
        self.act_npk = self.src_npk[act].astype(np.int64)
        self.ch_npk = self.src_npk[NT:].astype(np.int64)

        # -- partitions: destination cores split into P sets of about equal synapse load ----------
        P = max(1, min(int(P), C))
        C1 = C + 1
        load = np.bincount(dcore[ok], weights=pk_nsyn[ok], minlength=C) + 1.0
        cum = np.cumsum(load)
        # (non-decreasing in core order, since every load is positive: contiguous core ranges)
        part_of_core = np.minimum((cum - load) * P // cum[-1], P - 1).astype(np.int64)
        part_of_dest = np.append(part_of_core, P - 1)                 # the host column: last part
        self.P = P
        # Part p owns the destination columns part_dlo[p] .. part_dhi[p] - 1 (cores, then C).
        self.part_dlo = np.searchsorted(part_of_dest, np.arange(P)).astype(np.int64)
        self.part_dhi = np.append(self.part_dlo[1:], C1).astype(np.int64)

        # Packets that would leave the mesh (a corrupt image): their transfers up to the edge.
        self.xl_ptr, self.xl_link, self.xl_cnt = self._off_mesh_links(
            pk_src[off_mesh], pk_from[off_mesh], pk_x[off_mesh], pk_y[off_mesh])
        del pk_x, pk_y, pk_idx, pk_host, pk_from, bad_axon, ok, ax, core_pk

        # Packets routed to a core or to the host, grouped by (partition, source).
        routed = np.flatnonzero(~off_mesh)
        r_src = pk_src[routed]
        del pk_src, off_mesh
        pkey = part_of_dest[dest[routed]] * S + r_src
        pk_order = np.argsort(pkey, kind="stable")
        porder = routed[pk_order]
        pkey = pkey[pk_order]
        del pk_order

        # Dense sources: those whose packets reach a good part of the destinations (most neurons
        # of a randomly connected network) keep a row over all destinations of packed counts
        # ``packets << 8 | synapses``, which the kernel adds with vector instructions (and, per
        # part, the packets towards each destination column); the others keep a list of words.
        npk_src = np.bincount(r_src, minlength=S)
        cand = np.zeros(S, bool) if not fast else npk_src * DENSE_MIN_FILL >= C1
        if cand.any():
            sel = cand[r_src]
            rows = np.cumsum(cand) - 1
            cell = rows[r_src[sel]] * C1 + dest[routed[sel]]
            nd = int(cand.sum())
            # (as 16-bit counts as soon as they are checked: these are the largest temporaries)
            x = np.bincount(cell, minlength=nd * C1).reshape(nd, C1)
            fits = (x.max(axis=1) < 256) & (255 * (Hm + 1) < 1 << 16)
            dn = x.astype(np.uint16)
            x = np.bincount(cell, weights=pk_nsyn[routed[sel]], minlength=nd * C1)
            x = x.reshape(nd, C1)
            fits &= x.max(axis=1) < 256
            dsyn = x.astype(np.uint16)
            del x, sel, cell
            cand[np.flatnonzero(cand)[~fits]] = False
            if not fits.all():
                dn, dsyn = dn[fits], dsyn[fits]
        else:
            dn = dsyn = np.zeros((0, C1), np.uint16)
        nd = dn.shape[0]
        self.n_dense = nd
        self.drow = np.where(cand, np.cumsum(cand) - 1, -1).astype(np.int64)
        # Row of a dense source: C + 1 words packets << 8 | synapses, then per part the packets
        # towards each destination column dx (at most 255 * (Hm + 1): 16 bits).
        self.dense_len = L = C1 + P * W
        rows = np.zeros((nd, L), np.uint16)
        rows[:, :C1] = (dn << 8) | dsyn
        dd = np.append(np.arange(C), 0)            # the host column travels as if to core 0
        for p in range(P):
            for x in range(W):
                cols = np.flatnonzero(dd[self.part_dlo[p]:self.part_dhi[p]] % W == x)
                if cols.size and nd:
                    rows[:, C1 + p * W + x] = dn[:, self.part_dlo[p] + cols].sum(axis=1,
                                                                                dtype=np.int64)
        self.dense_pk = rows.reshape(-1)
        del dn, dsyn, rows, r_src, routed

        # Sparse sources: one word per packet, synapses << 16 | destination (a core, or C for
        # the host).
        sp = np.flatnonzero(~cand[pkey % S])
        self.pk_ptr = np.zeros(P * S + 1, np.int64)
        np.cumsum(np.bincount(pkey[sp], minlength=P * S), out=self.pk_ptr[1:])
        n_max = int(pk_nsyn.max(initial=0))
        word = (pk_nsyn[porder[sp]] << 16) | dest[porder[sp]]
        self.pk_word = word.astype(np.uint32 if n_max < 1 << 16 else np.int64)
        nsyn = pk_nsyn[porder]
        syn0 = pk_syn0[porder]
        pcore = dcore[porder]
        del word, sp, dest, dcore, pk_syn0, pk_nsyn, porder

        # Synapses, grouped like the packets that trigger them and, within a (partition, source),
        # by delay: a group adds into one ring slot, so the inner loop is a plain scatter-add.
        sw = concat_ranges(syn0, nsyn)
        s_key = np.repeat(pkey, nsyn)
        s_core = np.repeat(pcore, nsyn)
        del syn0, pkey, pcore, nsyn
        slot = tb.syn_delay[sw] % D
        if D > 1 and sw.size and slot.min() != slot.max():
            order = np.argsort(s_key * D + slot, kind="stable")
            sw, s_key, slot, s_core = sw[order], s_key[order], slot[order], s_core[order]
            del order
        tgt = s_core * N + tb.syn_target[sw]
        del s_core
        val = tb.syn_value[sw]
        self.n_synapses = int(sw.size)
        # Per step the kernel sums synapses and packets per (source row, destination) packed in
        # one int64 (packets << 32 | synapses): the synapses of a step never reach 2^32.
        if self.n_synapses >= 1 << 32:   # pragma: no cover - 16 GB of synapse words
            raise EmulatorError("the functional engine handles fewer than 2^32 synapse words")
        new_grp = np.ones(sw.size, bool)
        new_grp[1:] = (s_key[1:] != s_key[:-1]) | (slot[1:] != slot[:-1])
        starts = np.flatnonzero(new_grp)
        del new_grp
        G = starts.size
        # Groups whose synapses all add the same value (a constant weight per projection, one
        # synapse) keep just their targets and the value once (in the group table); the others
        # keep one word per synapse: value << 16 | target when both fit 16 bits (chips of up to
        # 65536 neurons), else value << 32 | target. Only the numba kernel reads the former.
        if fast and G:
            uni = np.minimum.reduceat(val, starts) == np.maximum.reduceat(val, starts)
        else:
            uni = np.zeros(G, bool)
        gval = np.where(uni, val[starts] if G else 0, 0)
        in_uni = np.repeat(uni, np.diff(np.append(starts, sw.size)))
        w_tgt, w_val = tgt[~in_uni], val[~in_uni]
        small = not w_val.size or (w_val.min() >= -(1 << 15) and w_val.max() < (1 << 15))
        if NT <= 1 << 16 and small:
            self.syn_word = ((w_val << 16) | w_tgt).astype(np.int32)
            self.syn_shift = 16
        else:
            self.syn_word = ((w_val << 32) | w_tgt).astype(np.int64)
            self.syn_shift = 32
        self.syn_tgt = tgt[in_uni].astype(np.uint16 if NT <= 1 << 16 else np.uint32)
        del val, tgt, w_tgt, w_val
        # The group table, flat: per group (slot, value of a uniform group, start of its words,
        # start of its targets); a last row holds the ends.
        cnt = np.diff(np.append(starts, sw.size))
        grp = np.zeros((G + 1, 4), np.int64)
        grp[:G, 0] = slot[starts]
        grp[:G, 1] = gval
        np.cumsum(np.where(uni, 0, cnt), out=grp[1:, 2])
        np.cumsum(np.where(uni, cnt, 0), out=grp[1:, 3])
        self.grp = grp.reshape(-1)
        del in_uni, gval, cnt, grp, uni
        grp_ptr = np.zeros(P * S + 1, np.int64)
        np.cumsum(np.bincount(s_key[starts], minlength=P * S), out=grp_ptr[1:])
        # Per (partition, source): the first of its groups and of its packet words, side by side
        # (one cache line for both ranges).
        self.hdr = np.stack([grp_ptr, self.pk_ptr], axis=1).reshape(-1)
        if not fast:            # the numpy backend: every synapse's word, per (part, source)
            self.syn_ptr = np.zeros(P * S + 1, np.int64)
            np.cumsum(np.bincount(s_key, minlength=P * S), out=self.syn_ptr[1:])
        del grp_ptr, sw, s_key, slot, starts
        big = self.syn_word.nbytes + self.syn_tgt.nbytes + self.pk_word.nbytes \
            + self.dense_pk.nbytes >= PREFETCH_MIN_BYTES
        self.prefetch = PREFETCH_AHEAD if big else 0

        # Per destination (C: the host, routed as to core (0, 0)): its column dx, and the index
        # dx * Hm * Hm + dy of its column path counts (plus sy * Hm for the source row).
        self.dest_dx = (dd % W).astype(np.int64)
        self.dest_v = ((dd % W) * Hm * Hm + dd // W).astype(np.int64)
        # Per source core: its row of the per-step (source row, destination) sums, and its
        # (sy * W + sx) * W offset into the row path counts.
        self.core_rowb = ((np.arange(C) // W) * C1).astype(np.int64)
        self.core_hb = (np.arange(C) * W).astype(np.int64)

    def _off_mesh_links(self, src, frm, dx, dy):
        """Per source, the link transfers of its packets that are discarded at the mesh edge.

        Such packets exist only in corrupt images, so this loops over them in Python.
        """
        W, Hm, S = self.W, self.Hm, self.S
        entries = {}
        for s, f, x1, y1 in zip(src.tolist(), frm.tolist(), dx.tolist(), dy.tolist()):
            y, x = divmod(f, W)
            hops = []
            while True:   # XY route; a hop that would leave the mesh is where the packet dies
                if x1 > x:
                    if x + 1 >= W:
                        break
                    hops.append((y * W + x) * 5 + PORT_E)
                    x += 1
                elif x1 < x:
                    hops.append((y * W + x) * 5 + PORT_W)
                    x -= 1
                elif y1 > y:
                    if y + 1 >= Hm:
                        break
                    hops.append((y * W + x) * 5 + PORT_S)
                    y += 1
                elif y1 < y:
                    hops.append((y * W + x) * 5 + PORT_N)
                    y -= 1
                else:   # pragma: no cover - an off-mesh destination is never reached
                    break
            for h in hops:
                entries[(s, h)] = entries.get((s, h), 0) + 1
        keys = sorted(entries)
        ptr = np.zeros(S + 1, np.int64)
        if keys:
            np.cumsum(np.bincount([k[0] for k in keys], minlength=S), out=ptr[1:])
        link = np.array([k[1] for k in keys], np.int64)
        cnt = np.array([entries[k] for k in keys], np.int64)
        return ptr, link, cnt


def _port_counts(P, n):
    """Transfers on the two outputs along one mesh dimension, from path counts.

    ``P[..., s, d]`` counts the packets that travel from position s to position d along a row
    (or column) of ``n`` routers. The output towards larger positions of router x carries the
    packets with ``s <= x < d``, the one towards smaller positions those with ``d < x <= s``.
    Returns both as ``[..., x]`` (prefix sums over s, then a masked sum over d: exact integers).
    """
    x = np.arange(n)
    up = np.cumsum(P, axis=-2)                                   # sum over s <= x, at [..., x, d]
    down = np.cumsum(P[..., ::-1, :], axis=-2)[..., ::-1, :]     # sum over s >= x
    fwd = (up * (x[None, :] > x[:, None])).sum(axis=-1)          # d > x
    back = (down * (x[None, :] < x[:, None])).sum(axis=-1)       # d < x
    return fwd, back


def _links(plan, H, V, pin, hout, xl):
    """Router port counts [T, n_cores, 5] and hops [T] of a chunk (the numpy backend's).

    XY routing sends a packet from router (sx, sy) first along row sy to column dx, then along
    column dx to row dy. The numpy backend counts, per step, ``H[sy, sx, dx]`` (packets per row,
    start and end) and ``V[dx, sy, dy]`` (per column, start and end); host-bound packets count as
    bound for router (0, 0). (The numba kernel does the same per step, :func:`_mesh_links`.)

    Parameters
    ----------
    H : int64 [T, Hm * W * W]; V : int64 [T, W * Hm * Hm]
    pin : int64 [T, C]
        Packets delivered to each core: its router's L output.
    hout : int64 [T]
        Host-bound packets: the W output of router (0, 0), the host exit.
    xl : int64 [T, C * 5]
        Transfers of packets later discarded at the mesh edge (corrupt images only).
    """
    W, Hm, C = plan.W, plan.Hm, plan.C
    T = H.shape[0]
    link = np.zeros((T, Hm, W, 5), np.int64)
    east, west = _port_counts(H.reshape(T, Hm, W, W), W)         # [T, y, x]
    link[..., PORT_E], link[..., PORT_W] = east, west
    south, north = _port_counts(V.reshape(T, W, Hm, Hm), Hm)     # [T, x, y]
    link[..., PORT_S] = south.transpose(0, 2, 1)
    link[..., PORT_N] = north.transpose(0, 2, 1)
    link = link.reshape(T, C, 5)
    link += xl.reshape(T, C, 5)
    hops = link[..., :4].sum(axis=(1, 2))
    link[..., PORT_L] = pin
    link[:, 0, PORT_W] += hout
    return link, hops


# -- the numba kernel ----------------------------------------------------------------------------
#
# Written as plain Python over flat arrays; :func:`_kernel` compiles it with numba. ``prange`` is
# numba's parallel range when the kernel is compiled with ``parallel=True`` and a plain range
# otherwise (and in plain Python).

try:
    from numba import prange
except Exception:   # no numba: the kernel is never compiled, the numpy backend runs instead
    prange = range

#: Sources ahead whose lists the kernel prefetches (their group rows twice, their headers three
#: times as far ahead), when the synapse and packet tables exceed PREFETCH_MIN_BYTES (smaller ones
#: stay in the caches).
PREFETCH_AHEAD = 4
PREFETCH_MIN_BYTES = 16 << 20


def _prefetch(arr, i):
    """Hint the CPU to load ``arr[i]`` into the cache (no-op in plain Python)."""


try:
    import llvmlite.binding as _llvm
    from llvmlite import ir as _ir
    from numba import types as _types
    from numba.core import cgutils as _cgutils
    from numba.core.extending import intrinsic as _intrinsic

    # The synapse and packet lists of the sources that fire are scattered over memory (tens of
    # MB for large networks); a load of the next sources' lists while this one is processed
    # hides most of the latency. ``llvm.prefetch(ptr, rw=0, locality=3, cache=data)``.
    _PREFETCH_NAME = "llvm.prefetch.p0" if _llvm.llvm_version_info[0] >= 15 else \
        "llvm.prefetch.p0i8"

    @_intrinsic
    def _prefetch(typingctx, arr, i):  # noqa: F811
        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = _cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                            wraparound=False)
            i8p = _ir.IntType(8).as_pointer()
            ptr = builder.bitcast(ptr, i8p)
            i32 = _ir.IntType(32)
            fnty = _ir.FunctionType(_ir.VoidType(), [i8p, i32, i32, i32])
            fn = _cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH_NAME)
            builder.call(fn, [ptr, _ir.Constant(i32, 0), _ir.Constant(i32, 3),
                              _ir.Constant(i32, 1)])
            return context.get_dummy_value()
        return _types.void(arr, i), codegen
except Exception:   # no numba
    pass


def _mesh_links(W, Hm, hcnt, vcnt, link, i):
    """Router output transfers from path counts; returns the hops (sum of every N E S W output).

    ``hcnt[(sy * W + sx) * W + dx]`` counts the packets from router (sx, sy) to column dx,
    ``vcnt[(dx * Hm + sy) * Hm + dy]`` those in column dx from row sy to row dy. The E output of
    router x (in a row) carries the packets with ``sx <= x < dx``: the count across the boundary
    x | x + 1 changes, from x - 1, by the packets that start at x going east minus those that end
    at x coming from the west (likewise W, S and N). ``link[i, c * 5 + port]`` is added to.
    """
    hops = np.int64(0)
    for y in range(Hm):
        e = np.int64(0)
        for x in range(W - 1):
            b = (y * W + x) * W
            for dx in range(x + 1, W):
                e += hcnt[b + dx]
            for sx in range(x):
                e -= hcnt[(y * W + sx) * W + x]
            link[i, (y * W + x) * 5 + PORT_E] += e
            hops += e
        w_ = np.int64(0)
        for x in range(W - 1, 0, -1):
            b = (y * W + x) * W
            for dx in range(x):
                w_ += hcnt[b + dx]
            for sx in range(x + 1, W):
                w_ -= hcnt[(y * W + sx) * W + x]
            link[i, (y * W + x) * 5 + PORT_W] += w_
            hops += w_
    for x in range(W):
        cb = x * Hm * Hm
        so = np.int64(0)
        for y in range(Hm - 1):
            b = cb + y * Hm
            for dy in range(y + 1, Hm):
                so += vcnt[b + dy]
            for sy in range(y):
                so -= vcnt[cb + sy * Hm + y]
            link[i, (y * W + x) * 5 + PORT_S] += so
            hops += so
        no = np.int64(0)
        for y in range(Hm - 1, 0, -1):
            b = cb + y * Hm
            for dy in range(y):
                no += vcnt[b + dy]
            for sy in range(y + 1, Hm):
                no -= vcnt[cb + sy * Hm + y]
            link[i, (y * W + x) * 5 + PORT_N] += no
            hops += no
    return hops


#: What :func:`_chunk` calls; :func:`_kernel` replaces it by a compiled version.
_mesh_links_nb = _mesh_links


def _chunk(t0, T, D, NT, C, W, Hm, P, S, acc_bits, loihi, subtract,
           ring, u, v,
           n_neurons, core_j0, fu, fv, vth6, bias,
           ch,
           hdr, grp, syn_word, syn_shift, syn_tgt, pk_word,
           drow, dense_pk, dense_len,
           part_dlo, part_dhi, dest_dx, dest_v, core_rowb, core_hb, act_npk, ch_npk,
           pu_idx, pv_idx, PD,
           fired, nfired, srcs, spk, acc, hcnt, vcnt, sat_first,
           rcol, o_raster, o_spk, o_pout, o_pin, o_syn, o_hin, o_hout, o_link, o_hops,
           o_pu, o_pv):
    """Run steps ``t0 .. t0 + T - 1``; ``o_*`` receive the per-step outputs (zeroed by caller).

    Scratch (zero on entry, left zero): ``acc [Hm * (C + 1)]``, ``hcnt [P * Hm * W * W]``,
    ``vcnt [P * W * Hm * Hm]``.
    """
    N = NT // C
    log2n = 0
    while (1 << log2n) < N:            # N is a power of two: s // N is s >> log2n
        log2n += 1
    C1 = C + 1
    HW = Hm * W * W
    VW = W * Hm * Hm
    n_ch = ch.shape[1]
    half = np.int64(1) << (acc_bits - 1)
    amask = (half << 1) - 1
    in_lo = -np.int64(_INPUT_HALF)        # sat18: the 18-bit dendritic input
    in_hi = np.int64(_INPUT_HALF) - 1
    s24 = np.int64(_STATE_HALF)
    m24 = (s24 << 1) - 1
    v_hi = s24 - 1                        # sat24 is symmetric: [-(2^23 - 1), 2^23 - 1]
    one32 = np.int64(1) << 32
    lo32 = one32 - 1
    tmask = (np.int64(1) << syn_shift) - 1
    syn_step = 64 // syn_word.itemsize        # entries per cache line
    pk_step = 64 // pk_word.itemsize
    tgt_step = 64 // syn_tgt.itemsize
    for i in range(T):
        t = t0 + i
        t_slot = t % D
        slot_base = t_slot * NT
        # UPDATE phase (section 4), cores split into P parts. Per core, one pass over its
        # neurons without branches (numba vectorises it), then one that collects the spikes.
        for p in prange(P):
            nf = 0
            sat = False
            sb = p * N
            for c in range(part_dlo[p], min(part_dhi[p], C)):
                n = n_neurons[c]
                g0 = c * N
                j0 = core_j0[c]
                rb = slot_base + g0
                for l in range(n):
                    ug = np.uint64(g0 + l)
                    uj = np.uint64(j0 + l)
                    ur = np.uint64(rb + l)
                    a = np.int64(ring[ur])
                    ring[ur] = 0
                    a = ((a + half) & amask) - half   # the acc_bits-wide register's value
                    x = min(max(a, in_lo), in_hi)     # sat18
                    sat |= x != a
                    uu = np.int64(u[ug])
                    vv = np.int64(v[ug])
                    if loihi:
                        # sign(x) * ((|x| * (4096 - d)) >> 12): rounded toward zero
                        mu = (abs(uu) * np.int64(fu[uj])) >> _DECAY_SHIFT
                        mv = (abs(vv) * np.int64(fv[uj])) >> _DECAY_SHIFT
                        du_ = -mu if uu < 0 else mu
                        dv_ = -mv if vv < 0 else mv
                    else:
                        du_ = uu - (uu >> np.int64(fu[uj]))
                        dv_ = vv - (vv >> np.int64(fv[uj]))
                    un = ((du_ + (x << _ACT_SHIFT) + s24) & m24) - s24    # wrap24
                    vn = min(max(dv_ + un + np.int64(bias[uj]), -v_hi), v_hi)   # sat24
                    th = np.int64(vth6[uj])
                    f = vn > th
                    vr = vn - th if subtract else np.int64(0)
                    u[ug] = un
                    v[ug] = vr if f else vn
                    spk[np.uint64(sb + l)] = f
                # The spikes, without branches: each neuron is written at the end of the list,
                # which grows past it only if it fired.
                nf0 = nf
                up = np.uint64(p)
                for l in range(n):
                    fired[up, np.uint64(nf)] = g0 + l
                    nf += np.int64(spk[np.uint64(sb + l)])
                npk = 0
                for k in range(nf0, nf):
                    g = fired[up, np.uint64(k)]
                    o_raster[i, rcol[g]] = True
                    npk += act_npk[j0 + g - g0]
                o_spk[i, c] += nf - nf0
                o_pout[i, c] += npk
            if sat and sat_first[p] < 0:
                sat_first[p] = t
            nfired[p] = nf
        for k in range(pu_idx.size):
            o_pu[i, k] = u[pu_idx[k]]
        for k in range(pv_idx.size):
            o_pv[i, k] = v[pv_idx[k]]
        # SPIKE phase (sections 5, 6): the sources of this step, neurons then channels; each
        # part of the threads owns its destination cores.
        n_src = 0
        for q in range(P):
            for j in range(nfired[q]):
                srcs[n_src] = fired[q, j]
                n_src += 1
        hin = np.int64(0)
        for c in range(n_ch):                  # (without branches, like the spikes above)
            f = np.int64(ch[i, c])
            srcs[np.uint64(n_src)] = NT + c
            n_src += f
            hin += f * ch_npk[c]
        o_hin[i] += hin
        for p in prange(P):
            base_q = p * S
            dlo = part_dlo[p]
            dhi = part_dhi[p]
            hp = p * HW                                # this part's row of hcnt
            hw = C1 + p * W                            # its column counts in a dense row
            # (The per-source work is written out here rather than in helper functions: numba
            # would increment and decrement the reference count of every array argument of an
            # inlined call, atomically, for every source.)
            for j in range(-3 * PD, n_src):
                # Prefetch, in three stages, what the source PD ahead reads: its header 3 * PD
                # sources ahead, its group rows 2 * PD ahead and its lists PD ahead (scattered
                # over tens of MB for large networks: each stage waits for the previous one).
                jn = j + 3 * PD
                if PD > 0 and jn < n_src:
                    _prefetch(hdr, 2 * (base_q + srcs[jn]))
                    _prefetch(drow, srcs[jn])
                jn = j + 2 * PD
                if PD > 0 and jn >= 0 and jn < n_src:
                    qn = 2 * (base_q + srcs[jn])
                    g0 = 4 * hdr[qn]
                    g1 = 4 * hdr[qn + 2]
                    if g1 > g0:
                        _prefetch(grp, g0)
                        _prefetch(grp, g1 + 3)
                jn = j + PD
                if PD > 0 and jn >= 0 and jn < n_src:
                    qn = 2 * (base_q + srcs[jn])
                    g0 = 4 * hdr[qn]
                    g1 = 4 * hdr[qn + 2]
                    # (while loops: a range with a step that is not a constant divides)
                    k = grp[g0 + 2]
                    hi = grp[g1 + 2]
                    if hi > k:
                        _prefetch(syn_word, hi - 1)
                    while k < hi:
                        _prefetch(syn_word, k)
                        k += syn_step
                    k = grp[g0 + 3]
                    hi = grp[g1 + 3]
                    if hi > k:
                        _prefetch(syn_tgt, hi - 1)
                    while k < hi:
                        _prefetch(syn_tgt, k)
                        k += tgt_step
                    k = hdr[qn + 1]
                    hi = hdr[qn + 3]
                    if hi > k:
                        _prefetch(pk_word, hi - 1)
                    while k < hi:
                        _prefetch(pk_word, k)
                        k += pk_step
                    r = drow[srcs[jn]]
                    if r >= 0:
                        k = r * dense_len
                        hi = k + dense_len
                        _prefetch(dense_pk, hi - 1)
                        while k < hi:
                            _prefetch(dense_pk, k)
                            k += 32
                if j < 0:
                    continue
                s = srcs[j]
                q = base_q + s
                if s < NT:
                    sc = s >> log2n
                    rowb = core_rowb[sc]
                    hb = hp + core_hb[sc]
                else:                                  # the host injector: router (0, 0)
                    rowb = 0
                    hb = hp
                # Synapses (section 5), one ring slot per group. Indices are cast to unsigned:
                # numba then skips the negative-index fix-up.
                qh = np.uint64(2 * q)
                for gi in range(4 * hdr[qh], 4 * hdr[qh + np.uint64(2)], 4):
                    ug = np.uint64(gi)
                    slot = t_slot + grp[ug]          # (t + delay) mod D
                    if slot >= D:
                        slot -= D
                    base = slot * NT
                    for k in range(grp[ug + np.uint64(2)], grp[ug + np.uint64(6)]):
                        w = np.int64(syn_word[np.uint64(k)])
                        # int32 ring: wraps mod 2^32, a multiple of 2^acc_bits: exact after the
                        # read wrap.
                        ring[np.uint64(base + (w & tmask))] += w >> syn_shift
                    val = grp[ug + np.uint64(1)]
                    for k in range(grp[ug + np.uint64(3)], grp[ug + np.uint64(7)]):
                        ring[np.uint64(base + np.int64(syn_tgt[np.uint64(k)]))] += val
                # Packets (section 6) into acc[rowb + d] (packets << 32 | synapses per source
                # row and destination d) and hcnt[hb + dx] (from its router to column dx).
                r = drow[s]
                if r >= 0:
                    ab = r * dense_len
                    for d in range(dlo, dhi):
                        x = np.int64(dense_pk[np.uint64(ab + d)])
                        acc[np.uint64(rowb + d)] += ((x >> 8) << 32) + (x & 255)
                    ab += hw
                    for x in range(W):
                        hcnt[np.uint64(hb + x)] += dense_pk[np.uint64(ab + x)]
                else:
                    for k in range(hdr[qh + np.uint64(1)], hdr[qh + np.uint64(3)]):
                        w = np.int64(pk_word[np.uint64(k)])
                        d = w & 0xFFFF
                        acc[np.uint64(rowb + d)] += one32 + (w >> 16)
                        hcnt[np.uint64(hb + dest_dx[np.uint64(d)])] += 1
            # This part's destination columns of the (source row, destination) sums: packets
            # in, synapses, the column path counts.
            vp = p * VW
            for sy in range(Hm):
                rb = sy * C1
                vs = vp + sy * Hm
                for d in range(dlo, dhi):
                    x = acc[rb + d]
                    if x != 0:
                        acc[rb + d] = 0
                        k = x >> 32
                        vcnt[dest_v[d] + vs] += k
                        if d < C:
                            o_pin[i, d] += k
                            o_syn[i, d] += x & lo32
                        else:
                            o_hout[i] += k
        # Router output transfers of the step, from the path counts of every part.
        for p in range(1, P):
            for k in range(HW):
                hcnt[k] += hcnt[p * HW + k]
                hcnt[p * HW + k] = 0
            for k in range(VW):
                vcnt[k] += vcnt[p * VW + k]
                vcnt[p * VW + k] = 0
        o_hops[i] = _mesh_links_nb(W, Hm, hcnt, vcnt, o_link, i)
        for k in range(HW):
            hcnt[k] = 0
        for k in range(VW):
            vcnt[k] = 0
        for d in range(C):
            o_link[i, d * 5 + PORT_L] = o_pin[i, d]
        o_link[i, PORT_W] += o_hout[i]       # the host exit: the W output of router (0, 0)


_KERNELS = {}


def _kernel(parallel):
    """:func:`_chunk` compiled by numba (cached on disk), serial or threaded.

    The two variants get distinct names so that numba's on-disk cache keeps both.
    """
    fn = _KERNELS.get(parallel)
    if fn is None:
        import numba
        global _mesh_links_nb
        if not isinstance(_mesh_links_nb, numba.core.registry.CPUDispatcher):
            _mesh_links_nb = numba.njit(cache=True)(_mesh_links)
        name = "_chunk_parallel" if parallel else "_chunk_serial"
        py = types.FunctionType(_chunk.__code__, _chunk.__globals__, name)
        py.__qualname__ = name
        fn = _KERNELS[parallel] = numba.njit(cache=True, parallel=parallel)(py)
    return fn


# -- the engine ----------------------------------------------------------------------------------

#: Synapses from which ``threads=None`` considers threads worth their per-step synchronisation.
THREADS_MIN_SYNAPSES = 1_000_000
#: ... and only while the load average is at least this much below the number of cores.
THREADS_IDLE_MARGIN = 0.25


def _auto_threads(image):
    """numba's thread count for large images when the machine has idle cores, else 1.

    Threads meet twice per step; on a machine whose cores are busy with other work a thread that
    is descheduled stalls the others at every meeting, which makes a threaded run several times
    slower than a serial one, so threads are used only if the 1-minute load average stays below
    the number of cores by THREADS_IDLE_MARGIN (measured on 2 cores: at a load of 1.5 two
    threads ran W2 1.35x and W3 1.6x faster than one; at a load of 3 to 4, 3x slower). Results
    never depend on the thread count.
    """
    import os
    import numba
    n = numba.get_num_threads()
    synapses = sum(c.n_synapses for c in image.cores)
    try:
        idle = (os.cpu_count() or 1) - os.getloadavg()[0]
    except OSError:     # no load average on this platform
        idle = 0
    return n if n > 1 and synapses >= THREADS_MIN_SYNAPSES and idle >= THREADS_IDLE_MARGIN else 1


class FunctionalEngine:
    """Run a chip image step by step, bit-exactly, without modelling clock cycles.

    Parameters
    ----------
    image : ChipImage
        The compiled chip. It is not validated here (:class:`~neurotile.Emulator` does that).
    backend : {"auto", "numba", "numpy"}
        ``numba`` runs a compiled kernel over chunks of steps; ``numpy`` is the pure-numpy
        fallback; ``auto`` picks numba when it imports. Both give identical results.
    threads : int, optional
        Parts the cores are split into for the numba kernel, run in parallel threads. Each step
        synchronises the threads twice, which pays off only for large chips on a machine with
        idle cores; the default picks numba's thread count in that case (see
        :func:`_auto_threads`) and 1 otherwise. Results do not depend on it.

    Members
    -------
    mode : str
        ``"functional"``.
    image : ChipImage
    backend : str
        The backend in use (``"numba"`` or ``"numpy"``).
    plan
        The per-source tables the engine runs on (see the module docstring).

    Raises
    ------
    NeurotileTypeError
        ``image`` is not a ChipImage.
    EmulatorError
        Unknown backend, ``backend="numba"`` without numba installed, or ``threads`` not an
        int >= 1.
    """

    mode = "functional"

    def __init__(self, image, backend="auto", threads=None):
        from ..compiler.image import ChipImage
        if not isinstance(image, ChipImage):
            raise NeurotileTypeError(f"FunctionalEngine needs an nt.ChipImage, not "
                                     f"{type(image).__name__}")
        backend = resolve_backend(backend, BACKENDS, "numpy")
        if threads is None:
            threads = _auto_threads(image) if backend == "numba" else 1
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise EmulatorError(f"threads must be an int >= 1, not {threads!r}")
        self.image = image
        self.backend = backend
        tables = ChipTables(image)
        self.plan = _Plan(tables, int(threads) if backend == "numba" else 1,
                          fast=backend == "numba")
        # Keep only the small tables: the per-synapse and fan-out ones live on in the plan.
        self._tb = types.SimpleNamespace(
            arch=tables.arch, n_cores=tables.n_cores, N=tables.N, D=tables.D,
            n_channels=tables.n_channels, in_names=tables.in_names, in_count=tables.in_count,
            lif=[getattr(tables, f) for f in ("du", "dv", "vth", "bias_mant", "bias_exp")])
        self._pops = {name: (core * tables.N + local)
                      for name, (core, local) in tables.populations.items()}
        # The engines write the spike raster with the populations' neurons side by side, in
        # population order (then any other neuron), so that each population's spikes are a
        # slice of it: ``raster[:, rcol[g]]`` is the spike of neuron g.
        NT = tables.n_cores * tables.N
        pop_g = np.concatenate([np.zeros(0, np.int64)] + list(self._pops.values()))
        self._rcol = np.arange(NT, dtype=np.int64)
        self._pop_cols = dict(self._pops)
        if np.unique(pop_g).size == pop_g.size:
            rest = np.setdiff1d(np.arange(NT), pop_g)
            self._rcol[np.concatenate([pop_g, rest])] = np.arange(NT)
            off = 0
            for name, g in self._pops.items():
                self._pop_cols[name] = slice(off, off + g.size)
                off += g.size
        del tables

    @property
    def tables(self):
        """The image decoded as :class:`ChipTables` (built on each access; not kept)."""
        return ChipTables(self.image)

    # -- checks ----------------------------------------------------------------------------------

    def _check(self, state, channels, probes):
        tb = self._tb
        ch = np.asarray(channels)
        if ch.ndim != 2 or ch.shape[1] != tb.n_channels:
            raise EmulatorError(f"channels must be a [steps, {tb.n_channels}] array (one column "
                                f"per input channel of {tb.in_names}), not of shape {ch.shape}")
        if ch.dtype != bool:
            raise EmulatorError(f"channels must be a bool array, not {ch.dtype}")
        want = (tb.n_cores, tb.N)
        if state.u.shape != want or state.v.shape != want or \
                state.acc.shape != (tb.n_cores, tb.D, tb.N):
            raise EmulatorError(f"state does not belong to this image: u, v must be {want} and "
                                f"acc {(tb.n_cores, tb.D, tb.N)}, not {state.u.shape}, "
                                f"{state.v.shape}, {state.acc.shape}")
        out = []
        for item in probes:
            try:
                pop, var = item
            except (TypeError, ValueError):
                raise EmulatorError(f"a probe must be a (population, 'u' or 'v') pair, "
                                    f"not {item!r}") from None
            if pop not in self._pops:
                raise EmulatorError(f"probe {pop!r}: no such population; populations: "
                                    f"{', '.join(self._pops) or 'none'}")
            if var not in ("u", "v"):
                raise EmulatorError(f"probe {pop}.{var}: the variable must be 'u' or 'v'")
            if (pop, var) not in out:
                out.append((pop, var))
        # The host port buffers host_in_depth input packets per step (section 7).
        depth = tb.arch.host_in_depth
        if ch.shape[0] and int(tb.in_count.sum()) > depth:
            per_step = ch.astype(np.int64) @ tb.in_count
            if per_step.max() > depth:
                k = int(np.argmax(per_step > depth))
                raise EmulatorError(f"step {int(state.t) + k} injects {int(per_step[k])} input "
                                    f"packets, more than the host port's host_in_depth ({depth}); "
                                    f"spread the input spikes over more steps or use an Arch with "
                                    f"a larger host_in_depth")
        return ch, out

    # -- running ---------------------------------------------------------------------------------

    def run(self, state, channels, probes=(), progress=None):
        """Advance ``state`` in place by ``len(channels)`` steps.

        Parameters
        ----------
        state : ChipState
            Advanced in place (u, v, accumulators, step counter, flags).
        channels : ndarray of bool, shape [steps, n_channels]
            Input spikes, channels of all input groups concatenated in ``image.inputs`` order.
        probes : list of (str, str)
            (population, ``"u"`` or ``"v"``) to record after each step's UPDATE.
        progress : callable, optional
            Called as ``progress(steps_done, steps)`` after every chunk of steps (the
            convention of every engine).

        Returns
        -------
        RunResult
        """
        ch, probes = self._check(state, channels, probes)
        pl = self.plan
        steps = ch.shape[0]
        C, N, D, NT = pl.C, pl.N, pl.D, pl.NT
        start = int(state.t)

        ring = _wrap(np.asarray(state.acc, np.int64), pl.acc_bits)
        ring = np.ascontiguousarray(ring.transpose(1, 0, 2)).reshape(D * NT)
        ring = ring.astype(np.int32)     # acc_bits <= 32: every wrapped value fits
        u = np.ascontiguousarray(state.u, np.int64).reshape(NT).copy()
        v = np.ascontiguousarray(state.v, np.int64).reshape(NT).copy()
        if self.backend == "numba" and all(
                not x.size or (x.min() >= -(1 << 31) and x.max() < 1 << 31) for x in (u, v)):
            # (24-bit values, as the engines leave them: the kernel then moves half the bytes)
            u, v = u.astype(np.int32), v.astype(np.int32)

        counters = {name: np.zeros((steps, C), np.int64)
                    for name in ("updates", "spikes", "packets_out", "packets_in", "synops")}
        counters["updates"][:] = pl.n_neurons
        for name in ("host_in", "host_out", "hops"):
            counters[name] = np.zeros(steps, np.int64)
        counters["link"] = np.zeros((steps, C, 5), np.int64)
        spikes = {name: np.zeros((steps, g.size), bool) for name, g in self._pops.items()}
        probe_out = {f"{p}.{var}": np.zeros((steps, self._pops[p].size), np.int64)
                     for p, var in probes}
        pu = [self._pops[p] for p, var in probes if var == "u"]
        pv = [self._pops[p] for p, var in probes if var == "v"]
        pu_keys = [f"{p}.u" for p, var in probes if var == "u"]
        pv_keys = [f"{p}.v" for p, var in probes if var == "v"]
        pu_idx = np.concatenate(pu).astype(np.int64) if pu else np.zeros(0, np.int64)
        pv_idx = np.concatenate(pv).astype(np.int64) if pv else np.zeros(0, np.int64)
        flag_first = np.full(4, -1, np.int64)

        numba_ = self.backend == "numba"
        step_fn = self._chunk_numba if numba_ else self._chunk_numpy
        bufs = self._buffers(min(CHUNK, steps), pu_idx.size, pv_idx.size, numba_)
        for c0 in range(0, steps, CHUNK):
            T = min(CHUNK, steps - c0)
            sl = slice(c0, c0 + T)
            out = {k: buf[:T] for k, buf in bufs.items()}
            for buf in out.values():
                buf.fill(0)
            # The per-step counters are written in place (they start at zero).
            for name in ("spikes", "packets_out", "packets_in", "synops", "host_in", "host_out",
                         "hops"):
                out[name] = counters[name][sl]
            out["link"] = counters["link"][sl].reshape(T, C * 5)
            step_fn(start + c0, ch[c0:c0 + T], ring, u, v, pu_idx, pv_idx, flag_first, out)
            if not numba_:
                link, hops = _links(pl, out["H"].sum(axis=1), out["V"].sum(axis=1),
                                    out["packets_in"], out["host_out"], out["xl"])
                counters["link"][sl] = link
                counters["hops"][sl] = hops
            elif pl.src_flags.any():           # transfers of packets lost at the mesh edge
                out["link"] += out["xl"]
                out["hops"] += out["xl"].sum(axis=1)
            raster = out["raster"]
            for name, cols in self._pop_cols.items():
                spikes[name][sl] = raster[:, cols]
            self._split_probes(out["pu"], pu_keys, probe_out, sl)
            self._split_probes(out["pv"], pv_keys, probe_out, sl)
            if progress is not None:
                progress(c0 + T, steps)

        # Write the state back (section 3 layouts: acc slot-major per core).
        state.u[...] = u.reshape(C, N)
        state.v[...] = v.reshape(C, N)
        acc = _wrap(ring.astype(np.int64), pl.acc_bits).reshape(D, C, N).transpose(1, 0, 2)
        state.acc[...] = acc
        state.t = start + steps
        for b, name in enumerate(FLAGS):
            if flag_first[b] >= 0:
                state.raise_flag(name, int(flag_first[b]))
        return RunResult(mode=self.mode, steps=steps, start_step=start, spikes=spikes,
                         probes=probe_out, counters=wrap_counters(counters, self.image.arch),
                         flags=dict(state.flags),
                         flag_step=dict(state.flag_step))

    def _split_probes(self, data, keys, probe_out, sl):
        col = 0
        for key in keys:
            n = probe_out[key].shape[1]
            probe_out[key][sl] = data[:, col:col + n]
            col += n

    def _buffers(self, T, n_pu, n_pv, numba_):
        pl = self.plan
        C, P = pl.C, pl.P
        b = dict(raster=np.zeros((T, pl.NT), bool), xl=np.zeros((T, C * 5), np.int64),
                 pu=np.zeros((T, n_pu), np.int64), pv=np.zeros((T, n_pv), np.int64))
        if not numba_:
            b["H"] = np.zeros((T, P, pl.Hm * pl.W * pl.W), np.int64)
            b["V"] = np.zeros((T, P, pl.W * pl.Hm * pl.Hm), np.int64)
        return b

    def _chunk_numba(self, t0, ch, ring, u, v, pu_idx, pv_idx, flag_first, b):
        pl = self.plan
        T = ch.shape[0]
        if not hasattr(self, "_scratch"):
            self._scratch = (np.zeros((pl.P, max(pl.NT, 1)), np.int64), np.zeros(pl.P, np.int64),
                             np.zeros(max(pl.S, 1), np.int64), np.zeros(pl.P * pl.N, np.uint8),
                             np.zeros(pl.Hm * (pl.C + 1), np.int64),
                             np.zeros(pl.P * pl.Hm * pl.W * pl.W, np.int64),
                             np.zeros(pl.P * pl.W * pl.Hm * pl.Hm, np.int64))
        fired, nfired, srcs, spk, acc, hcnt, vcnt = self._scratch
        sat_first = np.full(pl.P, -1, np.int64)
        kernel = _kernel(pl.P > 1)
        kernel(t0, T, pl.D, pl.NT, pl.C, pl.W, pl.Hm, pl.P, pl.S, pl.acc_bits, pl.loihi,
               pl.subtract, ring, u, v,
               pl.n_neurons, pl.core_j0, pl.fu, pl.fv, pl.vth6, pl.bias,
               np.ascontiguousarray(ch),
               pl.hdr, pl.grp, pl.syn_word, pl.syn_shift, pl.syn_tgt, pl.pk_word,
               pl.drow, pl.dense_pk, pl.dense_len,
               pl.part_dlo, pl.part_dhi, pl.dest_dx, pl.dest_v, pl.core_rowb, pl.core_hb,
               pl.act_npk, pl.ch_npk,
               pu_idx, pv_idx, pl.prefetch,
               fired, nfired, srcs, spk, acc, hcnt, vcnt, sat_first,
               self._rcol, b["raster"], b["spikes"], b["packets_out"], b["packets_in"],
               b["synops"],
               b["host_in"], b["host_out"], b["link"], b["hops"], b["pu"], b["pv"])
        self._source_flags(t0, ch, b, flag_first)
        sat = sat_first[sat_first >= 0]
        if sat.size:
            b_sat = FLAGS.index("acc_sat")
            first = int(sat.min())
            if flag_first[b_sat] < 0 or first < flag_first[b_sat]:
                flag_first[b_sat] = first

    def _numpy_tables(self):
        """Flat int64 views of the plan for the numpy backend (built once)."""
        if getattr(self, "_np", None) is None:
            pl, tb = self.plan, self._tb
            act = pl.act_g.astype(np.int64)
            word = pl.syn_word.astype(np.int64)
            grp = pl.grp.reshape(-1, 4)
            slot = np.repeat(grp[:-1, 0], np.diff(grp[:, 2]))
            pk = pl.pk_word.astype(np.int64)
            pk_src = np.repeat(np.arange(pl.P * pl.S) % pl.S, np.diff(pl.pk_ptr))
            pk_from = np.where(pk_src < pl.NT, pk_src // pl.N, 0)
            self._np = dict(
                act=act, act_core=pl.act_core.astype(np.int64),
                lif=[f.ravel()[act] for f in tb.lif],
                # ring offset of each synapse relative to the slot of the current step
                syn_roff=slot * pl.NT + (word & ((1 << pl.syn_shift) - 1)),
                syn_val=(word >> pl.syn_shift).astype(np.int32),
                pk_k=pk_from * (pl.C + 1) + (pk & 0xFFFF), pk_d=pk & 0xFFFF,
                pk_n=(pk >> 16).astype(np.float64),
            )
        return self._np

    def _chunk_numpy(self, t0, ch, ring, u, v, pu_idx, pv_idx, flag_first, b):
        from .neuron import lif_update
        pl = self.plan
        tb = self._tb
        T = ch.shape[0]
        C, NT, D, W, Hm = pl.C, pl.NT, pl.D, pl.W, pl.Hm
        DNT = D * NT
        nt_ = self._numpy_tables()
        act, act_core = nt_["act"], nt_["act_core"]
        modes = dict(decay_mode=tb.arch.decay_mode, reset_mode=tb.arch.reset_mode)
        for i in range(T):
            t = t0 + i
            slot_base = (t % D) * NT
            # UPDATE (section 4)
            a = _wrap(ring[slot_base + act].astype(np.int64), pl.acc_bits)
            ring[slot_base + act] = 0
            un, vn, spike, sat = lif_update(u[act], v[act], a, *nt_["lif"], **modes)
            u[act] = un
            v[act] = vn
            if np.any(sat):
                self._first(flag_first, "acc_sat", t)
            g_fired = act[spike]
            b["raster"][i, self._rcol[g_fired]] = True
            b["spikes"][i] = np.bincount(act_core[spike], minlength=C)
            b["packets_out"][i] = np.bincount(act_core[spike], weights=pl.act_npk[spike],
                                              minlength=C).astype(np.int64)
            b["pu"][i] = u[pu_idx]
            b["pv"][i] = v[pv_idx]
            # SPIKE (sections 5, 6)
            chans = np.flatnonzero(ch[i])
            b["host_in"][i] = pl.ch_npk[chans].sum()
            srcs = np.concatenate([g_fired, NT + chans])
            if not srcs.size:
                continue
            sidx = concat_ranges(pl.syn_ptr[srcs], pl.syn_ptr[srcs + 1] - pl.syn_ptr[srcs])
            if sidx.size:
                r = nt_["syn_roff"][sidx] + slot_base
                r[r >= DNT] -= DNT
                np.add.at(ring, r, nt_["syn_val"][sidx])   # int32: wraps like the kernel
            pidx = concat_ranges(pl.pk_ptr[srcs], pl.pk_ptr[srcs + 1] - pl.pk_ptr[srcs])
            K = np.bincount(nt_["pk_k"][pidx], minlength=C * (C + 1)).reshape(C, C + 1).T
            b["synops"][i] = np.bincount(nt_["pk_d"][pidx], weights=nt_["pk_n"][pidx],
                                         minlength=C + 1)[:C].astype(np.int64)
            b["packets_in"][i] = K[:C].sum(axis=1)
            b["host_out"][i] = K[C].sum()
            Kp = K[:C].copy()
            Kp[0] += K[C]                      # host-bound packets travel as if to core (0, 0)
            K4 = Kp.reshape(Hm, W, Hm, W)      # [dy, dx, sy, sx]
            b["H"][i, 0] = K4.sum(axis=0).transpose(1, 2, 0).reshape(-1)   # [sy, sx, dx]
            b["V"][i, 0] = K4.sum(axis=3).transpose(1, 2, 0).reshape(-1)   # [dx, sy, dy]
        self._source_flags(t0, ch, b, flag_first)

    def _source_flags(self, t0, ch, b, flag_first):
        """Flags and off-mesh link transfers of the sources that fired (corrupt images only)."""
        pl = self.plan
        flagged = np.flatnonzero(pl.src_flags)
        if not flagged.size:
            return
        neuron = flagged < pl.NT
        fired = np.concatenate([b["raster"][:, self._rcol[flagged[neuron]]],
                                ch[:, flagged[~neuron] - pl.NT]], axis=1)
        fired_src = np.concatenate([flagged[neuron], flagged[~neuron]])
        for bit in range(len(FLAGS)):
            hit = fired[:, (pl.src_flags[fired_src] >> bit & 1).astype(bool)].any(axis=1)
            if hit.any() and flag_first[bit] < 0:
                flag_first[bit] = t0 + int(np.argmax(hit))
        xl = np.zeros((fired_src.size, pl.C * 5), np.int64)
        for k, s in enumerate(fired_src):
            lo, hi = pl.xl_ptr[s], pl.xl_ptr[s + 1]
            np.add.at(xl[k], pl.xl_link[lo:hi], pl.xl_cnt[lo:hi])
        b["xl"] += fired.astype(np.int64) @ xl

    @staticmethod
    def _first(flag_first, name, t):
        bit = FLAGS.index(name)
        if flag_first[bit] < 0:
            flag_first[bit] = t
