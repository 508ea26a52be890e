"""The compiler: map a :class:`~.network.Network` onto an :class:`~.arch.Arch` as a :class:`~.image.ChipImage`.

Pipeline
--------
1. **Flatten.** Every input channel and every population neuron is a *source*, numbered in the order of
   ``net.groups`` (then by neuron index); every population neuron also has a *neuron* number in population order.
   All synapses become flat arrays in projection order, then in the order within each projection. User values are
   checked here (weights, delays, decay shifts, output count, accumulator bounds).
2. **Partition.** Neurons are cut into *blocks* (one per core) greedily in population order: each block takes the
   longest run of the next neurons whose neurons, axons (distinct sources), synapses and distinct profiles fit one
   core. Each of these grows with the run's length, so the use of every candidate length is computed at once from
   prefix counts and the longest that fits is read off (no trial-and-error search is needed). A block's fan-out
   (one entry per destination core of each of its neurons, plus a host entry per output neuron) depends on where
   the targets land, so it is checked once all blocks exist: a block that overflows is split at the longest prefix
   that fits (binary search), and the check repeats until every block fits.
3. **Place.** Blocks go to mesh positions: ``naive`` in row-major order, ``optimized`` by a seeded greedy
   construction plus pairwise-swap local search on the traffic-weighted hop count (see :func:`place`).
4. **Emit.** Axon, synapse, fan-out and profile tables of every core, each neuron's initial ``u``, ``v`` (``LIF.u0``,
   ``LIF.v0``, 0 by default) in its ``neuron_state`` word, the host's input packet lists and output map.
   The image is checked with :meth:`~.image.ChipImage.validate` before it is returned.

Every step is vectorised over synapses with numpy (sorts, ``bincount``, ``searchsorted``); Python loops run over
groups, projections, blocks and cores only, so a 10M-synapse network compiles in seconds.

Ordering rules (part of the architecture spec; the emulator and the RTL read the tables as-is):

- a core's axons are its distinct sources, numbered by source number;
- an axon's synapses are contiguous, in projection order, then in the order within the projection;
- a neuron's fan-out entries are one packet per destination core (by core index ``y * mesh_w + x``), then its host
  entry if it is an output;
- a core's profile table holds the distinct ``(du, dv, vth, bias_mant, bias_exp)`` rows of its neurons, sorted.
"""

import math

import numpy as np

from .arch import PROFILES, Arch
from .errors import MappingError, NetworkError, NeurotileTypeError, NeurotileValueError
from .image import ChipImage, CoreImage
from .network import Input, Network

__all__ = ["compile", "place", "hop_cost", "PLACEMENTS"]

#: Placement methods accepted by :func:`compile`.
PLACEMENTS = ("optimized", "naive")

#: Neuron parameters that make up a profile-table row, in the order of the ``profile`` layout.
PROFILE_FIELDS = ("du", "dv", "vth", "bias_mant", "bias_exp")


# -- helpers -------------------------------------------------------------------------------------------------------

def _stable_argsort(key, n_keys):
    """Stable argsort of integer keys in ``0 .. n_keys - 1``.

    numpy sorts 8- and 16-bit keys stably with a radix sort, so a few least-significant-digit passes over 16-bit
    digits beat a comparison sort of millions of wider keys several times over.
    """
    key = np.asarray(key)
    bits = max(1, int(n_keys - 1).bit_length())
    perm = None
    for shift in range(0, bits, 16):
        digit = key if perm is None else key[perm]
        width = min(16, bits - shift)
        digit = (digit >> shift) & ((1 << width) - 1)
        digit = digit.astype(np.uint8 if width <= 8 else np.uint16)
        p = np.argsort(digit, kind="stable")
        perm = p if perm is None else perm[p]
    return perm


def _offsets(counts):
    """``[0, c0, c0 + c1, ...]`` as int64."""
    out = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _first_occurrences(values, scratch):
    """Mask of the first occurrence of each value in ``values``.

    ``scratch`` is an int64 array longer than the largest value, filled with the largest int64; it is restored on
    return, so one scratch array serves many calls at a cost proportional to ``values.size``.
    """
    idx = np.arange(values.size)
    np.minimum.at(scratch, values, idx)
    first = scratch[values] == idx
    scratch[values] = np.iinfo(np.int64).max
    return first


def _names(names):
    return ", ".join(repr(n) for n in names)


# -- flattening ----------------------------------------------------------------------------------------------------

class _Flat:
    """The network as flat arrays over sources, neurons and synapses (see the module docstring).

    Members
    -------
    groups, pops : list
        ``net.groups`` values and the populations among them.
    src_off, nrn_off : dict of str to int
        First source number of every group; first neuron number of every population.
    n_src, N, S : int
        Numbers of sources, neurons and synapses.
    src_of_neuron : int64 [N]; neuron_of_src : int64 [n_src] (-1 for input channels)
    pop_of_neuron : int64 [N]
    params : int64 [N, 5]
        Profile fields per neuron, in :data:`PROFILE_FIELDS` order.
    state : dict of "u", "v" to int64 [N]
        Initial state per neuron (``LIF.u0``, ``LIF.v0``), written to the ``neuron_state`` memories.
    out_of_neuron : int64 [N]
        Output number of each neuron, -1 if its population is not an output.
    src, tgt : int32 [S]
        Source and target neuron number of every synapse.
    wdx : uint32 [S]
        ``weight & 0xff | delay << 8 | wexp << 16`` of every synapse, packed so that reordering the synapses
        costs one gather instead of three.
    """


def _flatten(net, arch):
    f = _Flat()
    f.groups = list(net.groups.values())
    f.pops = net.populations
    if not f.pops:
        raise NetworkError(f"network {net.name!r} has no populations, so there is nothing to map onto the chip: "
                           f"add neurons with net.population(...)")
    f.src_off, off = {}, 0
    for g in f.groups:
        f.src_off[g.name] = off
        off += g.n
    f.n_src = off
    f.nrn_off, off = {}, 0
    for p in f.pops:
        f.nrn_off[p.name] = off
        off += p.n
    f.N = off
    f.src_of_neuron = np.concatenate([f.src_off[p.name] + np.arange(p.n) for p in f.pops])
    f.neuron_of_src = np.full(f.n_src, -1, np.int64)
    f.neuron_of_src[f.src_of_neuron] = np.arange(f.N)
    f.pop_of_neuron = np.repeat(np.arange(len(f.pops)), [p.n for p in f.pops])
    f.params = np.stack([np.concatenate([p.params[k] for p in f.pops]) for k in PROFILE_FIELDS], axis=1)
    f.state = {k: np.concatenate([p.params[k + "0"] for p in f.pops]) for k in ("u", "v")}

    if arch.decay_mode == "shift":
        for p in f.pops:
            for k in ("du", "dv"):
                worst = int(p.params[k].max())
                if worst > 23:
                    raise MappingError(
                        f"population {p.name!r} has {k}={worst}, but decay_mode='shift' takes shift amounts 0..23 "
                        f"(exceeded by {worst - 23}): give {k} as a shift k (decay x - (x >> k)) or use "
                        f"decay_mode='loihi'")

    lo, hi = -(1 << (arch.weight_bits - 1)), (1 << (arch.weight_bits - 1)) - 1
    for proj in net.projections:
        if proj.n_synapses == 0:
            continue
        wmin, wmax = int(proj.weight.min()), int(proj.weight.max())
        if wmin < lo or wmax > hi:
            bad = wmax if wmax > hi else wmin
            raise MappingError(
                f"projection {proj.name!r} has weight {bad}, outside the {arch.weight_bits}-bit signed range "
                f"{lo}..{hi} (Arch.weight_bits): quantize the weights to that range and scale them with "
                f"weight_exp (each synapse adds weight << weight_exp), or raise weight_bits (at most 8)")
        dmax = int(proj.delay.max())
        if dmax > arch.max_delay:
            raise MappingError(
                f"projection {proj.name!r} has delay {dmax}, beyond the chip's max_delay of {arch.max_delay} "
                f"(exceeded by {dmax - arch.max_delay}): shorten the delay or use an Arch with "
                f"max_delay={1 << (dmax - 1).bit_length()}")

    f.out_of_neuron = np.full(f.N, -1, np.int64)
    k = 0
    for p in net.outputs:
        f.out_of_neuron[f.nrn_off[p.name]:f.nrn_off[p.name] + p.n] = np.arange(k, k + p.n)
        k += p.n
    if k > arch.host_out_depth:
        raise MappingError(
            f"the outputs ({_names(p.name for p in net.outputs)}) have {k} neurons, but the host output buffer "
            f"holds {arch.host_out_depth} spikes per step (host_out_depth, exceeded by {k - arch.host_out_depth}): "
            f"mark fewer populations as outputs or raise host_out_depth")

    # Accumulator bound: the most a neuron can receive in one step, counted per sign (all synapses of one sign
    # arriving together, e.g. all delays equal). validate() checks the same per core; here we can name the neuron.
    pos = np.zeros(f.N)
    neg = np.zeros(f.N)
    for proj in net.projections:
        if proj.n_synapses == 0:
            continue
        o, n = f.nrn_off[proj.post.name], proj.post.n
        scale = float(1 << proj.weight_exp)   # float64 sums of integers stay exact below 2**53
        pos[o:o + n] += np.bincount(proj.post_idx, np.maximum(proj.weight, 0) * scale, n)
        neg[o:o + n] += np.bincount(proj.post_idx, np.maximum(-proj.weight, 0) * scale, n)
    for sums, sign, what in ((pos, "+", "positive"), (neg, "-", "negative")):
        if sums.max() > arch.max_acc:
            n = int(np.argmax(sums))
            p = f.pops[f.pop_of_neuron[n]]
            total = int(sums[n])
            raise MappingError(
                f"population {p.name!r} neuron {n - f.nrn_off[p.name]} can receive {sign}{total} in one step (the "
                f"sum of its {what} weight << weight_exp), but a {arch.acc_bits}-bit accumulator holds at most "
                f"{arch.max_acc} (exceeded by {total - arch.max_acc}): use a smaller weight_exp, fewer or smaller "
                f"weights into it, or a larger Arch.acc_bits (at most 32)")

    f.S = net.n_synapses
    f.src = np.empty(f.S, np.int32)
    f.tgt = np.empty(f.S, np.int32)
    f.wdx = np.empty(f.S, np.uint32)
    a = 0
    for proj in net.projections:
        b = a + proj.n_synapses
        np.add(proj.pre_idx, f.src_off[proj.pre.name], out=f.src[a:b], casting="unsafe")
        np.add(proj.post_idx, f.nrn_off[proj.post.name], out=f.tgt[a:b], casting="unsafe")
        # weight (8 bits, two's complement; weight_bits <= 8 was checked above), delay (<= 64), wexp (<= 7)
        np.bitwise_and(proj.weight, 0xFF, out=f.wdx[a:b], casting="unsafe")
        f.wdx[a:b] |= (proj.delay.astype(np.uint32) << 8) | np.uint32(proj.weight_exp << 16)
        a = b
    return f


# -- partition -----------------------------------------------------------------------------------------------------

class _Partition:
    """Neuron blocks and the synapse order of the image.

    Members
    -------
    bounds : int64 [B + 1]
        Block ``b`` holds neurons ``bounds[b] .. bounds[b + 1] - 1``.
    blk_of : int64 [N]
    perm : int64 [S]
        Synapses in image order: by target block, then source, then network order.
    tgt_f : int32 [S]
        Target neuron of every synapse in image order.
    ptr : int64 [N + 1]
        Synapses onto neurons ``0 .. n-1`` number ``ptr[n]``.
    ax_start : int64 [A]
        Position in ``perm`` where each axon's synapses start (axons in image order).
    ax_src, ax_blk : int64 [A]
        Source and block of every axon.
    fan_n : int64 [N]
        Fan-out entries of every neuron.
    gprof : int64 [N]
        Profile number of every neuron: the rank of its parameter row among the network's distinct rows.
    cut_by : dict of str to list of str
        Limits (other than ``neurons_per_core``) that ended a block early, with the population of the neuron that
        did not fit.
    """


def _where(f, n):
    """``population 'p' neuron i`` for neuron number ``n``."""
    p = f.pops[f.pop_of_neuron[n]]
    return f"population {p.name!r} neuron {int(n) - f.nrn_off[p.name]}"


def _mesh_error(f, arch, B, cut_by):
    n = arch.n_cores
    if B > 256:
        fix = ("no mesh is that large (at most 16x16 = 256 cores): use larger cores (neurons_per_core, "
               "synapses_per_core, axons_per_core) or a smaller network")
    else:
        w = min(16, math.ceil(math.sqrt(B)))
        h = math.ceil(B / w)
        if arch == Arch(mesh_w=arch.mesh_w, mesh_h=arch.mesh_h):
            fix = f"use nt.Arch(mesh_w={w}, mesh_h={h}) or a larger profile"
        elif arch.name in PROFILES and arch == Arch.profile(arch.name, mesh_w=arch.mesh_w, mesh_h=arch.mesh_h):
            fix = f"use nt.Arch.profile({arch.name!r}, mesh_w={w}, mesh_h={h}) or a larger profile"
        else:
            fix = f"use arch.with_mesh({w}, {h}) or a larger profile"
    msg = f"network needs {B} cores but the {arch.mesh_w}x{arch.mesh_h} mesh has {n}: {fix}"
    if cut_by:
        parts = []
        for limit, pops in cut_by.items():
            detail = ""
            if limit == "profiles_per_core":
                counts = []
                for name in pops:
                    p = f.pops[[q.name for q in f.pops].index(name)]
                    rows = np.stack([p.params[k] for k in PROFILE_FIELDS], axis=1)
                    counts.append(f"{name!r} has {len(np.unique(rows, axis=0))} distinct profiles")
                detail = f" ({', '.join(counts)})"
            parts.append(f"{limit}={getattr(arch, limit)} in population(s) {_names(pops)}{detail}")
        msg += (f"; cores were filled below neurons_per_core={arch.neurons_per_core} by "
                f"{'; '.join(parts)}")
    return MappingError(msg)


def _partition(f, arch, perm_t, ptr, gprof, n_prof):
    """Greedy cut of neurons into blocks under the neuron, synapse, axon and profile limits."""
    npc, A, Smax, P = arch.neurons_per_core, arch.axons_per_core, arch.synapses_per_core, arch.profiles_per_core
    src_t = f.src[perm_t]
    indeg = np.diff(ptr)
    big = np.iinfo(np.int64).max
    src_scratch = np.full(f.n_src, big, np.int64)
    prof_scratch = np.full(n_prof, big, np.int64)
    starts, cut_by = [], {}
    s = 0
    while s < f.N:
        L = min(npc, f.N - s)
        e = s + L
        # Prefix sums over the candidate block: entry k - 1 is the use of the first k neurons.
        syn_k = ptr[s + 1:e + 1] - ptr[s]
        ss = src_t[ptr[s]:ptr[e]]
        t_local = np.repeat(np.arange(L), indeg[s:e])
        first = _first_occurrences(ss, src_scratch)
        ax_k = np.cumsum(np.bincount(t_local[first], minlength=L))
        prof_k = np.cumsum(_first_occurrences(gprof[s:e], prof_scratch))
        fits = {"synapses_per_core": syn_k <= Smax, "axons_per_core": ax_k <= A, "profiles_per_core": prof_k <= P}
        ok = fits["synapses_per_core"] & fits["axons_per_core"] & fits["profiles_per_core"]
        k = L if ok.all() else int(np.argmin(ok))   # every limit is monotone in k: the fitting k form a prefix
        if k == 0:
            where = _where(f, s)
            if syn_k[0] > Smax:
                raise MappingError(
                    f"{where} has {int(syn_k[0])} incoming synapses, but a core's synapse memory holds "
                    f"{Smax} (synapses_per_core, exceeded by {int(syn_k[0]) - Smax}): give it fewer inputs or "
                    f"use an Arch with more synapses_per_core")
            raise MappingError(
                f"{where} receives from {int(ax_k[0])} distinct sources, but a core has {A} axons "
                f"(axons_per_core, exceeded by {int(ax_k[0]) - A}): give it fewer presynaptic neurons or use an "
                f"Arch with more axons_per_core")
        if k < L:
            limit = next(name for name, m in fits.items() if not m[k])
            pop = f.pops[f.pop_of_neuron[s + k]].name
            cut_by.setdefault(limit, [])
            if pop not in cut_by[limit]:
                cut_by[limit].append(pop)
        starts.append(s)
        s += k
    return np.array(starts + [f.N], np.int64), cut_by


def _axons(f, perm_s, bounds):
    """Image synapse order and axon list for a partition (see :class:`_Partition`)."""
    B = bounds.size - 1
    blk_of = np.repeat(np.arange(B, dtype=np.int32), np.diff(bounds))
    tgt_s = f.tgt[perm_s]
    blk_s = blk_of[tgt_s]
    p2 = _stable_argsort(blk_s, B)
    perm = perm_s[p2]
    blk_f = blk_s[p2]
    tgt_f = tgt_s[p2]
    del blk_s, tgt_s
    # f.src[perm_s] is the sorted source list, which needs no gather; reorder it like the synapses.
    src_f = np.repeat(np.arange(f.n_src, dtype=np.int32), np.bincount(f.src, minlength=f.n_src))[p2]
    new = np.empty(f.S, bool)
    if f.S:
        new[0] = True
        np.not_equal(src_f[1:], src_f[:-1], out=new[1:])
        new[1:] |= blk_f[1:] != blk_f[:-1]
    del p2
    ax_start = np.flatnonzero(new)
    ax_src = src_f[ax_start].astype(np.int64)
    ax_blk = blk_f[ax_start].astype(np.int64)
    return blk_of.astype(np.int64), perm, tgt_f, ax_start, ax_src, ax_blk


def _fanout_per_neuron(f, ax_src):
    nrn = f.neuron_of_src[ax_src]
    return np.bincount(nrn[nrn >= 0], minlength=f.N) + (f.out_of_neuron >= 0)


def _split(f, arch, b, bounds, blk_of, fan_n, ptr, perm_t):
    """Longest prefix of block ``b`` whose fan-out fits if the block is split there (binary search)."""
    F = arch.fanout_per_core
    s, e = int(bounds[b]), int(bounds[b + 1])
    ss = f.src[perm_t[ptr[s]:ptr[e]]]
    tt = f.tgt[perm_t[ptr[s]:ptr[e]]]
    srcs = f.src_of_neuron[s:e]
    hit_b = np.zeros(f.n_src, bool)
    hit_b[ss] = True
    base = fan_n[s:e] - hit_b[srcs]          # entries to blocks other than b (and the host entry)

    def prefix_fanout(k):
        h1 = np.zeros(f.n_src, bool)
        h2 = np.zeros(f.n_src, bool)
        h1[ss[tt < s + k]] = True
        h2[ss[tt >= s + k]] = True
        return int(base[:k].sum() + h1[srcs[:k]].sum() + h2[srcs[:k]].sum())

    lo, hi = 1, e - s - 1                    # prefix 1 is always taken so that the loop makes progress
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if prefix_fanout(mid) <= F:
            lo = mid
        else:
            hi = mid - 1
    return s + lo


def _partition_all(f, arch):
    """Partition with every limit, fan-out included; returns a :class:`_Partition`."""
    perm_t = _stable_argsort(f.tgt, max(f.N, 1))
    ptr = _offsets(np.bincount(f.tgt, minlength=f.N))
    _, gprof = np.unique(f.params, axis=0, return_inverse=True)
    gprof = gprof.ravel().astype(np.int64)
    bounds, cut_by = _partition(f, arch, perm_t, ptr, gprof, int(gprof.max()) + 1)
    if bounds.size - 1 > arch.n_cores:
        raise _mesh_error(f, arch, bounds.size - 1, cut_by)
    perm_s = _stable_argsort(f.src, max(f.n_src, 1))
    F = arch.fanout_per_core
    while True:
        blk_of, perm, tgt_f, ax_start, ax_src, ax_blk = _axons(f, perm_s, bounds)
        fan_n = _fanout_per_neuron(f, ax_src)
        if fan_n.max() > F:
            n = int(np.argmax(fan_n))
            out = int(f.out_of_neuron[n] >= 0)
            raise MappingError(
                f"{_where(f, n)} needs {int(fan_n[n])} fan-out entries ({int(fan_n[n]) - out} destination cores"
                f"{' + 1 host entry' if out else ''}), but a core's fan-out memory holds {F} (fanout_per_core, "
                f"exceeded by {int(fan_n[n]) - F}): use an Arch with more fanout_per_core or larger cores "
                f"(neurons_per_core) so that its targets share fewer cores")
        fan_b = np.bincount(blk_of, fan_n, bounds.size - 1)
        bad = np.flatnonzero(fan_b > F)
        if not bad.size:
            break
        cuts = []
        for b in bad:
            # a one-neuron block's fan-out is its neuron's, checked above, so every bad block can be split
            cut = _split(f, arch, int(b), bounds, blk_of, fan_n, ptr, perm_t)
            cuts.append(cut)
            pop = f.pops[f.pop_of_neuron[cut]].name
            cut_by.setdefault("fanout_per_core", [])
            if pop not in cut_by["fanout_per_core"]:
                cut_by["fanout_per_core"].append(pop)
        bounds = np.unique(np.concatenate([bounds, cuts]).astype(np.int64))
        if bounds.size - 1 > arch.n_cores:
            raise _mesh_error(f, arch, bounds.size - 1, cut_by)
    p = _Partition()
    p.bounds, p.blk_of, p.perm, p.ax_start, p.ax_src, p.ax_blk = bounds, blk_of, perm, ax_start, ax_src, ax_blk
    p.tgt_f, p.ptr = tgt_f, ptr
    p.fan_n, p.cut_by, p.gprof = fan_n, cut_by, gprof
    return p


# -- placement -----------------------------------------------------------------------------------------------------

def _distances(arch):
    c = np.arange(arch.n_cores)
    x, y = c % arch.mesh_w, c // arch.mesh_w
    D = np.abs(x[:, None] - x[None, :]) + np.abs(y[:, None] - y[None, :])
    return D.astype(np.float64), (x + y).astype(np.float64)


def hop_cost(traffic, host, pos, arch):
    """Traffic-weighted hop count of a placement.

    ``sum_ij traffic[i, j] * hops(pos[i], pos[j]) + sum_i host[i] * hops(pos[i], (0, 0))``, with Manhattan hops
    (the XY route's length).

    Parameters
    ----------
    traffic : array [B, B]
        Fan-out entries from block ``i`` to block ``j``.
    host : array [B]
        Packets between block ``i`` and the host port at (0, 0), either way.
    pos : int array [B]
        Core index of each block.
    arch : Arch
    """
    pos = np.asarray(pos, np.int64)
    x, y = pos % arch.mesh_w, pos // arch.mesh_w
    D = np.abs(x[:, None] - x[None, :]) + np.abs(y[:, None] - y[None, :])
    return int(np.sum(np.asarray(traffic, np.int64) * D) + np.sum(np.asarray(host, np.int64) * (x + y)))


def _local_search(pi, W, h, D, H, max_iter):
    """Best-improvement pairwise swaps of ``pi`` (block -> position) until no swap lowers the cost.

    With ``P = D[pi][:, pi]`` and ``G = W @ P`` (W symmetric with a zero diagonal), swapping blocks r and s changes
    the cost by ``G[r,s] + G[s,r] - G[r,r] - G[s,s] + 2 W[r,s] P[r,s] + (h[r] - h[s]) (H[pi[s]] - H[pi[r]])``; all
    pairs are scored at once, and a swap updates G in O(n^2). Values are integers far below 2**53, so float64
    arithmetic is exact.
    """
    pi = pi.copy()
    n = pi.size
    P = D[np.ix_(pi, pi)]
    G = W @ P
    GT = G.T.copy()                  # kept alongside G: reading G.T strided costs more than updating a copy
    Hp = H[pi]
    dh = h[:, None] - h[None, :]
    delta = np.empty((n, n))
    tmp = np.empty((n, n))
    swaps = 0
    for _ in range(max_iter):
        g = np.diag(G)
        np.add(G, GT, out=delta)
        delta -= g[:, None]
        delta -= g[None, :]
        np.multiply(W, P, out=tmp)
        tmp *= 2
        delta += tmp
        np.subtract(Hp[None, :], Hp[:, None], out=tmp)
        tmp *= dh
        delta += tmp
        k = int(np.argmin(delta))
        r, s = divmod(k, n)
        if delta[r, s] > -0.5:
            break
        dw, dp = W[:, r] - W[:, s], P[s] - P[r]
        G += np.outer(dw, dp)
        G[:, [r, s]] = G[:, [s, r]]
        GT += np.outer(dp, dw)
        GT[[r, s]] = GT[[s, r]]
        P[[r, s]] = P[[s, r]]
        P[:, [r, s]] = P[:, [s, r]]
        pi[[r, s]] = pi[[s, r]]
        Hp[[r, s]] = Hp[[s, r]]
        swaps += 1
    return pi, swaps


def _greedy(W, h, D, H):
    """Place blocks one by one: the block most connected to those placed (host included) goes to the free
    position that adds the least cost (lowest index on ties)."""
    n = W.shape[0]
    pi = np.full(n, -1, np.int64)
    free = np.ones(n, bool)
    placed = np.zeros(n, bool)
    acc = np.zeros((n, n))            # acc[b, p]: cost of b at position p against the placed blocks
    conn = h.copy()                   # traffic between each block and the placed blocks plus the host
    total = W.sum(1) + h
    for _ in range(n):
        score = np.where(placed, -1.0, conn * (total.max() + 1) + total)
        b = int(np.argmax(score))
        inc = acc[b] + h[b] * H
        p = int(np.argmin(np.where(free, inc, np.inf)))
        pi[b] = p
        free[p] = False
        placed[b] = True
        acc += np.outer(W[:, b], D[p])
        conn += W[:, b]
    return pi


def place(traffic, host, arch, method="optimized", seed=0):
    """Assign blocks to mesh positions.

    ``naive`` puts block ``b`` on core ``b`` (row-major). ``optimized`` minimises :func:`hop_cost`: a greedy
    construction and the naive placement are each improved by pairwise-swap local search, then the best is
    perturbed by seeded random swaps and searched again a few times; the result is never worse than naive.

    Parameters
    ----------
    traffic : array [B, B]; host : array [B]
        As for :func:`hop_cost`.
    arch : Arch
    method : {"optimized", "naive"}
    seed : int
        Seed of the perturbations; the same seed gives the same placement.

    Returns
    -------
    pos : int64 array [B]
        Core index of every block.
    info : dict
        ``method``, ``seed``, ``hops_weighted``, ``hops_weighted_naive``, ``hops_weighted_greedy``, ``swaps``,
        ``fallback`` (True if the search ended worse than naive and naive was kept; as naive is one of the
        search's starts this does not happen, but the guarantee does not rest on that).
    """
    if method not in PLACEMENTS:
        raise NeurotileValueError(f"placement must be one of {_names(PLACEMENTS)}, not {method!r}")
    traffic = np.asarray(traffic, np.float64)
    host = np.asarray(host, np.float64)
    B, n = traffic.shape[0], arch.n_cores
    if traffic.shape != (B, B) or host.shape != (B,) or B > n:
        raise NeurotileValueError(f"place needs a square traffic matrix and one host figure per block, at most "
                                  f"{n} blocks; got traffic of shape {traffic.shape} and host of shape {host.shape}")
    naive = np.arange(B)
    naive_cost = hop_cost(traffic, host, naive, arch)
    info = {"method": method, "seed": int(seed), "hops_weighted_naive": naive_cost}
    if method == "naive" or n == 1:
        info.update(hops_weighted=naive_cost, hops_weighted_greedy=naive_cost, swaps=0, fallback=False)
        return naive, info
    D, H = _distances(arch)
    W = np.zeros((n, n))
    W[:B, :B] = traffic + traffic.T   # empty positions are zero-traffic dummy blocks
    np.fill_diagonal(W, 0)
    h = np.zeros(n)
    h[:B] = host

    def cost(pi):
        return hop_cost(traffic, host, pi[:B], arch)

    max_iter = 20 * n
    greedy = _greedy(W, h, D, H)
    greedy_cost = cost(greedy)
    best, best_cost, swaps = None, None, 0
    for start in (greedy, np.arange(n)):
        pi, k = _local_search(start, W, h, D, H, max_iter)
        swaps += k
        c = cost(pi)
        if best_cost is None or c < best_cost:
            best, best_cost = pi, c
    rng = np.random.default_rng(seed)
    restarts = 6 if n <= 64 else 1
    for _ in range(restarts):
        pi = best.copy()
        for _ in range(max(2, B // 4)):
            r, s = rng.choice(n, 2, replace=False)
            pi[[r, s]] = pi[[s, r]]
        pi, k = _local_search(pi, W, h, D, H, max_iter)
        swaps += k
        c = cost(pi)
        if c < best_cost:
            best, best_cost = pi, c
    fallback = best_cost > naive_cost
    if fallback:
        best, best_cost = np.arange(n), naive_cost
    info.update(hops_weighted=int(best_cost), hops_weighted_greedy=int(greedy_cost), swaps=int(swaps),
                fallback=bool(fallback))
    return best[:B].astype(np.int64), info


# -- the compiler --------------------------------------------------------------------------------------------------

def compile(net, arch=None, *, placement="optimized", seed=0):
    """Compile ``net`` for ``arch`` into a chip image.

    Parameters
    ----------
    net : Network
    arch : Arch, optional
        The chip; ``nt.Arch()`` (a 2x2 mesh) if omitted.
    placement : {"optimized", "naive"}
        How blocks of neurons are assigned to cores (see :func:`place`). Both hop counts are always reported in
        ``image.meta["placement"]``.
    seed : int
        Seed of the placement search; compiling twice with one seed gives identical images.

    Returns
    -------
    ChipImage
        Validated (:meth:`~.image.ChipImage.validate`).

    Raises
    ------
    NeurotileTypeError
        ``net`` is not a Network, ``arch`` not an Arch, ``seed`` not an int.
    NeurotileValueError
        Unknown ``placement``.
    NetworkError
        The network has no populations.
    MappingError
        The network does not fit ``arch``: a weight outside ``weight_bits``, a delay beyond ``max_delay``, a shift
        decay above 23, more outputs than ``host_out_depth``, a neuron whose accumulator could wrap, a neuron whose
        fan-in, distinct sources or fan-out exceed one core, more cores than the mesh has (the message says which
        limits filled the cores), or more input packets per step than ``host_in_depth``.
    """
    made_for = getattr(net, "arch", None)      # networks imported from NIR carry the Arch they were quantized for
    if arch is None:
        arch = made_for if isinstance(made_for, Arch) else Arch()
    if not isinstance(net, Network):
        raise NeurotileTypeError(f"net must be an nt.Network, not {type(net).__name__}")
    if not isinstance(arch, Arch):
        raise NeurotileTypeError(f"arch must be an nt.Arch, not {type(arch).__name__}")
    if isinstance(made_for, Arch):
        for field in ("decay_mode", "reset_mode", "weight_bits"):
            if getattr(made_for, field) != getattr(arch, field):
                raise MappingError(
                    f"network {net.name!r} was quantized for {field}={getattr(made_for, field)!r} but the target "
                    f"arch has {field}={getattr(arch, field)!r}: compile with arch=net.arch (or a copy of it with "
                    f"another mesh: net.arch.with_mesh(w, h)), or import the graph again for this arch")
    if placement not in PLACEMENTS:
        raise NeurotileValueError(f"placement must be one of {_names(PLACEMENTS)}, not {placement!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise NeurotileTypeError(f"seed must be an int, not {seed!r}")

    f = _flatten(net, arch)
    part = _partition_all(f, arch)
    f.src = f.tgt = None            # the partition holds what is still needed, in image order
    bounds, blk_of = part.bounds, part.blk_of
    B = bounds.size - 1

    # Host input: one packet per (input channel, destination core) when every channel spikes in one step.
    ax_nrn = f.neuron_of_src[part.ax_src]
    from_input = ax_nrn < 0
    n_in = int(from_input.sum())
    if n_in > arch.host_in_depth:
        per = []
        for g in (g for g in f.groups if isinstance(g, Input)):
            o = f.src_off[g.name]
            c = int(np.count_nonzero((part.ax_src >= o) & (part.ax_src < o + g.n)))
            per.append(f"{g.name!r}: {c}")
        raise MappingError(
            f"if every input channel spikes in one step the host sends {n_in} packets ({', '.join(per)}; one per "
            f"channel and destination core), but the host input buffer holds {arch.host_in_depth} "
            f"(host_in_depth, exceeded by {n_in - arch.host_in_depth}): use fewer input channels, connect each to "
            f"fewer cores, or raise host_in_depth")

    # Traffic between blocks (fan-out entries) and with the host port.
    src_blk = blk_of[ax_nrn[~from_input]]
    traffic = np.bincount(src_blk * B + part.ax_blk[~from_input], minlength=B * B).reshape(B, B)
    host = (np.bincount(part.ax_blk[from_input], minlength=B)
            + np.bincount(blk_of[f.out_of_neuron >= 0], minlength=B))
    del ax_nrn, from_input, src_blk
    pos, info = place(traffic, host, arch, placement, seed)
    info["traffic_packets"] = int(traffic.sum() + host.sum())

    cores, inputs = _emit(f, arch, part, pos)

    core_of_neuron = pos[blk_of]
    local_of_neuron = np.arange(f.N) - bounds[blk_of]
    populations = {p.name: {"core": core_of_neuron[f.nrn_off[p.name]:f.nrn_off[p.name] + p.n].copy(),
                            "local": local_of_neuron[f.nrn_off[p.name]:f.nrn_off[p.name] + p.n].copy()}
                   for p in f.pops}
    outputs = {"names": [p.name for p in net.outputs],
               "pop": np.repeat(np.arange(len(net.outputs)), [p.n for p in net.outputs]).astype(np.int64),
               "neuron": (np.concatenate([np.arange(p.n) for p in net.outputs]) if net.outputs
                          else np.zeros(0)).astype(np.int64)}
    meta = {
        "network": net.name,
        "n_neurons": int(f.N), "n_synapses": int(f.S), "n_input_channels": int(f.n_src - f.N),
        "cores_used": int(B),
        "partition": {"blocks": np.diff(bounds).tolist(), "cut_by": part.cut_by},
        "placement": info,
    }
    del f, part
    image = ChipImage(arch, cores, inputs, outputs, populations, meta)
    image.validate()
    return image


def _emit(f, arch, part, pos):
    """The core images and ``image.inputs``; consumes the large arrays of ``part`` as it goes."""
    bounds, B = part.bounds, part.bounds.size - 1
    cores = [CoreImage.empty(arch, c % arch.mesh_w, c // arch.mesh_w) for c in range(arch.n_cores)]
    core_of = [cores[int(pos[b])] for b in range(B)]

    # Neurons and profiles: a core's profile table is the sorted distinct parameter rows of its neurons (global
    # profile numbers follow the same row order, so sorting them sorts the rows).
    for b, core in enumerate(core_of):
        s, e = int(bounds[b]), int(bounds[b + 1])
        core.n_neurons = e - s
        t = core.tables
        g = part.gprof[s:e]
        used, first, inverse = np.unique(g, return_index=True, return_inverse=True)
        for i, k in enumerate(PROFILE_FIELDS):
            t["profile"][k][:used.size] = f.params[s + first, i]
        t["neuron_cfg"]["profile"][:e - s] = inverse.ravel()
        for k in ("u", "v"):
            t["neuron_state"][k][:e - s] = f.state[k][s:e]      # initial state (LIF u0, v0; 0 by default)

    # Axon tables: the axons of block b are part.ax_* [ax_ptr[b] : ax_ptr[b + 1]], numbered from 0 in that order.
    ax_ptr = np.searchsorted(part.ax_blk, np.arange(B + 1))
    syn_ptr = part.ptr[bounds]      # blocks are runs of neurons, so their synapses are runs too
    ax_end = np.append(part.ax_start[1:], f.S)
    for b, core in enumerate(core_of):
        a0, a1, s0 = ax_ptr[b], ax_ptr[b + 1], syn_ptr[b]
        core.n_axons = int(a1 - a0)
        core.tables["axon"] = {"base": part.ax_start[a0:a1] - s0, "count": ax_end[a0:a1] - part.ax_start[a0:a1]}
    del ax_end
    part.ax_start = None

    # Packets: one per axon, sorted by (source, destination core), which is the fan-out order.
    ax_core = pos[part.ax_blk].astype(np.int32)
    ax_local = (np.arange(part.ax_blk.size) - ax_ptr[part.ax_blk]).astype(np.int32)
    q = _stable_argsort(ax_core, arch.n_cores)
    q = q[_stable_argsort(part.ax_src[q], max(f.n_src, 1))]
    p_src, p_core, p_axon = part.ax_src[q], ax_core[q], ax_local[q]
    del q, ax_core, ax_local
    part.ax_src = part.ax_blk = None
    pk_count = np.bincount(p_src, minlength=f.n_src)
    pk_ptr = _offsets(pk_count)

    # Fan-out memory of every neuron: its packets (by destination core), then its host entry.
    e_off = _offsets(part.fan_n)
    fan = {k: np.zeros(int(e_off[-1]), np.int64) for k in ("host", "x", "y", "index")}
    p_nrn = f.neuron_of_src[p_src]
    m = p_nrn >= 0
    at = e_off[p_nrn[m]] + (np.flatnonzero(m) - pk_ptr[p_src[m]])
    fan["x"][at] = p_core[m] % arch.mesh_w
    fan["y"][at] = p_core[m] // arch.mesh_w
    fan["index"][at] = p_axon[m]
    del p_nrn, m, at
    outs = np.flatnonzero(f.out_of_neuron >= 0)
    at = e_off[outs] + pk_count[f.src_of_neuron[outs]]
    fan["host"][at] = 1
    fan["index"][at] = f.out_of_neuron[outs]
    for b, core in enumerate(core_of):
        s, e = int(bounds[b]), int(bounds[b + 1])
        count = part.fan_n[s:e]
        core.tables["fanout_index"]["base"][:e - s] = np.where(count > 0, e_off[s:e] - e_off[s], 0)
        core.tables["fanout_index"]["count"][:e - s] = count
        core.tables["fanout"] = {k: v[e_off[s]:e_off[e]] for k, v in fan.items()}
    del fan

    # Host input packets of every input channel.
    inputs = {}
    for g in f.groups:
        if not isinstance(g, Input):
            continue
        o = f.src_off[g.name]
        a, b = int(pk_ptr[o]), int(pk_ptr[o + g.n])
        count = pk_count[o:o + g.n].astype(np.int64)
        inputs[g.name] = {
            "n": int(g.n),
            "base": np.where(count > 0, pk_ptr[o:o + g.n] - a, 0),
            "count": count,
            "packets": {"host": np.zeros(b - a, np.int64), "x": (p_core[a:b] % arch.mesh_w).astype(np.int64),
                        "y": (p_core[a:b] // arch.mesh_w).astype(np.int64),
                        "index": p_axon[a:b].astype(np.int64)},
        }
    del p_src, p_core, p_axon

    # Synapse memory, in image order (block, source, network order), fields as int64.
    wdx = f.wdx[part.perm]
    part.perm = None
    local_of_neuron = np.arange(f.N) - bounds[part.blk_of]
    syn = {"target": local_of_neuron[part.tgt_f]}
    part.tgt_f = None
    syn["weight"] = (wdx & 0xFF).astype(np.uint8).view(np.int8).astype(np.int64)
    syn["delay"] = ((wdx >> 8) & 0xFF).astype(np.int64) - 1
    syn["wexp"] = (wdx >> 16).astype(np.int64)
    del wdx
    for b, core in enumerate(core_of):
        s0, s1 = syn_ptr[b], syn_ptr[b + 1]
        core.tables["synapse"] = {k: v[s0:s1] for k, v in syn.items()}
    return cores, inputs
