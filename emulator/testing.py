"""Seeded random networks, inputs and edge-case networks for the emulator's tests.

Every engine (reference, functional, cycle, RTL) is checked on the same workloads: the random
networks of :func:`random_network` driven by :func:`random_inputs`, and the hand-built networks of
:func:`edge_network` that push the arithmetic of docs/architecture.md to its limits (u wrap,
v saturation, accumulator-input saturation, mesh congestion). Everything is a function of a seed,
so a failing case can be replayed exactly.

:func:`network_model` runs a :class:`~neurotile.Network` directly, from the spec's equations and
without any chip image: it is the compiler-independent answer the engines must reproduce.
"""

from typing import NamedTuple

import numpy as np

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileTypeError, NeurotileValueError
from ..compiler.network import LIF, Network

__all__ = ["random_network", "random_inputs", "edge_network", "EdgeCase", "EDGE_KINDS",
           "no_decay", "full_decay", "network_model", "hand_image"]

#: The kinds :func:`edge_network` builds.
EDGE_KINDS = ("u_wrap", "v_sat", "acc_sat", "congestion")


def no_decay(decay_mode):
    """The decay value that keeps a variable (loihi: dv = 0; shift: k = 23).

    In ``loihi`` mode this is exact for v (``dv = 0``); for u the smallest decay is ``du = 0``,
    which still removes ``1/4096`` per step (the ``du + 1`` offset). In ``shift`` mode ``k = 23``
    keeps every positive value below ``2^23`` and moves a negative one up by 1
    (``x - (x >> 23) = x + 1``).
    """
    return 0 if decay_mode == "loihi" else 23


def full_decay(decay_mode):
    """The decay value that clears a variable every step (loihi: 4095 for u; shift: k = 0)."""
    return 4095 if decay_mode == "loihi" else 0


def _check_mode(decay_mode):
    if decay_mode not in Arch.MODES["decay_mode"]:
        raise NeurotileValueError(f"decay_mode must be one of 'loihi', 'shift', "
                                  f"not {decay_mode!r}")


def _random_lif(rng, n, decay_mode, profiles=None):
    """Per-neuron LIF parameters that make a neuron fire now and then under random input.

    Inputs of the random networks add at most ``80 << 2 = 320`` per synapse, i.e. ``20480`` to u;
    thresholds ``vth << 6`` of ``640 .. 16000`` and a mostly positive bias of up to
    ``200 << 3 = 1600`` per step give a few spikes per neuron in a few tens of steps.
    """
    m = n if profiles is None else profiles
    if decay_mode == "loihi":
        du = rng.integers(256, 4096, m)          # u keeps 0 .. 94 % per step
        dv = rng.integers(0, 2048, m)            # v keeps 50 .. 100 % per step
    else:
        du = rng.integers(0, 5, m)               # u keeps 0 .. 94 % (k = 0 clears)
        dv = rng.integers(1, 24, m)              # v keeps 50 .. ~100 %
    rows = dict(du=du, dv=dv, vth=rng.integers(10, 250, m), bias_mant=rng.integers(-40, 200, m),
                bias_exp=rng.integers(0, 4, m))
    if profiles is not None:
        pick = rng.integers(0, profiles, n)      # each neuron takes one of the parameter sets
        rows = {k: x[pick] for k, x in rows.items()}
    return LIF(**rows)


def random_network(seed, *, n_inputs=8, sizes=(24, 16), p=0.3, max_delay=4, recurrent=True,
                   weight_range=(-80, 80), weight_exp_max=2, neuron="random", outputs="last",
                   decay_mode="loihi", profiles=4):
    """A seeded random feed-forward (optionally recurrent) network of LIF populations.

    Input group ``"in"`` (``n_inputs`` channels) feeds ``"p0"``, which feeds ``"p1"``, and so on;
    with ``recurrent`` each population also connects to itself. Each possible synapse exists with
    probability ``p`` and has a uniform random weight in ``weight_range`` (inclusive; zero weights
    stay synapses) and delay in ``1 .. max_delay``; each projection has a random
    ``weight_exp`` in ``0 .. weight_exp_max``.

    Parameters
    ----------
    seed : int
        Seed of the ``numpy.random.Generator``; the same seed gives the same network.
    n_inputs : int
        Input channels of group ``"in"``.
    sizes : sequence of int
        Population sizes; populations are named ``"p0"``, ``"p1"``, ...
    p : float
        Connection probability of each (pre, post) pair of every projection.
    max_delay : int
        Longest delay; keep it ``<= arch.max_delay``.
    recurrent : bool
        Add a projection ``p_i -> p_i`` for every population.
    weight_range : (int, int)
        Inclusive weight bounds; keep them within ``arch.weight_bits`` signed.
    weight_exp_max : int
        Largest ``weight_exp`` (0..7).
    neuron : "random" or nt.LIF
        ``"random"`` draws per-neuron parameters for which neurons fire now and then (see
        ``decay_mode``); an :class:`~neurotile.LIF` is used for every population as given.
    outputs : "last", "all", "none" or list of str
        Populations marked as outputs.
    decay_mode : {"loihi", "shift"}
        Decay mode the random parameters are drawn for (``du``/``dv`` are shift amounts
        0..23 in ``shift`` mode); pass ``arch.decay_mode``.
    profiles : int or None
        With ``neuron="random"``: draw this many parameter sets per population and give each
        neuron one of them. The default 4 lets the default sizes fit one core of the default
        ``Arch`` (16 profile entries); use 2 for the ``ice40up5k`` profile (4 entries), and
        ``None`` for one set per neuron, which fills cores by their profile tables (16 neurons
        per core by default) and so spreads a small network over the mesh.

    Returns
    -------
    Network
    """
    _check_mode(decay_mode)
    if not (isinstance(neuron, LIF) or neuron == "random"):
        raise NeurotileTypeError(f"neuron must be 'random' or an nt.LIF, not {neuron!r}")
    lo, hi = weight_range
    if lo > hi:
        raise NeurotileValueError(f"weight_range must be (low, high) with low <= high, "
                                  f"not {weight_range!r}")
    rng = np.random.default_rng(seed)
    net = Network(f"random{seed}")
    prev = net.input(n_inputs, name="in")
    pops = []
    for k, n in enumerate(sizes):
        lif = _random_lif(rng, n, decay_mode, profiles) if neuron == "random" else neuron
        pop = net.population(n, lif, name=f"p{k}")
        pops.append(pop)
        pres = [prev] + ([pop] if recurrent else [])
        for pre in pres:
            mask = rng.random((pre.n, pop.n)) < p
            pre_idx, post_idx = np.nonzero(mask)
            weight = rng.integers(lo, hi + 1, pre_idx.size)
            delay = rng.integers(1, max_delay + 1, pre_idx.size)
            wexp = int(rng.integers(0, weight_exp_max + 1))
            net.connect(pre, pop, (pre_idx, post_idx, weight), delay=delay, weight_exp=wexp)
        prev = pop
    if outputs == "last":
        chosen = pops[-1:]
    elif outputs == "all":
        chosen = pops
    elif outputs == "none":
        chosen = []
    elif isinstance(outputs, (list, tuple)):
        chosen = [net.groups[name] if isinstance(name, str) else name for name in outputs]
    else:
        raise NeurotileValueError(f"outputs must be 'last', 'all', 'none' or a list of "
                                  f"population names, not {outputs!r}")
    for pop in chosen:
        net.output(pop)
    return net


def random_inputs(net, steps, rate, seed):
    """Bernoulli input spikes for every input group of ``net``.

    Parameters
    ----------
    net : Network
    steps : int
    rate : float
        Probability that a channel spikes in a step (0..1).
    seed : int

    Returns
    -------
    dict of str to ndarray of bool, shape [steps, n]
        One array per input group, in ``net.inputs`` order.
    """
    rng = np.random.default_rng(seed)
    return {g.name: rng.random((steps, g.n)) < rate for g in net.inputs}


class EdgeCase(NamedTuple):
    """An edge-case workload: a network and the input spikes that drive it to the edge.

    Members
    -------
    network : Network
    inputs : dict of str to ndarray of bool, shape [steps, n]
    """

    network: Network
    inputs: dict

    @property
    def steps(self):
        return next(iter(self.inputs.values())).shape[0]


def _sum_synapses(target, weight_bits, wexp_hi):
    """Synapses (weight, wexp) whose ``weight << wexp`` add up to exactly ``target``.

    Uses the largest weight of the sign at ``wexp_hi`` as often as it fits, and the remainder at
    ``wexp = 0``, so that the dendritic sum hits a chosen value to the unit.
    """
    wmax = (1 << (weight_bits - 1)) - 1 if target >= 0 else -(1 << (weight_bits - 1))
    big = wmax << wexp_hi
    k, rest = divmod(abs(target), abs(big))
    hi = [wmax] * k
    lo = [wmax] * (rest // abs(wmax)) + ([rest % abs(wmax) * (1 if target >= 0 else -1)]
                                          if rest % abs(wmax) else [])
    return hi, lo


def _edge_targets(net, arch, src, pop, sums):
    """Connect channel 0 of ``src`` to neuron j of ``pop`` with synapses summing to sums[j]."""
    wexp_hi = (1 << Arch.WEIGHT_EXP_BITS) - 1      # 7: the largest weight exponent
    parts = {wexp_hi: ([], []), 0: ([], [])}
    for j, total in enumerate(sums):
        hi, lo = _sum_synapses(total, arch.weight_bits, wexp_hi)
        parts[wexp_hi][0].extend(hi)
        parts[wexp_hi][1].extend([j] * len(hi))
        parts[0][0].extend(lo)
        parts[0][1].extend([j] * len(lo))
    for wexp, (w, post) in parts.items():
        if w:
            net.connect(src, pop, (np.zeros(len(w), np.int64), np.array(post), np.array(w)),
                        delay=1, weight_exp=wexp, name=f"{src.name}->{pop.name}@{wexp}")


def edge_network(kind, arch):
    """A small network and input that drive the neuron arithmetic or the mesh to an edge.

    Kinds (see docs/architecture.md sections 4 to 6):

    ``"u_wrap"``
        Input ``"in"`` (1 channel) spikes in steps 0 and 1; population ``"edge"`` neuron 0 gets
        ``2^17 - 64`` (so ``u = 2^23 - 4096`` after step 1), neuron 1 gets exactly ``-2^17``
        (``u = -2^23``), both with the slowest u decay: the second input pushes u past
        ``+2^23`` / below ``-2^23`` in step 2 and u wraps. Neuron 2 gets ``2^17 - 1``, the
        largest input that does not saturate. No ``acc_sat``.
    ``"v_sat"``
        No synaptic input is needed: population ``"edge"`` neuron 0 has bias
        ``4095 << 7`` and the largest threshold, so v is clamped to ``2^23 - 1`` before it
        fires; neuron 1 has bias ``-4096 << 7`` and v settles at ``-(2^23 - 1)``; dv keeps v.
        Input ``"in"`` (1 channel, never spiking) feeds neuron 2 weakly.
    ``"acc_sat"``
        Input ``"in"`` (1 channel) spikes in steps 0 and 3; population ``"edge"`` neurons
        receive ``2^17 + 2^16``, ``-2^17 - 2^16`` (both saturate and raise ``acc_sat``),
        ``2^17 - 1`` and ``-2^17`` (exactly the limits: no saturation). u is cleared every
        step. Needs ``acc_bits >= 19`` (else no sum can exceed 18 bits).
    ``"congestion"``
        Population ``"src"`` (bias only, fires every step) of ``(n_cores - 1) * N / 2``
        neurons spread over several cores and input ``"in"`` (64 channels spiking every step)
        all project onto population ``"dst"`` (8 neurons, one core), whose spikes are outputs;
        the ``src`` spikes are outputs too when ``host_out_depth`` allows, so the host exit is
        busy as well.

    Parameters
    ----------
    kind : str
        One of :data:`EDGE_KINDS`.
    arch : Arch
        Widths and modes the network is built for (weights, ``acc_bits``, decay mode, mesh).

    Returns
    -------
    EdgeCase
        ``(network, inputs)``; ``EdgeCase.steps`` is the length of the inputs.

    Raises
    ------
    NeurotileValueError
        Unknown kind, or an architecture on which the edge cannot be reached.
    """
    if not isinstance(arch, Arch):
        raise NeurotileTypeError(f"arch must be an nt.Arch, not {type(arch).__name__}")
    if kind not in EDGE_KINDS:
        raise NeurotileValueError(f"edge kind must be one of {', '.join(map(repr, EDGE_KINDS))}, "
                                  f"not {kind!r}")
    mode = arch.decay_mode
    keep, clear = no_decay(mode), full_decay(mode)
    net = Network(f"edge_{kind}")
    lim = 1 << (arch.input_bits - 1)         # 2^17
    if kind == "u_wrap":
        steps = 6
        src = net.input(1, name="in")
        # Largest threshold so the huge u hardly ever fires v; v is left to saturate.
        pop = net.population(3, LIF(du=keep, dv=keep,
                                    vth=(1 << 17) - 1), name="edge")
        _edge_targets(net, arch, src, pop, [lim - 64, -lim, lim - 1])
        spikes = np.zeros((steps, 1), bool)
        spikes[[0, 1], 0] = True
        net.output(pop)
        return EdgeCase(net, {"in": spikes})
    if kind == "v_sat":
        steps = 24
        src = net.input(1, name="in")
        pop = net.population(3, LIF(du=clear, dv=keep, vth=[(1 << 17) - 1, 100, 100],
                                    bias_mant=[4095, -4096, 0], bias_exp=[7, 7, 0]),
                             name="edge")
        net.connect(src, pop, (np.array([0]), np.array([2]), np.array([1])))
        net.output(pop)
        return EdgeCase(net, {"in": np.zeros((steps, 1), bool)})
    if kind == "acc_sat":
        if arch.acc_bits <= arch.input_bits:
            raise NeurotileValueError(
                f"edge_network('acc_sat') needs acc_bits > input_bits ({arch.input_bits}) so that "
                f"a dendritic sum can exceed the {arch.input_bits}-bit input, not "
                f"acc_bits={arch.acc_bits}; use an Arch with acc_bits >= {arch.input_bits + 1}")
        steps = 6
        over = min(lim + lim // 2, arch.max_acc)
        src = net.input(1, name="in")
        pop = net.population(4, LIF(du=clear, dv=keep, vth=(1 << 17) - 1), name="edge")
        _edge_targets(net, arch, src, pop, [over, -over, lim - 1, -lim])
        spikes = np.zeros((steps, 1), bool)
        spikes[[0, 3], 0] = True
        net.output(pop)
        return EdgeCase(net, {"in": spikes})
    # congestion
    if arch.n_cores < 2:
        raise NeurotileValueError(f"edge_network('congestion') needs a mesh of at least 2 cores, "
                                  f"not {arch.mesh_w}x{arch.mesh_h}; use mesh_w=2 or more")
    steps = 4
    N = arch.neurons_per_core
    n_src = max(1, (arch.n_cores - 1) * N // 2)
    src_in = net.input(64, name="in")
    src = net.population(n_src, LIF(du=clear, dv=clear, vth=0, bias_mant=1), name="src")
    dst = net.population(8, LIF(du=clear, dv=clear, vth=100), name="dst")
    net.connect(src, dst, np.ones((n_src, 8), np.int64), delay=1)
    net.connect(src_in, dst, np.ones((64, 8), np.int64), delay=2)
    net.output(dst)
    if n_src + dst.n <= arch.host_out_depth:
        net.output(src)
    return EdgeCase(net, {"in": np.ones((steps, 64), bool)})


def network_model(net, arch, inputs, steps=None, probes=()):
    """Run ``net`` straight from the spec, without compiling it: the compiler-independent answer.

    Each population is a block of neurons with a ring of ``arch.max_delay`` dendritic
    accumulators; a spike (or input spike) of step t through a synapse of delay d adds
    ``weight << weight_exp`` into the ring slot of step ``t + d`` (wrapped to ``acc_bits``), and
    step t's update reads and clears its slot, then applies :func:`.neuron.lif_update`
    (section 4). The state starts at each population's ``u0``, ``v0`` (0 unless given).

    Parameters
    ----------
    net : Network
    arch : Arch
        Supplies ``max_delay``, ``acc_bits`` and the decay and reset modes.
    inputs : dict of str to bool array [steps, n]
    steps : int, optional
        Defaults to the length of the inputs.
    probes : sequence of (population name, "u" or "v")

    Returns
    -------
    spikes : dict of str to bool ndarray [steps, n]
    probes : dict of "pop.var" to int64 ndarray [steps, n]
    acc_sat_step : int
        First step in which some accumulator input saturated, -1 if none.
    """
    from .neuron import lif_update

    if steps is None:
        steps = next(iter(inputs.values())).shape[0] if inputs else 0
    D = arch.max_delay
    pops = net.populations
    state = {p.name: {"u": p.params["u0"].copy(), "v": p.params["v0"].copy(),
                      "acc": np.zeros((D, p.n), np.int64)} for p in pops}
    spikes = {p.name: np.zeros((steps, p.n), bool) for p in pops}
    out_probes = {f"{name}.{var}": np.zeros((steps, net.groups[name].n), np.int64)
                  for name, var in probes}
    acc_sat_step = -1
    half = 1 << (arch.acc_bits - 1)
    for t in range(steps):
        fired = {}
        for p in pops:
            s = state[p.name]
            slot = t % D
            a = s["acc"][slot].copy()
            s["acc"][slot] = 0
            prm = p.params
            s["u"], s["v"], fired[p.name], sat = lif_update(
                s["u"], s["v"], a, prm["du"], prm["dv"], prm["vth"], prm["bias_mant"],
                prm["bias_exp"], decay_mode=arch.decay_mode, reset_mode=arch.reset_mode)
            if sat.any() and acc_sat_step < 0:
                acc_sat_step = t
            spikes[p.name][t] = fired[p.name]
        for name, var in probes:
            out_probes[f"{name}.{var}"][t] = state[name][var]
        for proj in net.projections:
            if proj.pre.kind == "input":
                src = np.asarray(inputs[proj.pre.name][t], bool)
            else:
                src = fired[proj.pre.name]
            on = src[proj.pre_idx]
            if not on.any():
                continue
            acc = state[proj.post.name]["acc"]
            slots = (t + proj.delay[on]) % D
            np.add.at(acc, (slots, proj.post_idx[on]), proj.weight[on] << proj.weight_exp)
            acc[:] = ((acc + half) % (2 * half)) - half
    return spikes, out_probes, acc_sat_step


def hand_image(arch, neurons, axons=None, inputs=None, n_outputs=None):
    """A small :class:`~neurotile.ChipImage` written out by hand, for tests below the compiler.

    Every neuron gets its own profile entry, so a core holds at most ``profiles_per_core`` of
    them. Neurons are placed in the order given, local numbers counting up per core.

    Parameters
    ----------
    arch : Arch
    neurons : list of dict
        One per neuron: ``pop`` (population name), ``core`` ((x, y)), the LIF fields ``du``,
        ``dv``, ``vth``, ``bias_mant``, ``bias_exp`` (default 0; vth 100), optional initial
        ``u``, ``v``, and ``fanout``: a list of packets ``(host, x, y, index)``. A packet with
        ``host = 1`` sends output number ``index``; output ``k`` stands for the ``k``-th neuron
        of this list that has a host-bound packet with index ``k``.
    axons : dict of (x, y) to list of list of (target, weight, delay, wexp)
        Each core's axon table: axon ``a``'s synapses (target = local neuron number; delay in
        steps, 1..max_delay).
    inputs : dict of str to list of list of (x, y, axon)
        Input groups: per channel the packets the host injects.
    n_outputs : int, optional
        Number of outputs (default: one more than the largest host-bound index).

    Returns
    -------
    ChipImage
        Not validated: corrupt images (for ``bad_axon`` and ``bad_route``) can be built too.
    """
    from ..compiler.image import ChipImage, CoreImage

    axons = axons or {}
    inputs = inputs or {}
    lay = arch.layouts
    cores = [CoreImage.empty(arch, c % arch.mesh_w, c // arch.mesh_w) for c in range(arch.n_cores)]
    local = [0] * arch.n_cores
    fan = [[] for _ in range(arch.n_cores)]
    populations = {}
    outputs = {}
    for nrn in neurons:
        x, y = nrn["core"]
        c = y * arch.mesh_w + x
        n = local[c]
        local[c] += 1
        t = cores[c].tables
        t["neuron_cfg"]["profile"][n] = n
        for f, default in (("du", 0), ("dv", 0), ("vth", 100), ("bias_mant", 0), ("bias_exp", 0)):
            t["profile"][f][n] = nrn.get(f, default)
        t["neuron_state"]["u"][n] = nrn.get("u", 0)
        t["neuron_state"]["v"][n] = nrn.get("v", 0)
        packets = list(nrn.get("fanout", []))
        t["fanout_index"]["base"][n] = len(fan[c])
        t["fanout_index"]["count"][n] = len(packets)
        fan[c].extend(packets)
        pop = populations.setdefault(nrn["pop"], {"core": [], "local": []})
        for host, _, _, index in packets:
            if host:
                outputs[index] = (nrn["pop"], len(pop["core"]))
        pop["core"].append(c)
        pop["local"].append(n)
    for c, core in enumerate(cores):
        core.n_neurons = local[c]
        core.tables["fanout"] = {f: np.array([p[i] for p in fan[c]], np.int64)
                                 for i, (f, _) in enumerate(lay.packet)}
        table = axons.get((core.x, core.y), [])
        core.n_axons = len(table)
        base, count, syn = [], [], []
        for synapses in table:
            base.append(len(syn))
            count.append(len(synapses))
            syn.extend(synapses)
        core.tables["axon"] = {"base": np.array(base, np.int64), "count": np.array(count, np.int64)}
        core.tables["synapse"] = {
            "target": np.array([s[0] for s in syn], np.int64),
            "weight": np.array([s[1] for s in syn], np.int64),
            "delay": np.array([s[2] - 1 for s in syn], np.int64),
            "wexp": np.array([s[3] for s in syn], np.int64),
        }
    image_inputs = {}
    for name, chans in inputs.items():
        flat = [p for ch in chans for p in ch]
        image_inputs[name] = {
            "n": len(chans),
            "base": np.cumsum([0] + [len(ch) for ch in chans[:-1]]).astype(np.int64),
            "count": np.array([len(ch) for ch in chans], np.int64),
            "packets": {"host": np.zeros(len(flat), np.int64),
                        "x": np.array([p[0] for p in flat], np.int64),
                        "y": np.array([p[1] for p in flat], np.int64),
                        "index": np.array([p[2] for p in flat], np.int64)},
        }
    if n_outputs is None:
        n_outputs = max(outputs, default=-1) + 1
    names = list(dict.fromkeys(outputs[k][0] for k in sorted(outputs)))
    out = {"names": names,
           "pop": np.array([names.index(outputs[k][0]) for k in range(n_outputs)], np.int64),
           "neuron": np.array([outputs[k][1] for k in range(n_outputs)], np.int64)}
    populations = {name: {"core": np.array(p["core"], np.int64),
                          "local": np.array(p["local"], np.int64)}
                   for name, p in populations.items()}
    return ChipImage(arch, cores, image_inputs, out, populations, {"network": "hand"})
