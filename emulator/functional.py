"""The functional engine: every spike, state bit and non-cycle counter of the chip, fast.

It computes what docs/architecture.md says a step produces (sections 4, 5, 6 and 8) without
simulating clock cycles. Packets are never queued: the result of the SPIKE phase does not depend
on the order in which packets arrive (accumulators only add, section 5), and every counter that is
not cycle-level is a sum over the packets of the step, each of which follows a fixed XY path.
So at construction the image is flattened, once, into per-source tables:

- a *source* is a neuron of a core (global index ``core * N + local``) or a host input channel
  (index ``n_cores * N + channel``);
- for each source, its synapses as (ring offset ``(delay mod D) * n_cores * N + core * N + target``,
  value ``weight << wexp``), partitioned by destination core so that threads never write the same
  accumulator;
- for each source, its packets as words (synapses it triggers, destination core or host); per
  step they are counted into a matrix ``K[source router, destination]`` from which the
  router-port counts follow, since every packet between two routers takes the same XY path
  (:func:`_links`).

Per step the engine updates every neuron in use (section 4), then scatter-adds the synapses of
the neurons that fired and of the input channels that spiked into the accumulator ring. The ring
is one flat ``int32`` array ``[D * n_cores * N]``: accumulator additions wrap modulo
``2^acc_bits`` (section 5) and ``acc_bits <= 32``, so adding in 32-bit two's complement and
wrapping to ``acc_bits`` when a slot is read is exact.

Two backends give identical results: a numba kernel that runs whole chunks of steps in one call
(optionally with threads that split the cores; it prefetches the lists of the next sources to
fire, which are scattered over tens of MB for large networks), and a pure-numpy fallback.
"""

import types

import numpy as np

from ..compiler.arch import Arch
from ..compiler.errors import EmulatorError, NeurotileTypeError
from .result import RunResult
from .state import FLAGS
from .tables import ChipTables

__all__ = ["FunctionalEngine", "BACKENDS"]

#: Backends of :class:`FunctionalEngine`.
BACKENDS = ("auto", "numba", "numpy")

#: Steps per kernel call: bounds the chunk buffers and sets how often progress is reported.
CHUNK = 256

_F_BAD_AXON = 1 << FLAGS.index("bad_axon")
_F_BAD_ROUTE = 1 << FLAGS.index("bad_route")

# Neuron-model widths (Arch constants; numba folds these module globals into the kernel).
_ACT_SHIFT = Arch.ACT_SHIFT                                   # input << 6 lines up with u
_DECAY_SHIFT = Arch.DECAY_SHIFT                               # 12-bit decay fractions
_INPUT_HALF = 1 << (Arch.STATE_BITS - Arch.ACT_SHIFT - 1)     # sat18: [-2^17, 2^17 - 1]
_STATE_HALF = 1 << (Arch.STATE_BITS - 1)                      # wrap24 / sat24 around 2^23

# Router output ports (section 6).
PORT_N, PORT_E, PORT_S, PORT_W, PORT_L = range(5)


def numba_available():
    """Whether numba imports (the ``numba`` backend needs it)."""
    try:
        import numba  # noqa: F401
    except Exception:   # ImportError, or a numba that fails to initialise
        return False
    return True


def _expand(starts, lengths):
    """Concatenated ranges ``starts[i] .. starts[i] + lengths[i] - 1`` (int64)."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    return np.repeat(np.asarray(starts, np.int64) - ends + lengths, lengths) + np.arange(total)


def _wrap(x, bits):
    """Two's-complement wrap of int64 values to ``bits`` bits (a ``bits``-wide register)."""
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) & ((half << np.int64(1)) - 1)) - half


class _Plan:
    """The per-source tables of one image for ``P`` destination partitions (see module doc)."""

    def __init__(self, tables, P):
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
        for f in ("fu", "fv", "vth6", "bias"):
            setattr(self, f, np.ascontiguousarray(getattr(self, f), np.int64))
        self.n_neurons = tb.n_neurons.copy()

        # -- every packet of every source, in source order ----------------------------------------
        # Neuron sources: their fan-out lists (only neurons in use ever fire).
        fo_start = (tb.fo_off[:-1, None] + tb.fo_base).ravel()
        fo_len = np.where(in_use, tb.fo_count, 0).ravel()
        w_fo = _expand(fo_start, fo_len)
        src_fo = np.repeat(np.arange(NT), fo_len)
        # Channel sources: the host driver's packet lists.
        w_in = _expand(tb.in_base, tb.in_count)
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
        load = np.bincount(dcore[ok], weights=pk_nsyn[ok], minlength=C) + 1.0
        cum = np.cumsum(load)
        # (non-decreasing in core order, since every load is positive: contiguous core ranges)
        part_of_core = np.minimum((cum - load) * P // cum[-1], P - 1).astype(np.int64)
        part_of_dest = np.append(part_of_core, 0)                     # the host column: part 0
        self.P = P
        order = np.argsort(part_of_dest, kind="stable")
        self.part_dests = order.astype(np.int32)
        self.part_dest_ptr = np.searchsorted(part_of_dest[order], np.arange(P + 1)).astype(np.int64)
        # Neuron updates: the same core split.
        self.act_ptr = np.searchsorted(part_of_core[self.act_core],
                                       np.arange(P + 1)).astype(np.int64)

        # Packets that would leave the mesh (a corrupt image): their transfers up to the edge.
        self.xl_ptr, self.xl_link, self.xl_cnt = self._off_mesh_links(
            pk_src[off_mesh], pk_from[off_mesh], pk_x[off_mesh], pk_y[off_mesh])
        del pk_x, pk_y, pk_idx, pk_host, pk_from, bad_axon, ok, ax, core_pk

        # Packets routed to a core or to the host, grouped by (partition, source).
        routed = np.flatnonzero(~off_mesh)
        pkey = part_of_dest[dest[routed]] * S + pk_src[routed]
        del pk_src, off_mesh
        pk_order = np.argsort(pkey, kind="stable")
        porder = routed[pk_order]
        pkey = pkey[pk_order]
        del routed, pk_order
        self.pk_ptr = np.zeros(P * S + 1, np.int64)
        np.cumsum(np.bincount(pkey, minlength=P * S), out=self.pk_ptr[1:])
        # Per packet: its destination (a core, or C for the host) and the synapses it triggers;
        # the kernel reads one word per packet: synapses << 16 | destination.
        n_max = int(pk_nsyn.max(initial=0))
        nsyn = pk_nsyn[porder]
        word = (nsyn << 16) | dest[porder]
        self.pk_word = word.astype(np.uint32 if n_max < 1 << 16 else np.int64)
        syn0 = pk_syn0[porder]
        pcore = dcore[porder]
        del word, dest, dcore, pk_syn0, pk_nsyn, porder

        # Synapses, grouped like the packets that trigger them and, within a (partition, source),
        # by delay: a group adds into one ring slot, so the inner loop is a plain scatter-add.
        sw = _expand(syn0, nsyn)
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
        small = not val.size or (val.min() >= -(1 << 15) and val.max() < (1 << 15))
        # The kernel reads one word per synapse: value << 16 | target when both fit 16 bits
        # (chips of up to 65536 neurons), else value << 32 | target.
        if NT <= 1 << 16 and small:
            self.syn_word = ((val << 16) | tgt).astype(np.int32)
            self.syn_shift = 16
        else:
            self.syn_word = ((val << 32) | tgt).astype(np.int64)
            self.syn_shift = 32
        del val, tgt
        self.n_synapses = int(sw.size)
        new_grp = np.ones(sw.size, bool)
        new_grp[1:] = (s_key[1:] != s_key[:-1]) | (slot[1:] != slot[:-1])
        starts = np.flatnonzero(new_grp)
        del new_grp
        self.grp_bound = np.append(starts, sw.size).astype(np.int64)
        self.grp_slot = slot[starts].astype(np.int64)
        self.grp_ptr = np.zeros(P * S + 1, np.int64)
        np.cumsum(np.bincount(s_key[starts], minlength=P * S), out=self.grp_ptr[1:])
        self.syn_ptr = np.zeros(P * S + 1, np.int64)
        np.cumsum(np.bincount(s_key, minlength=P * S), out=self.syn_ptr[1:])
        del sw, s_key, slot, starts
        big = self.syn_word.nbytes + self.pk_word.nbytes >= PREFETCH_MIN_BYTES
        self.prefetch = PREFETCH_AHEAD if big else 0

        # Per destination (C: the host, routed as to core (0, 0)): its column dx, and the index
        # dx * Hm * Hm + dy of its column path counts (plus sy * Hm for the source row).
        dd = np.append(np.arange(C), 0)
        self.dest_dx = (dd % W).astype(np.int64)
        self.dest_v = ((dd % W) * Hm * Hm + dd // W).astype(np.int64)
        self.dest_sy = ((np.arange(C) // W) * Hm).astype(np.int64)

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
    """Router port counts [T, n_cores, 5] and hops [T] of a chunk.

    XY routing sends a packet from router (sx, sy) first along row sy to column dx, then along
    column dx to row dy. The kernel counts, per step, ``H[sy, sx, dx]`` (packets per row, start
    and end) and ``V[dx, sy, dy]`` (per column, start and end); host-bound packets count as bound
    for router (0, 0).

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

#: Sources ahead whose tables the kernel prefetches (their headers twice as far ahead), when
#: the synapse and packet tables exceed PREFETCH_MIN_BYTES (smaller ones stay in the caches).
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


def _prefetch_source(q, q2, grp_ptr, grp_bound, syn_word, pk_ptr, pk_word):
    """Prefetch the header of source entry ``q2`` and the lists of source entry ``q``."""
    if q2 >= 0:
        _prefetch(grp_ptr, q2)
        _prefetch(pk_ptr, q2)
    if q >= 0:
        g0 = grp_ptr[q]
        _prefetch(grp_bound, g0)
        lo = grp_bound[g0]
        hi = grp_bound[grp_ptr[q + 1]]
        step = 64 // syn_word.itemsize
        for k in range(lo, hi, step):
            _prefetch(syn_word, k)
        if hi > lo:
            _prefetch(syn_word, hi - 1)
        lo = pk_ptr[q]
        hi = pk_ptr[q + 1]
        step = 64 // pk_word.itemsize
        for k in range(lo, hi, step):
            _prefetch(pk_word, k)
        if hi > lo:
            _prefetch(pk_word, hi - 1)


def _deliver(p, s, t_slot, D, NT, S, ring, grp_ptr, grp_slot, grp_bound, syn_word, syn_shift,
             pk_ptr, pk_word, krow, K, syn_now):
    """The SPIKE-phase work of source ``s`` in partition ``p`` (sections 5 and 6)."""
    q = p * S + s
    tmask = (np.int64(1) << syn_shift) - 1
    for gi in range(grp_ptr[q], grp_ptr[q + 1]):
        slot = t_slot + grp_slot[gi]          # (t + delay) mod D
        if slot >= D:
            slot -= D
        base = slot * NT
        for k in range(grp_bound[gi], grp_bound[gi + 1]):
            w = np.int64(syn_word[k])
            # int32 ring: wraps mod 2^32, a multiple of 2^acc_bits: exact after the read wrap.
            ring[base + (w & tmask)] += w >> syn_shift
    for k in range(pk_ptr[q], pk_ptr[q + 1]):
        w = np.int64(pk_word[k])
        d = w & 0xFFFF
        K[krow + d] += 1                             # K[source router, destination]
        syn_now[d] += w >> 16


#: What :func:`_chunk` calls; :func:`_kernel` replaces them by compiled versions.
_deliver_nb = _deliver
_prefetch_nb = _prefetch_source


def _chunk(t0, T, D, NT, C, W, Hm, P, S, acc_bits, loihi, subtract,
           ring, u, v,
           act_g, act_core, act_ptr, fu, fv, vth6, bias,
           ch,
           grp_ptr, grp_slot, grp_bound, syn_word, syn_shift, pk_ptr, pk_word,
           part_dests, part_dest_ptr, dest_dx, dest_v, dest_sy, act_npk, ch_npk,
           pu_idx, pv_idx, PD,
           fired, nfired, srcs, K, syn_now, sat_first,
           o_raster, o_spk, o_pout, o_pin, o_syn, o_hin, o_hout, o_H, o_V,
           o_pu, o_pv):
    """Run steps ``t0 .. t0 + T - 1``; ``o_*`` receive the per-step outputs (zeroed by caller)."""
    N = NT // C
    log2n = 0
    while (1 << log2n) < N:            # N is a power of two: s // N is s >> log2n
        log2n += 1
    C1 = C + 1
    n_ch = ch.shape[1]
    half = np.int64(1) << (acc_bits - 1)
    amask = (half << 1) - 1
    in_lo = -np.int64(_INPUT_HALF)        # sat18: the 18-bit dendritic input
    in_hi = np.int64(_INPUT_HALF) - 1
    s24 = np.int64(_STATE_HALF)
    m24 = (s24 << 1) - 1
    v_hi = s24 - 1                        # sat24 is symmetric: [-(2^23 - 1), 2^23 - 1]
    for i in range(T):
        t = t0 + i
        t_slot = t % D
        slot_base = t_slot * NT
        # UPDATE phase (section 4), cores split into P parts.
        for p in prange(P):
            nf = 0
            for j in range(act_ptr[p], act_ptr[p + 1]):
                g = act_g[j]
                r = slot_base + g
                a = np.int64(ring[r])
                ring[r] = 0
                a = ((a + half) & amask) - half   # the acc_bits-wide register's value
                x = a
                if x < in_lo:
                    x = in_lo
                elif x > in_hi:
                    x = in_hi
                if x != a and sat_first[p] < 0:
                    sat_first[p] = t
                uu = u[g]
                vv = v[g]
                if loihi:
                    # sign(x) * ((|x| * (4096 - d)) >> 12): rounded toward zero
                    if uu >= 0:
                        du_ = (uu * fu[j]) >> _DECAY_SHIFT
                    else:
                        du_ = -(((-uu) * fu[j]) >> _DECAY_SHIFT)
                    if vv >= 0:
                        dv_ = (vv * fv[j]) >> _DECAY_SHIFT
                    else:
                        dv_ = -(((-vv) * fv[j]) >> _DECAY_SHIFT)
                else:
                    du_ = uu - (uu >> fu[j])
                    dv_ = vv - (vv >> fv[j])
                un = ((du_ + (x << _ACT_SHIFT) + s24) & m24) - s24    # wrap24
                vn = dv_ + un + bias[j]
                if vn > v_hi:                                   # sat24
                    vn = v_hi
                elif vn < -v_hi:
                    vn = -v_hi
                if vn > vth6[j]:
                    if subtract:
                        vn = vn - vth6[j]
                    else:
                        vn = 0
                    fired[p, nf] = g
                    nf += 1
                    o_raster[i, g] = True
                    o_spk[i, act_core[j]] += 1
                    o_pout[i, act_core[j]] += act_npk[j]
                u[g] = un
                v[g] = vn
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
        for c in range(n_ch):
            if ch[i, c]:
                srcs[n_src] = NT + c
                n_src += 1
                o_hin[i] += ch_npk[c]
        for p in prange(P):
            base_q = p * S
            for j in range(min(PD, n_src)):
                _prefetch_nb(base_q + srcs[j], -1, grp_ptr, grp_bound, syn_word, pk_ptr, pk_word)
            for j in range(n_src):
                s = srcs[j]
                if PD > 0:
                    _prefetch_nb(base_q + srcs[j + PD] if j + PD < n_src else -1,
                                 base_q + srcs[j + 2 * PD] if j + 2 * PD < n_src else -1,
                                 grp_ptr, grp_bound, syn_word, pk_ptr, pk_word)
                krow = (s >> log2n) * C1 if s < NT else 0
                _deliver_nb(p, s, t_slot, D, NT, S, ring, grp_ptr, grp_slot, grp_bound,
                            syn_word, syn_shift, pk_ptr, pk_word, krow, K, syn_now)
            # Reduce this part's columns of K into the row/column path counts (lookup tables
            # instead of divisions: this runs n_cores * (n_cores + 1) times per step).
            for sc in range(C):
                row = sc * C1
                h_row = sc * W                     # (sy * W + sx) * W
                v_sy = dest_sy[sc]
                for jd in range(part_dest_ptr[p], part_dest_ptr[p + 1]):
                    d = part_dests[jd]
                    k = K[row + d]
                    if k != 0:
                        K[row + d] = 0
                        o_H[i, p, h_row + dest_dx[d]] += k
                        o_V[i, p, dest_v[d] + v_sy] += k
                        if d < C:
                            o_pin[i, d] += k
                        else:
                            o_hout[i] += k
        # Synapses per destination core.
        for d in range(C):
            o_syn[i, d] = syn_now[d]
            syn_now[d] = 0
        syn_now[C] = 0


_KERNELS = {}


def _kernel(parallel):
    """:func:`_chunk` compiled by numba (cached on disk), serial or threaded.

    The two variants get distinct names so that numba's on-disk cache keeps both.
    """
    fn = _KERNELS.get(parallel)
    if fn is None:
        import numba
        global _deliver_nb
        global _prefetch_nb
        if not isinstance(_deliver_nb, numba.core.registry.CPUDispatcher):
            _deliver_nb = numba.njit(cache=True, inline="always")(_deliver)
            _prefetch_nb = numba.njit(cache=True, inline="always")(_prefetch_source)
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
        if backend not in BACKENDS:
            raise EmulatorError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, "
                                f"not {backend!r}")
        if backend == "auto":
            backend = "numba" if numba_available() else "numpy"
        elif backend == "numba" and not numba_available():
            raise EmulatorError("backend 'numba' needs numba, which does not import here; "
                                "install neurotile[fast] or use backend='numpy'")
        if threads is None:
            threads = _auto_threads(image) if backend == "numba" else 1
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise EmulatorError(f"threads must be an int >= 1, not {threads!r}")
        self.image = image
        self.backend = backend
        tables = ChipTables(image)
        self.plan = _Plan(tables, int(threads) if backend == "numba" else 1)
        # Keep only the small tables: the per-synapse and fan-out ones live on in the plan.
        self._tb = types.SimpleNamespace(
            arch=tables.arch, n_cores=tables.n_cores, N=tables.N, D=tables.D,
            n_channels=tables.n_channels, in_names=tables.in_names, in_count=tables.in_count,
            lif=[getattr(tables, f) for f in ("du", "dv", "vth", "bias_mant", "bias_exp")])
        self._pops = {name: (core * tables.N + local)
                      for name, (core, local) in tables.populations.items()}
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

        step_fn = self._chunk_numba if self.backend == "numba" else self._chunk_numpy
        bufs = self._buffers(min(CHUNK, steps), pu_idx.size, pv_idx.size)
        for c0 in range(0, steps, CHUNK):
            T = min(CHUNK, steps - c0)
            out = {k: buf[:T] for k, buf in bufs.items()}
            for buf in out.values():
                buf.fill(0)
            step_fn(start + c0, ch[c0:c0 + T], ring, u, v, pu_idx, pv_idx, flag_first, out)
            sl = slice(c0, c0 + T)
            for name in ("spikes", "packets_out", "packets_in", "synops", "host_in", "host_out"):
                counters[name][sl] = out[name]
            link, hops = _links(pl, out["H"].sum(axis=1), out["V"].sum(axis=1),
                                out["packets_in"], out["host_out"], out["xl"])
            counters["link"][sl] = link
            counters["hops"][sl] = hops
            raster = out["raster"]
            for name, g in self._pops.items():
                spikes[name][sl] = raster[:, g]
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
                         probes=probe_out, counters=counters, flags=dict(state.flags),
                         flag_step=dict(state.flag_step))

    def _split_probes(self, data, keys, probe_out, sl):
        col = 0
        for key in keys:
            n = probe_out[key].shape[1]
            probe_out[key][sl] = data[:, col:col + n]
            col += n

    def _buffers(self, T, n_pu, n_pv):
        pl = self.plan
        C, P = pl.C, pl.P
        return dict(
            raster=np.zeros((T, pl.NT), bool),
            spikes=np.zeros((T, C), np.int64), packets_out=np.zeros((T, C), np.int64),
            packets_in=np.zeros((T, C), np.int64), synops=np.zeros((T, C), np.int64),
            host_in=np.zeros(T, np.int64), host_out=np.zeros(T, np.int64),
            H=np.zeros((T, P, pl.Hm * pl.W * pl.W), np.int64),
            V=np.zeros((T, P, pl.W * pl.Hm * pl.Hm), np.int64),
            xl=np.zeros((T, C * 5), np.int64),
            pu=np.zeros((T, n_pu), np.int64), pv=np.zeros((T, n_pv), np.int64),
        )

    def _chunk_numba(self, t0, ch, ring, u, v, pu_idx, pv_idx, flag_first, b):
        pl = self.plan
        T = ch.shape[0]
        if not hasattr(self, "_scratch"):
            self._scratch = (np.zeros((pl.P, max(pl.NT, 1)), np.int64), np.zeros(pl.P, np.int64),
                             np.zeros(max(pl.S, 1), np.int64),
                             np.zeros(pl.C * (pl.C + 1), np.int32), np.zeros(pl.C + 1, np.int64))
        fired, nfired, srcs, K, syn_now = self._scratch
        sat_first = np.full(pl.P, -1, np.int64)
        kernel = _kernel(pl.P > 1)
        kernel(t0, T, pl.D, pl.NT, pl.C, pl.W, pl.Hm, pl.P, pl.S, pl.acc_bits, pl.loihi,
               pl.subtract, ring, u, v,
               pl.act_g, pl.act_core, pl.act_ptr, pl.fu, pl.fv, pl.vth6, pl.bias,
               np.ascontiguousarray(ch),
               pl.grp_ptr, pl.grp_slot, pl.grp_bound, pl.syn_word, pl.syn_shift,
               pl.pk_ptr, pl.pk_word,
               pl.part_dests, pl.part_dest_ptr, pl.dest_dx, pl.dest_v, pl.dest_sy,
               pl.act_npk, pl.ch_npk,
               pu_idx, pv_idx, pl.prefetch,
               fired, nfired, srcs, K, syn_now, sat_first,
               b["raster"], b["spikes"], b["packets_out"], b["packets_in"], b["synops"],
               b["host_in"], b["host_out"], b["H"], b["V"], b["pu"], b["pv"])
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
            slot = np.repeat(pl.grp_slot, np.diff(pl.grp_bound))
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
            b["raster"][i, g_fired] = True
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
            sidx = _expand(pl.syn_ptr[srcs], pl.syn_ptr[srcs + 1] - pl.syn_ptr[srcs])
            if sidx.size:
                r = nt_["syn_roff"][sidx] + slot_base
                r[r >= DNT] -= DNT
                np.add.at(ring, r, nt_["syn_val"][sidx])   # int32: wraps like the kernel
            pidx = _expand(pl.pk_ptr[srcs], pl.pk_ptr[srcs + 1] - pl.pk_ptr[srcs])
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
        fired = np.concatenate([b["raster"][:, flagged[neuron]],
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
