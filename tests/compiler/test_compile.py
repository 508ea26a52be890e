"""Tests of :mod:`neurotile.compiler.compile`: the tables it emits, its partition and placement, and its errors.

The reference for the emitted tables is :func:`golden_tables`, a plain-Python transcription of the mapping rules
(the module docstring of ``compile.py`` and docs/architecture.md) that loops over synapses one by one and shares no
code with the compiler. Partition and placement are free choices of the compiler within the architecture's limits,
so those are checked by their invariants, by a reference greedy written here, and against brute force.
"""

import itertools

import numpy as np
import pytest

import neurotile as nt
from neurotile.compiler.compile import PROFILE_FIELDS, hop_cost, place

# -- networks ------------------------------------------------------------------------------------------------------


def random_network(seed, sizes=(37, 50, 20), n_in=(6, 3), density=0.15, max_delay=4, profiles=True):
    """A seeded random network exercising every mapping rule.

    Two input groups, three populations with a few distinct profiles (per-neuron ``vth`` and ``bias_mant``),
    dense and sparse projections, two projections between one pair, repeated sparse synapses, recurrence,
    random delays and weight exponents, and two output populations. ``profiles=False`` gives every population
    one profile.
    """
    rng = np.random.default_rng(seed)
    net = nt.Network(f"random{seed}")
    ins = [net.input(n, name=f"in{i}") for i, n in enumerate(n_in)]
    pops = []
    for i, n in enumerate(sizes):
        if profiles:
            lif = nt.LIF(du=int(rng.integers(0, 4096)), dv=205, vth=rng.choice([40, 50, 60], n),
                         bias_mant=rng.choice([-2, 0, 3], n), bias_exp=1)
        else:
            lif = nt.LIF(du=int(rng.integers(0, 4096)), dv=205, vth=50)
        pops.append(net.population(n, lif, name=f"p{i}"))

    def dense(pre, post):
        w = rng.integers(-60, 61, (pre.n, post.n)) * (rng.random((pre.n, post.n)) < density)
        return net.connect(pre, post, weights=w, delay=rng.integers(1, max_delay + 1, (pre.n, post.n)),
                           weight_exp=int(rng.integers(0, 3)))

    def sparse(pre, post, k):
        pre_idx = rng.integers(0, pre.n, k)
        post_idx = rng.integers(0, post.n, k)
        pre_idx[:3], post_idx[:3] = pre_idx[0], post_idx[0]       # a synapse repeated three times
        return net.connect(pre, post, (pre_idx, post_idx, rng.integers(-100, 101, k)),
                           delay=rng.integers(1, max_delay + 1, k), weight_exp=int(rng.integers(0, 4)))

    dense(ins[0], pops[0])
    dense(pops[0], pops[1])
    sparse(pops[1], pops[1], 120)
    dense(pops[1], pops[2])
    dense(pops[0], pops[2])
    dense(pops[0], pops[2])
    sparse(ins[1], pops[2], 10)
    net.output(pops[2])
    net.output(pops[0])
    return net


def small_arch(**kw):
    """A 4x3 mesh of 16-neuron cores: the random networks above need 7 of its 12 cores."""
    return nt.Arch(**{"mesh_w": 4, "mesh_h": 3, "neurons_per_core": 16, **kw})


def chain_network(length=6, width=4):
    """Populations p0 -> p1 -> ... one-to-one, driven by an input and read from the last: a pipeline."""
    net = nt.Network("chain")
    prev = net.input(width, name="x")
    for i in range(length):
        pop = net.population(width, nt.LIF(vth=10), name=f"p{i}")
        net.connect(prev, pop, weights=np.eye(width, dtype=int) * 20)
        prev = pop
    net.output(prev)
    return net


# -- the reference mapping -----------------------------------------------------------------------------------------


def golden_tables(net, image):
    """The tables the mapping rules prescribe for the partition and placement ``image`` chose.

    Returns ``(cores, inputs)``: per core a dict of memory -> field -> list, and per input group its
    ``base``/``count``/``packets``, built synapse by synapse.
    """
    a = image.arch
    where = {}
    for name, m in image.populations.items():
        for i, (c, loc) in enumerate(zip(m["core"], m["local"])):
            where[(name, i)] = (int(c), int(loc))
    order = {}
    for g in net.groups.values():   # sources: net.groups order, then index
        for i in range(g.n):
            order[(g.name, i)] = len(order)

    lists = [dict() for _ in range(a.n_cores)]     # per core: source -> synapse words in network order
    for proj in net.projections:
        for j in range(proj.n_synapses):
            src = (proj.pre.name, int(proj.pre_idx[j]))
            c, loc = where[(proj.post.name, int(proj.post_idx[j]))]
            lists[c].setdefault(src, []).append(
                (loc, int(proj.weight[j]), int(proj.delay[j]) - 1, proj.weight_exp))

    cores, axon_of, dests = [], {}, {}
    for c in range(a.n_cores):
        axon = {"base": [], "count": []}
        syn = {"target": [], "weight": [], "delay": [], "wexp": []}
        for k, src in enumerate(sorted(lists[c], key=order.get)):
            axon_of[(c, src)] = k
            dests.setdefault(src, []).append(c)
            axon["base"].append(len(syn["target"]))
            axon["count"].append(len(lists[c][src]))
            for word in lists[c][src]:
                for field, v in zip(syn, word):
                    syn[field].append(v)
        cores.append({"axon": axon, "synapse": syn})

    def packets(src):
        return [(0, c % a.mesh_w, c // a.mesh_w, axon_of[(c, src)]) for c in sorted(dests.get(src, []))]

    out_no = {}
    for p in net.outputs:
        for i in range(p.n):
            out_no[(p.name, i)] = len(out_no)
    N, P = a.neurons_per_core, a.profiles_per_core
    for c in range(a.n_cores):
        neurons = sorted((loc, key) for key, (cc, loc) in where.items() if cc == c)
        fanout = {"host": [], "x": [], "y": [], "index": []}
        index = {"base": [0] * N, "count": [0] * N}
        cfg = [0] * N
        profile = {f: [0] * P for f in PROFILE_FIELDS}
        rows = [tuple(int(net.groups[name].params[f][i]) for f in PROFILE_FIELDS) for _, (name, i) in neurons]
        distinct = sorted(set(rows))
        for k, row in enumerate(distinct):
            for f, v in zip(PROFILE_FIELDS, row):
                profile[f][k] = v
        for loc, key in neurons:
            entries = packets((key[0], key[1]))
            if key in out_no:
                entries.append((1, 0, 0, out_no[key]))
            index["base"][loc] = len(fanout["host"]) if entries else 0
            index["count"][loc] = len(entries)
            for e in entries:
                for field, v in zip(fanout, e):
                    fanout[field].append(v)
            cfg[loc] = distinct.index(rows[loc])
        cores[c].update(fanout=fanout, fanout_index=index, neuron_cfg={"profile": cfg}, profile=profile,
                        neuron_state={"u": [0] * N, "v": [0] * N}, n_neurons=len(neurons),
                        n_axons=len(cores[c]["axon"]["base"]))

    inputs = {}
    for g in net.inputs:
        pk = {"host": [], "x": [], "y": [], "index": []}
        base, count = [], []
        for i in range(g.n):
            entries = packets((g.name, i))
            base.append(len(pk["host"]) if entries else 0)
            count.append(len(entries))
            for e in entries:
                for field, v in zip(pk, e):
                    pk[field].append(v)
        inputs[g.name] = {"n": g.n, "base": base, "count": count, "packets": pk}
    return cores, inputs


def assert_matches_golden(net, image):
    cores, inputs = golden_tables(net, image)
    for c, (want, core) in enumerate(zip(cores, image.cores)):
        assert core.n_neurons == want["n_neurons"], f"core {c}"
        assert core.n_axons == want["n_axons"], f"core {c}"
        for table in ("neuron_state", "neuron_cfg", "profile", "axon", "synapse", "fanout_index", "fanout"):
            for field, values in want[table].items():
                np.testing.assert_array_equal(core.tables[table][field], np.array(values, np.int64),
                                              err_msg=f"core {c} {table}.{field}")
    assert set(image.inputs) == set(inputs)
    for name, want in inputs.items():
        got = image.inputs[name]
        assert got["n"] == want["n"]
        np.testing.assert_array_equal(got["base"], want["base"], err_msg=f"input {name} base")
        np.testing.assert_array_equal(got["count"], want["count"], err_msg=f"input {name} count")
        for field, values in want["packets"].items():
            np.testing.assert_array_equal(got["packets"][field], np.array(values, np.int64),
                                          err_msg=f"input {name} packets.{field}")


def image_synapses(image):
    """Every synapse the image holds, as (source, target, weight, delay, wexp), traced back through its tables:
    a (core, axon) is fed by the source whose fan-out (or input packet list) addresses it."""
    a = image.arch
    owner = {}
    for name, m in image.populations.items():
        for i, (c, loc) in enumerate(zip(m["core"], m["local"])):
            owner[(int(c), int(loc))] = (name, i)
    feeder = {}
    for c, core in enumerate(image.cores):
        fi, fo = core.tables["fanout_index"], core.tables["fanout"]
        for loc in range(core.n_neurons):
            for k in range(fi["base"][loc], fi["base"][loc] + fi["count"][loc]):
                if not fo["host"][k]:
                    key = (int(fo["y"][k] * a.mesh_w + fo["x"][k]), int(fo["index"][k]))
                    assert key not in feeder, "an axon fed twice"
                    feeder[key] = owner[(c, loc)]
    for name, inp in image.inputs.items():
        pk = inp["packets"]
        for i in range(inp["n"]):
            for k in range(inp["base"][i], inp["base"][i] + inp["count"][i]):
                feeder[(int(pk["y"][k] * a.mesh_w + pk["x"][k]), int(pk["index"][k]))] = (name, i)
    out = []
    for c, core in enumerate(image.cores):
        ax, syn = core.tables["axon"], core.tables["synapse"]
        for k in range(core.n_axons):
            for j in range(ax["base"][k], ax["base"][k] + ax["count"][k]):
                out.append((feeder[(c, k)], owner[(c, int(syn["target"][j]))], int(syn["weight"][j]),
                            int(syn["delay"][j]) + 1, int(syn["wexp"][j])))
    return sorted(out)


def network_synapses(net):
    return sorted(((p.pre.name, int(i)), (p.post.name, int(j)), int(w), int(d), p.weight_exp)
                  for p in net.projections
                  for i, j, w, d in zip(p.pre_idx, p.post_idx, p.weight, p.delay))


def assert_partition_invariants(image):
    """No core over any limit; every neuron on exactly one core, locals contiguous from 0."""
    a = image.arch
    for core in image.cores:
        assert core.n_neurons <= a.neurons_per_core
        assert core.n_axons <= a.axons_per_core
        assert core.n_synapses <= a.synapses_per_core
        assert core.n_fanout <= a.fanout_per_core
        used = core.tables["neuron_cfg"]["profile"][:core.n_neurons]
        assert np.unique(used).size <= a.profiles_per_core
    placed = {}
    for name, m in image.populations.items():
        for i, (c, loc) in enumerate(zip(m["core"], m["local"])):
            assert (int(c), int(loc)) not in placed, f"{name}[{i}] shares a slot with {placed[(int(c), int(loc))]}"
            placed[(int(c), int(loc))] = (name, i)
    for c, core in enumerate(image.cores):
        assert sorted(loc for cc, loc in placed if cc == c) == list(range(core.n_neurons))


# -- the emitted tables --------------------------------------------------------------------------------------------


def test_hand_example_tables():
    """Every table of a 5-source, 3-neuron network, written out by hand from the mapping rules.

    Sources in order x0, x1, h0, h1, h2; h1 has no synapses, so core 0's axons are x0, x1, h0, h2. Axon x0's list
    is p1's x0->h0, x0->h2 then p3's x0->h1 (projection order). h is an output, so every h neuron ends its fan-out
    with a host entry numbered 0, 1, 2. With input and output traffic only at the host, the block sits at (0, 0).
    """
    net = nt.Network("hand")
    x = net.input(2, name="x")
    h = net.population(3, nt.LIF(vth=[10, 20, 10]), name="h")
    net.connect(x, h, weights=np.array([[1, 0, 2], [0, 3, 0]]))
    net.connect(h, h, (np.array([2, 0, 2]), np.array([0, 1, 1]), np.array([5, -4, 6])), delay=np.array([1, 2, 3]),
                weight_exp=1)
    net.connect(x, h, (np.array([0]), np.array([1]), np.array([7])), delay=4)
    net.output(h)
    image = nt.compile(net)
    core = image.cores[0]
    t = core.tables
    assert (core.n_neurons, core.n_axons) == (3, 4)
    assert t["axon"]["base"].tolist() == [0, 3, 4, 5]
    assert t["axon"]["count"].tolist() == [3, 1, 1, 2]
    assert t["synapse"]["target"].tolist() == [0, 2, 1, 1, 1, 0, 1]
    assert t["synapse"]["weight"].tolist() == [1, 2, 7, 3, -4, 5, 6]
    assert t["synapse"]["delay"].tolist() == [0, 0, 3, 0, 1, 0, 2]      # stored as delay - 1
    assert t["synapse"]["wexp"].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert t["fanout_index"]["base"][:3].tolist() == [0, 2, 3]
    assert t["fanout_index"]["count"][:3].tolist() == [2, 1, 2]
    assert t["fanout"]["host"].tolist() == [0, 1, 1, 0, 1]
    assert t["fanout"]["index"].tolist() == [2, 0, 1, 3, 2]
    assert t["fanout"]["x"].tolist() == [0] * 5 and t["fanout"]["y"].tolist() == [0] * 5
    assert t["neuron_cfg"]["profile"][:3].tolist() == [0, 1, 0]            # vth 10 sorts before vth 20
    assert t["profile"]["vth"].tolist() == [10, 20] + [0] * 14
    assert image.inputs["x"]["base"].tolist() == [0, 1]
    assert image.inputs["x"]["count"].tolist() == [1, 1]
    assert image.inputs["x"]["packets"]["index"].tolist() == [0, 1]
    assert image.outputs["names"] == ["h"]
    assert image.outputs["pop"].tolist() == [0, 0, 0]
    assert image.outputs["neuron"].tolist() == [0, 1, 2]
    assert image.populations["h"]["core"].tolist() == [0, 0, 0]
    assert image.populations["h"]["local"].tolist() == [0, 1, 2]
    assert all(c.n_neurons == 0 and c.n_axons == 0 for c in image.cores[1:])
    assert_matches_golden(net, image)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("placement", ["optimized", "naive"])
def test_random_networks_match_golden_tables(seed, placement):
    """Seeded random networks: every table equals the synapse-by-synapse reference."""
    net = random_network(seed)
    image = nt.compile(net, small_arch(), placement=placement, seed=seed)
    assert_matches_golden(net, image)


@pytest.mark.parametrize("seed", [0, 3])
def test_every_synapse_appears_exactly_once(seed):
    """The (source, target, weight, delay, wexp) multiset traced back from the image equals the network's."""
    net = random_network(seed, sizes=(40, 70, 25))
    image = nt.compile(net, small_arch(), seed=seed)
    got = image_synapses(image)
    assert len(got) == net.n_synapses
    assert got == network_synapses(net)


def test_outputs_numbered_in_output_order():
    """Outputs are numbered in net.outputs order (p2 was marked first), then by neuron."""
    net = random_network(0)
    image = nt.compile(net, small_arch())
    assert image.outputs["names"] == ["p2", "p0"]
    assert image.outputs["pop"].tolist() == [0] * 20 + [1] * 37
    assert image.outputs["neuron"].tolist() == list(range(20)) + list(range(37))


def test_neuron_state_starts_at_zero_and_unused_slots_are_zero():
    net = random_network(1)
    image = nt.compile(net, small_arch())
    for core in image.cores:
        for f in ("u", "v"):
            assert not core.tables["neuron_state"][f].any()
        n = core.n_neurons
        assert not core.tables["neuron_cfg"]["profile"][n:].any()
        assert not core.tables["fanout_index"]["count"][n:].any()
        k = np.unique(core.tables["neuron_cfg"]["profile"][:n]).size if n else 0
        for f in PROFILE_FIELDS:
            assert not core.tables["profile"][f][k:].any()


def test_network_without_synapses_or_inputs():
    """A lone population with no synapses maps to one core with no axons and empty memories."""
    net = nt.Network()
    net.population(5, nt.LIF(), name="h")
    image = nt.compile(net)
    assert [c.n_neurons for c in image.cores] == [5, 0, 0, 0]
    assert sum(c.n_axons + c.n_synapses + c.n_fanout for c in image.cores) == 0
    assert image.inputs == {} and image.outputs["names"] == []


def test_input_channel_without_synapses_gets_no_packets():
    net = nt.Network()
    x = net.input(3, name="x")
    h = net.population(2, nt.LIF(), name="h")
    net.connect(x, h, weights=np.array([[1, 0], [0, 0], [0, 2]]))
    image = nt.compile(net)
    assert image.inputs["x"]["count"].tolist() == [1, 0, 1]
    assert image.inputs["x"]["base"].tolist() == [0, 0, 1]


@pytest.mark.parametrize("profile", ["ice40up5k", "ecp5-85f", "large"])
def test_compiles_on_every_named_profile(profile):
    net = random_network(4, sizes=(20, 30, 10), n_in=(4, 2), max_delay=4, profiles=False)
    image = nt.compile(net, nt.Arch.profile(profile))
    image.validate()
    assert image_synapses(image) == network_synapses(net)


def test_compile_is_exposed_on_the_package():
    from neurotile.compiler.compile import compile as compile_fn
    assert nt.compile is compile_fn


# -- partition -----------------------------------------------------------------------------------------------------


def reference_blocks(net, arch):
    """Block sizes of the greedy partition, neuron by neuron: a block takes the next neuron while its neurons,
    synapses, distinct sources and distinct profiles stay within one core (fan-out is not a limit here)."""
    pops = net.populations
    neurons = [(p, i) for p in pops for i in range(p.n)]
    incoming = {key: [] for key in [(p.name, i) for p, i in neurons]}
    for proj in net.projections:
        for i, j in zip(proj.pre_idx, proj.post_idx):
            incoming[(proj.post.name, int(j))].append((proj.pre.name, int(i)))
    sizes, cur, syn, srcs, profs = [], 0, 0, set(), set()
    for p, i in neurons:
        ins = incoming[(p.name, i)]
        prof = tuple(int(p.params[f][i]) for f in PROFILE_FIELDS)
        fits = (cur < arch.neurons_per_core and syn + len(ins) <= arch.synapses_per_core
                and len(srcs | set(ins)) <= arch.axons_per_core and len(profs | {prof}) <= arch.profiles_per_core)
        if not fits:
            sizes.append(cur)
            cur, syn, srcs, profs = 0, 0, set(), set()
        cur, syn = cur + 1, syn + len(ins)
        srcs |= set(ins)
        profs.add(prof)
    return sizes + [cur]


def test_partition_fills_cores_in_population_order():
    """With only neurons_per_core binding, 107 neurons on 16-neuron cores are 6 full blocks and 11 left."""
    net = random_network(0)
    image = nt.compile(net, small_arch(), placement="naive")
    assert image.meta["partition"]["blocks"] == [16] * 6 + [11]
    assert image.meta["partition"]["cut_by"] == {}
    # naive placement: block b on core b, so the populations fill the cores in row-major order
    assert image.populations["p0"]["core"].tolist() == [0] * 16 + [1] * 16 + [2] * 5


@pytest.mark.parametrize("limits", [
    dict(synapses_per_core=200),
    dict(axons_per_core=30),
    dict(profiles_per_core=2),
    dict(synapses_per_core=300, axons_per_core=40, profiles_per_core=4),
])
def test_partition_shrinks_blocks_to_fit_limits(limits):
    """Blocks equal the neuron-by-neuron reference greedy, and no core exceeds a limit."""
    net = random_network(2)
    arch = nt.Arch(mesh_w=8, mesh_h=8, neurons_per_core=16, **limits)
    image = nt.compile(net, arch)
    assert image.meta["partition"]["blocks"] == reference_blocks(net, arch)
    assert set(image.meta["partition"]["cut_by"]) <= set(limits)
    assert image.meta["partition"]["cut_by"]
    assert_partition_invariants(image)
    assert image_synapses(image) == network_synapses(net)


def test_partition_splits_a_core_whose_fanout_overflows():
    """a (8 neurons) feeds all 16 neurons of b, which fill two 8-neuron cores: each a neuron needs 2 fan-out
    entries, 16 in all, over fanout_per_core=12. The split keeps the longest prefix that fits, 6 neurons
    (12 entries), and moves the other 2 to a core of their own."""
    net = nt.Network()
    a = net.population(8, nt.LIF(), name="a")
    b = net.population(16, nt.LIF(), name="b")
    net.connect(a, b, weights=np.ones((8, 16), int))
    image = nt.compile(net, nt.Arch(mesh_w=2, mesh_h=2, neurons_per_core=8, fanout_per_core=12))
    assert image.meta["partition"]["blocks"] == [6, 2, 8, 8]
    assert image.meta["partition"]["cut_by"] == {"fanout_per_core": ["a"]}
    assert_partition_invariants(image)
    assert image_synapses(image) == network_synapses(net)


@pytest.mark.parametrize("seed", [5, 6])
def test_partition_invariants_on_tight_random_arch(seed):
    """Every limit tight at once, fan-out included: the image stays within all of them and loses no synapse."""
    net = random_network(seed)
    arch = nt.Arch(mesh_w=8, mesh_h=8, neurons_per_core=16, synapses_per_core=400, axons_per_core=60,
                   fanout_per_core=40, profiles_per_core=4)
    image = nt.compile(net, arch, seed=seed)
    assert_partition_invariants(image)
    assert image_synapses(image) == network_synapses(net)


# -- placement -----------------------------------------------------------------------------------------------------


def test_optimized_placement_of_a_chain_beats_naive():
    """Six 4-neuron stages on 4-neuron cores of a 4x4 mesh. Naive (row-major) pays 4 packets x (1+1+1+4+1) hops
    between stages plus 4 outputs x 2 hops from (1, 1): 40. Any placement pays at least 5 links x 4 packets, and
    the output stage, 5 steps from (0, 0), cannot sit at (0, 0) (odd parity): at least 24."""
    net = chain_network()
    arch = nt.Arch(mesh_w=4, mesh_h=4, neurons_per_core=4)
    naive = nt.compile(net, arch, placement="naive")
    opt = nt.compile(net, arch)
    assert naive.meta["placement"]["hops_weighted"] == 40
    assert opt.meta["placement"]["hops_weighted_naive"] == 40
    assert opt.meta["placement"]["hops_weighted"] == 24      # the search reaches the bound
    for image in (naive, opt):
        assert image.report().placement["hops_measured"] == image.meta["placement"]["hops_weighted"]
    assert_matches_golden(net, opt)


def test_placement_is_deterministic_for_a_seed():
    net = random_network(3)
    a = nt.compile(net, small_arch(), seed=7)
    b = nt.compile(net, small_arch(), seed=7)
    assert a.checksum() == b.checksum()


@pytest.mark.parametrize("seed", range(4))
def test_optimized_never_worse_than_naive(seed):
    net = random_network(seed)
    image = nt.compile(net, small_arch(), seed=seed)
    p = image.meta["placement"]
    assert p["method"] == "optimized" and p["seed"] == seed
    assert p["hops_weighted"] <= p["hops_weighted_naive"]
    assert image.report().placement["hops_measured"] == p["hops_weighted"]


def test_place_finds_the_brute_force_optimum_on_a_line():
    """On a 1x4 line, blocks 0 and 3 exchange 100 packets: naive puts them 3 hops apart (300); the optimum, found
    by trying all 24 placements, puts them next to each other (100)."""
    arch = nt.Arch(mesh_w=4, mesh_h=1)
    traffic = np.zeros((4, 4), int)
    traffic[0, 3] = traffic[3, 0] = 50
    pos, info = place(traffic, np.zeros(4, int), arch)
    best = min(hop_cost(traffic, np.zeros(4), p, arch) for p in itertools.permutations(range(4)))
    assert best == 100
    assert info["hops_weighted_naive"] == 300
    assert info["hops_weighted"] == hop_cost(traffic, np.zeros(4), pos, arch) == best
    assert sorted(pos.tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("seed", range(3))
def test_place_random_traffic_between_optimum_and_naive(seed):
    """Random traffic on a 3x2 mesh with 5 blocks: the result is a valid placement, no worse than naive and no
    better than the brute-force optimum over all 720 assignments of blocks to the 6 positions."""
    rng = np.random.default_rng(seed)
    arch = nt.Arch(mesh_w=3, mesh_h=2)
    traffic = rng.integers(0, 20, (5, 5))
    host = rng.integers(0, 20, 5)
    pos, info = place(traffic, host, arch, seed=seed)
    assert len(set(pos.tolist())) == 5 and pos.max() < 6
    best = min(hop_cost(traffic, host, p[:5], arch) for p in itertools.permutations(range(6)))
    assert best <= info["hops_weighted"] == hop_cost(traffic, host, pos, arch) <= info["hops_weighted_naive"]


def test_naive_placement_reports_both_figures():
    image = nt.compile(chain_network(), nt.Arch(mesh_w=4, mesh_h=4, neurons_per_core=4), placement="naive")
    p = image.meta["placement"]
    assert p["method"] == "naive"
    assert p["hops_weighted"] == p["hops_weighted_naive"] == 40


# -- errors --------------------------------------------------------------------------------------------------------


def one_pop(n, **lif):
    net = nt.Network("one")
    net.population(n, nt.LIF(**lif), name="h")
    return net


def test_error_mesh_too_small():
    """1100 neurons on 128-neuron cores need ceil(1100 / 128) = 9 cores; the default mesh is 2x2."""
    with pytest.raises(nt.MappingError, match=r"^network needs 9 cores but the 2x2 mesh has 4: use "
                                              r"nt\.Arch\(mesh_w=3, mesh_h=3\) or a larger profile$"):
        nt.compile(one_pop(1100))


def test_error_mesh_too_small_suggests_the_named_profile():
    with pytest.raises(nt.MappingError, match=r"needs 2 cores but the 1x1 mesh has 1: use "
                                              r"nt\.Arch\.profile\('ice40up5k', mesh_w=2, mesh_h=1\)"):
        nt.compile(one_pop(200), nt.Arch.profile("ice40up5k"))


def test_error_no_mesh_is_large_enough():
    with pytest.raises(nt.MappingError, match=r"needs 300 cores but the 16x16 mesh has 256: no mesh is that large"):
        nt.compile(one_pop(300), nt.Arch(mesh_w=16, mesh_h=16, neurons_per_core=1))


def test_error_too_many_profiles_names_the_population():
    """8 distinct thresholds with profiles_per_core=4 need two cores; a 1x1 mesh has one."""
    with pytest.raises(nt.MappingError, match=r"needs 2 cores but the 1x1 mesh has 1: use arch\.with_mesh\(2, 1\).*"
                                              r"filled below neurons_per_core=128 by profiles_per_core=4 in "
                                              r"population\(s\) 'h' \('h' has 8 distinct profiles\)"):
        nt.compile(one_pop(8, vth=np.arange(8) + 1), nt.Arch(mesh_w=1, mesh_h=1, profiles_per_core=4))


def test_error_weight_outside_weight_bits():
    net = nt.Network()
    x = net.input(2, name="x")
    h = net.population(2, nt.LIF(), name="h")
    net.connect(x, h, weights=np.array([[1, 200], [0, -3]]))
    with pytest.raises(nt.MappingError, match=r"projection 'x->h' has weight 200, outside the 8-bit signed range "
                                              r"-128\.\.127 \(Arch\.weight_bits\): quantize .* weight_exp"):
        nt.compile(net)
    net.projections[0].weight[1] = -9
    with pytest.raises(nt.MappingError, match=r"has weight -9, outside the 4-bit signed range -8\.\.7"):
        nt.compile(net, nt.Arch(weight_bits=4))


def test_error_delay_beyond_max_delay():
    net = nt.Network()
    x = net.input(1, name="x")
    h = net.population(1, nt.LIF(), name="h")
    net.connect(x, h, weights=np.array([[1]]), delay=17)
    with pytest.raises(nt.MappingError, match=r"projection 'x->h' has delay 17, beyond the chip's max_delay of 16 "
                                              r"\(exceeded by 1\): .*max_delay=32"):
        nt.compile(net)


def test_error_shift_decay_above_23():
    with pytest.raises(nt.MappingError, match=r"population 'h' has dv=30, but decay_mode='shift' takes shift "
                                              r"amounts 0\.\.23 \(exceeded by 7\)"):
        nt.compile(one_pop(4, du=3, dv=30), nt.Arch(decay_mode="shift"))
    nt.compile(one_pop(4, du=23, dv=23), nt.Arch(decay_mode="shift"))   # 23 is the largest shift


def test_error_too_many_outputs():
    net = one_pop(10)
    net.output("h")
    with pytest.raises(nt.MappingError, match=r"the outputs \('h'\) have 10 neurons, but the host output buffer "
                                              r"holds 8 spikes per step \(host_out_depth, exceeded by 2\)"):
        nt.compile(net, nt.Arch(host_out_depth=8))


def test_error_too_many_host_input_packets():
    """5 channels, each to one core: 5 packets if all spike in one step, over host_in_depth=4."""
    net = nt.Network()
    x = net.input(5, name="x")
    h = net.population(5, nt.LIF(), name="h")
    net.connect(x, h, weights=np.eye(5, dtype=int))
    with pytest.raises(nt.MappingError, match=r"the host sends 5 packets \('x': 5; one per channel and destination "
                                              r"core\), but the host input buffer holds 4 \(host_in_depth, "
                                              r"exceeded by 1\)"):
        nt.compile(net, nt.Arch(host_in_depth=4))


def test_error_accumulator_could_wrap():
    """100 inputs of weight 127 << 7 = 16256 into neuron 3: 1625600, over the 18-bit maximum 131071."""
    net = nt.Network()
    x = net.input(100, name="x")
    h = net.population(5, nt.LIF(), name="h")
    w = np.zeros((100, 5), int)
    w[:, 3] = 127
    net.connect(x, h, weights=w, weight_exp=7)
    with pytest.raises(nt.MappingError, match=r"population 'h' neuron 3 can receive \+1625600 in one step .* but a "
                                              r"18-bit accumulator holds at most 131071 \(exceeded by 1494529\): use "
                                              r"a smaller weight_exp.*acc_bits"):
        nt.compile(net, nt.Arch(acc_bits=18))
    net.projections[0].weight[:] = -128      # 100 * 128 << 7 = 1638400 on the negative side
    with pytest.raises(nt.MappingError, match=r"neuron 3 can receive -1638400 in one step \(the sum of its negative"):
        nt.compile(net, nt.Arch(acc_bits=18))


def test_error_neuron_fan_in_exceeds_synapse_memory():
    net = nt.Network()
    x = net.input(20, name="x")
    h = net.population(2, nt.LIF(), name="h")
    net.connect(x, h, weights=np.array([[0, 1]] * 20))
    with pytest.raises(nt.MappingError, match=r"population 'h' neuron 1 has 20 incoming synapses, but a core's "
                                              r"synapse memory holds 16 \(synapses_per_core, exceeded by 4\)"):
        nt.compile(net, nt.Arch(synapses_per_core=16))


def test_error_neuron_sources_exceed_axons():
    net = nt.Network()
    x = net.input(10, name="x")
    h = net.population(1, nt.LIF(), name="h")
    net.connect(x, h, weights=np.ones((10, 1), int))
    with pytest.raises(nt.MappingError, match=r"population 'h' neuron 0 receives from 10 distinct sources, but a "
                                              r"core has 8 axons \(axons_per_core, exceeded by 2\)"):
        nt.compile(net, nt.Arch(axons_per_core=8))


def test_error_neuron_fanout_exceeds_fanout_memory():
    """With one neuron per core, h0 feeding h1..h6 needs 6 destination cores (plus its host entry), over 4."""
    net = one_pop(7)
    w = np.zeros((7, 7), int)
    w[0, 1:] = 1
    net.connect("h", "h", weights=w)
    net.output("h")
    with pytest.raises(nt.MappingError, match=r"population 'h' neuron 0 needs 7 fan-out entries \(6 destination "
                                              r"cores \+ 1 host entry\), but a core's fan-out memory holds 4 "
                                              r"\(fanout_per_core, exceeded by 3\)"):
        nt.compile(net, nt.Arch(mesh_w=4, mesh_h=2, neurons_per_core=1, fanout_per_core=4))


def test_error_network_without_populations():
    net = nt.Network("empty")
    net.input(3, name="x")
    with pytest.raises(nt.NetworkError, match=r"network 'empty' has no populations, so there is nothing to map"):
        nt.compile(net)


def test_error_wrong_argument_kinds():
    net = one_pop(2)
    with pytest.raises(nt.NeurotileTypeError, match=r"^arch must be an nt\.Arch, not dict$"):
        nt.compile(net, {"mesh_w": 2})
    with pytest.raises(nt.NeurotileTypeError, match=r"^net must be an nt\.Network, not list$"):
        nt.compile([])
    with pytest.raises(nt.NeurotileTypeError, match=r"^seed must be an int, not 1\.5$"):
        nt.compile(net, seed=1.5)
    with pytest.raises(nt.NeurotileValueError, match=r"^placement must be one of 'optimized', 'naive', not 'best'$"):
        nt.compile(net, placement="best")


def test_place_argument_errors():
    arch = nt.Arch()
    with pytest.raises(nt.NeurotileValueError, match=r"^placement must be one of 'optimized', 'naive', not 'x'$"):
        place(np.zeros((2, 2)), np.zeros(2), arch, "x")
    with pytest.raises(nt.NeurotileValueError, match=r"at most 4 blocks; got traffic of shape \(5, 5\)"):
        place(np.zeros((5, 5)), np.zeros(5), arch)


def test_every_emitted_array_is_int64():
    """The image holds int64 field arrays (CoreImage's contract), whatever the compiler used inside."""
    image = nt.compile(random_network(0), small_arch())
    for core in image.cores:
        for table, fields in core.tables.items():
            for field, arr in fields.items():
                assert arr.dtype == np.int64, (table, field)
    for inp in image.inputs.values():
        for arr in [inp["base"], inp["count"], *inp["packets"].values()]:
            assert arr.dtype == np.int64
    for m in image.populations.values():
        assert m["core"].dtype == m["local"].dtype == np.int64
    assert image.outputs["pop"].dtype == image.outputs["neuron"].dtype == np.int64
