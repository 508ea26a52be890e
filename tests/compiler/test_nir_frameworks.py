"""NIR graphs exported by real frameworks (snnTorch, Norse) through neurotile and back.

The graphs, the input spikes and the framework's own spikes and membrane potentials are fixtures in
tests/data/frameworks, made by tests/data/make_framework_graphs.py with snntorch 1.0.0 and norse 1.1.0 on torch
2.13.0+cpu. The fixture tests need neither torch nor a framework (CI installs none): they import each graph with
``nt.from_nir``, compare neurotile's float model with the framework's stored spikes and potentials, and round-trip
the network through ``nt.to_nir``. The tests at the end rebuild every model with the framework when it is installed
(``pip install torch==2.13.0`` first, then ``neurotile[frameworks]``; Norse with ``pip install --no-deps
norse==1.1.0``) and run the same comparisons on the fresh export and forward pass.

What agrees and why (docs/nir.md, section 9):

- snnTorch exports ``tau = dt / (1 - beta)`` and ``r = tau / dt`` with ``dt = 1e-4``, so ``from_nir(g, dt=1e-4,
  discretization="euler")`` gives back ``v = beta v + x`` (and ``I = alpha I + x`` for Synaptic) exactly, with the
  current updated before the voltage as in snnTorch.
- ``Leaky(reset_mechanism="zero")`` equals neurotile's ``reset="zero"``: spikes agree exactly.
- snnTorch's default reset (subtract, ``reset_delay=True``) takes the threshold off one step after the spike and
  undecayed; neurotile's ``reset="subtract"`` takes it off at once, so one step later only ``beta * thr`` of it is
  gone. NIR has no field for this (snnTorch writes ``v_reset = 0`` whatever its reset), so the spikes agree only up
  to the step after the first spike. A self-connection of ``-(1 - beta) thr`` added to the graph makes up the
  difference exactly (for Synaptic a second one, a step later, cancels what stays in the current):
  :func:`late_reset` below; with it the spikes agree exactly.
- Norse 1.1.0 writes ``tau = dt / tau_inv`` (``dt`` times the time constant, not the time constant) with ``r = 1``:
  importing with ``dt`` squared (1e-6 for its 1 ms) gives back its Euler step ``a = 1 - dt * tau_inv`` exactly.
  Its ``LIFCell`` adds the input to the current undamped (``i = a_syn i + x``) but is written as a ``CubaLIF`` with
  ``w_in = 1``, which NIR damps by ``1 - a_syn``; with ``w_in = 1 / (1 - a_syn)`` (:func:`norse_w_in`) it agrees
  exactly. Norse resets to ``v_reset`` at once, as neurotile's ``reset="zero"``.
- The potentials agree to 1e-4 (at most 1.1e-5 measured): the frameworks run in float32 from float32 parameters
  (snnTorch writes ``r = 9.999997`` for ``beta = 0.9``), the float model in float64.
"""

import dataclasses
import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import neurotile as nt

nir = pytest.importorskip("nir")

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "frameworks"
SNNTORCH = {"dt": 1e-4, "discretization": "euler"}     # snnTorch's export: tau = 1e-4 / (1 - beta)
NORSE = {"dt": 1e-6, "discretization": "euler"}        # Norse's export: tau = 1e-3 / tau_inv, so dt = (1e-3)**2
V_TOL = 1e-4                     # float32 (framework) against float64 (neurotile), potentials of order 1


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


assert_same_network = _load(HERE / "test_nir.py", "neurotile_tests_test_nir").assert_same_network

#: Per fixture: the import options, per neuron node its NIR type, size, dv, du and decay a_mem, and the
#: (source, target) pairs of spike sources joined through linear nodes. With Euler, a_mem = 1 - dt / tau = beta
#: (snnTorch) or 1 - 1e-3 tau_mem_inv (Norse), and dv = round(4096 (1 - a_mem)): 0.9 -> 409.6 -> 410,
#: 0.85 -> 614.4 -> 614, 0.8 -> 819.2 -> 819, 0.95 -> 204.8 -> 205. A synaptic current: du = round(4096 (1 - a_syn))
#: - 1: 0.8 -> 819 - 1 = 818, 0.7 -> round(1228.8) - 1 = 1228. No current: du = 4095.
FIXTURES = {
    "snntorch_leaky_zero": (dict(SNNTORCH, reset="zero"),
                            {"1": ("LIF", 10, 410, 4095, 0.9), "3": ("LIF", 4, 819, 4095, 0.8)},
                            {("input", "1"), ("1", "3")}),
    "snntorch_leaky_subtract": (dict(SNNTORCH, reset="subtract"),
                                {"1": ("LIF", 10, 410, 4095, 0.9), "3": ("LIF", 4, 819, 4095, 0.8)},
                                {("input", "1"), ("1", "3")}),
    "snntorch_rleaky": (dict(SNNTORCH, reset="subtract"),
                        {"1.lif": ("LIF", 8, 614, 4095, 0.85), "3": ("LIF", 3, 410, 4095, 0.9)},
                        {("input", "1.lif"), ("1.lif", "1.lif"), ("1.lif", "3")}),
    "snntorch_synaptic": (dict(SNNTORCH, reset="subtract"),
                          {"1.lif": ("CubaLIF", 8, 410, 818, 0.9), "3": ("CubaLIF", 3, 614, 1228, 0.85)},
                          {("input", "1.lif"), ("1.lif", "1.lif"), ("1.lif", "3")}),
    "snntorch_conv": (dict(SNNTORCH, reset="zero"),
                      {"2": ("LIF", 32, 410, 4095, 0.9), "5": ("LIF", 3, 410, 4095, 0.9)},
                      {("input", "2"), ("2", "5")}),
    "norse_lifbox": (dict(NORSE, reset="zero"),
                     {"1": ("LIF", 10, 410, 4095, 0.9), "3": ("LIF", 4, 819, 4095, 0.8)},
                     {("input", "1"), ("1", "3")}),
    "norse_lif": (dict(NORSE, reset="zero"),
                  {"1": ("CubaLIF", 10, 410, 818, 0.9), "3": ("LI", 3, 205, 4095, 0.95)},
                  {("input", "1"), ("1", "3")}),
}
LATE = [k for k, v in FIXTURES.items() if k.startswith("snntorch") and v[0]["reset"] == "subtract"]


def stored(name):
    """(graph read with nir's own type-checking reader, npz record) of fixture ``name``."""
    with np.load(DATA / f"{name}.npz") as f:
        record = {k: f[k] for k in f.files}
    return nir.read(DATA / f"{name}.nir"), record


def late_reset(graph, dt=SNNTORCH["dt"]):
    """A copy of ``graph`` with snnTorch's late subtract reset made explicit, for ``from_nir(..., reset="subtract")``.

    snnTorch (``reset_delay=True``): ``v[t] = beta v[t-1] + I[t] - thr z[t-1]``. neurotile subtracts ``thr`` in the
    step of the spike, which decays to ``beta thr`` by the next step: ``(1 - beta) thr`` short. A one-step
    self-connection of weight ``-(1 - beta) thr`` (Euler gain ``g r = 1``) adds it. Into a CubaLIF it goes through
    the current, which would carry ``alpha`` of it into the following steps: a second self-connection of
    ``+alpha (1 - beta) thr``, one step later through a ``nir.Delay``, cancels that tail (``g_syn w_in = 1``).
    """
    nodes, edges = dict(graph.nodes), list(graph.edges)
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind not in ("LIF", "CubaLIF"):
            continue
        beta = 1 - dt / np.asarray(node.tau if kind == "LIF" else node.tau_mem, float).ravel()
        w = -(1 - beta) * np.asarray(node.v_threshold, float).ravel()
        nodes[f"{name}.late_reset"] = nir.Linear(np.diag(w))
        edges += [(name, f"{name}.late_reset"), (f"{name}.late_reset", name)]
        if kind == "CubaLIF":
            alpha = 1 - dt / np.asarray(node.tau_syn, float).ravel()
            nodes[f"{name}.late_reset_tail"] = nir.Linear(np.diag(-alpha * w))
            nodes[f"{name}.late_reset_delay"] = nir.Delay(np.full(w.size, dt))
            edges += [(name, f"{name}.late_reset_tail"), (f"{name}.late_reset_tail", f"{name}.late_reset_delay"),
                      (f"{name}.late_reset_delay", name)]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def norse_w_in(graph, dt=NORSE["dt"]):
    """A copy of ``graph`` whose CubaLIF nodes have ``w_in = 1 / (1 - a_syn) = tau_syn / dt`` (Euler): Norse's
    ``LIFCell`` adds its input to the current without NIR's ``1 - a_syn`` factor, but exports ``w_in = 1``."""
    nodes = {k: dataclasses.replace(v, w_in=np.asarray(v.tau_syn, float) / dt) if type(v).__name__ == "CubaLIF"
             else v for k, v in graph.nodes.items()}
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False)


def as_framework_runs_it(name, graph):
    """``graph`` with what the framework does but its NIR export does not say made explicit (see above)."""
    if name in LATE:
        return late_reset(graph)
    if name.startswith("norse"):
        return norse_w_in(graph)
    return graph


def run_float(net, record):
    x = record["x"]
    return net.run_float({net.inputs[0].name: x.reshape(len(x), -1)})


def layers(record):
    """The neuron nodes recorded (spiking ones have ``spk/``, readouts only ``mem/``)."""
    return [k[4:] for k in record if k.startswith("mem/")]


def spiking(record):
    return [k[4:] for k in record if k.startswith("spk/")]


def assert_matches_framework(name, net, record):
    """Spikes equal in every step, potentials to ``V_TOL``. snnTorch reports its potential before its reset (which
    comes a step late): that is the float model's ``v`` where there is no spike, ``v + thr`` with the subtract
    reset where there is one, and gone with the zero reset (those steps are left out). Norse reports ``v`` after
    its reset, as neurotile."""
    res = run_float(net, record)
    for node in layers(record):
        g = net.names[node]
        mem = record[f"mem/{node}"].astype(float)
        spk = record.get(f"spk/{node}", np.zeros(mem.shape, bool))
        np.testing.assert_array_equal(res.spikes[g], spk, err_msg=node)
        v, keep = res.v[g], np.ones(mem.shape, bool)
        if name.startswith("snntorch"):
            if net.float_model.reset == "subtract":
                v = v + spk * net.float_model.populations[g].v_threshold
            else:
                keep = ~spk
        np.testing.assert_allclose(v[keep], mem[keep], atol=V_TOL, rtol=0, err_msg=node)
    for node in spiking(record):
        assert record[f"spk/{node}"].any(), node      # the comparison means something: every layer spikes


# -- fixtures (no torch) ----------------------------------------------------------------------------------------------

def test_fixtures_are_small_and_say_what_made_them():
    for name in FIXTURES:
        for ext in ("nir", "npz"):
            assert (DATA / f"{name}.{ext}").stat().st_size < 50_000, (name, ext)
        _, record = stored(name)
        made_by = {"snntorch": "snntorch 1.0.0", "norse": "norse 1.1.0"}[name.split("_")[0]]
        assert made_by in record["versions"].tolist()
        assert record["x"].dtype == bool and record["x"].shape[0] == 100


@pytest.mark.parametrize("name", FIXTURES)
def test_framework_graph_imports_with_its_structure(name):
    options, pops, pairs = FIXTURES[name]
    graph, _ = stored(name)
    net = nt.from_nir(graph, **options)
    assert [g.name for g in net.inputs] == ["input"]
    assert {node: (type(graph.nodes[node]).__name__, net.groups[net.names[node]].n) for node in pops} == {
        node: (kind, n) for node, (kind, n, *_) in pops.items()}
    for node, (_, _, dv, du, a_mem) in pops.items():
        p = net.groups[net.names[node]].params
        assert set(p["dv"].tolist()) == {dv} and set(p["du"].tolist()) == {du}, node
        np.testing.assert_allclose(net.float_model.populations[net.names[node]].a_mem, a_mem, rtol=1e-6)
    inv = {v: k for k, v in net.names.items()}
    assert {(inv[p.pre.name], inv[p.post.name]) for p in net.projections} == pairs
    last, kind = list(pops)[-1], list(pops.values())[-1][0]
    if kind == "LI":
        assert set(net.readouts) == {net.names[last]} and net.outputs == []
    else:
        assert [p.name for p in net.outputs] == [net.names[last]]
    assert net.arch.reset_mode == options["reset"]


@pytest.mark.parametrize("name", FIXTURES)
def test_float_model_matches_the_framework_exactly(name):
    # snnTorch's zero-reset Leaky zeroes v at the start of the step after a spike, before adding that step's
    # input: neurotile's v <- 0 in the spike's step followed by v = beta * 0 + x. Its subtract reset and Norse's
    # current need the graph changes of as_framework_runs_it (module docstring).
    options, _, _ = FIXTURES[name]
    graph, record = stored(name)
    assert_matches_framework(name, nt.from_nir(as_framework_runs_it(name, graph), **options), record)


@pytest.mark.parametrize("name", LATE)
def test_subtract_reset_differs_by_snntorchs_late_reset(name):
    options, pops, _ = FIXTURES[name]
    graph, record = stored(name)
    net = nt.from_nir(graph, **options)
    res = run_float(net, record)
    # Identical until the first reset takes effect: in every layer up to and including the first step with a
    # spike anywhere (the late reset acts one step later, and a layer's input differs only after that).
    first = min(int(np.argmax(record[f"spk/{n}"].any(1))) for n in spiking(record))
    for node in spiking(record):
        np.testing.assert_array_equal(res.spikes[net.names[node]][:first + 1], record[f"spk/{node}"][:first + 1])
    # Then neurotile has taken off beta * thr by the next step where snnTorch takes off thr: a neuron driven to
    # fire again and again fires about beta times as often in snnTorch. In the first layer (the same input in
    # both), snnTorch's count lies between beta times neurotile's (less one spike per neuron) and neurotile's.
    node = spiking(record)[0]
    n_snn, n_nt = int(record[f"spk/{node}"].sum()), int(res.spikes[net.names[node]].sum())
    _, n, _, _, beta = pops[node]
    assert beta * n_nt - n <= n_snn < n_nt, (n_snn, n_nt)


@pytest.mark.parametrize("name", LATE)
def test_late_reset_connections_are_loop_closing_and_compile(name):
    options, _, _ = FIXTURES[name]
    net = nt.from_nir(late_reset(stored(name)[0]), **options)
    # the added self-connections read the previous step; the CubaLIF tail one step later still
    offsets = {p.name: sorted(set(p.offset.tolist())) for p in net.float_model.projections if p.pre == p.post}
    assert offsets and all(o in ([1], [1, 2]) for o in offsets.values()), offsets
    net.compile(net.arch)


def test_norse_graphs_need_dt_squared():
    # At Norse's own dt (1 ms) its tau of 1e-5 s (1e-3 / 100) is shorter than a step: Euler is refused, and the
    # exact decay exp(-100) would forget everything in one step.
    graph, _ = stored("norse_lifbox")
    with pytest.raises(nt.NetworkError, match=r"node '1': tau=1\.0+6\d*e-05 is shorter than dt=0.001; Euler"):
        nt.from_nir(graph, dt=1e-3, discretization="euler")


@pytest.mark.parametrize("name", FIXTURES)
def test_framework_graph_round_trips_through_to_nir(name, tmp_path):
    options, pops, pairs = FIXTURES[name]
    graph, record = stored(name)
    net1 = nt.from_nir(graph, **options)
    g2 = nt.to_nir(net1)
    # structure: every neuron node comes back with its type and size, joined to the same sources; the names are
    # neurotile's group names (NIR's "1.lif" is the identifier "n_1_lif"), the timing the chip's (order="delayed")
    for node, (kind, n, *_) in pops.items():
        back = g2.nodes[net1.names[node]]
        assert type(back).__name__ == kind
        assert np.size(back.r) == n
    inv = {v: k for k, v in net1.names.items()}
    linked = {(a, c) for a, b in g2.edges for b2, c in g2.edges if b == b2 and a in inv and c in inv}
    assert {(inv[a], inv[c]) for a, c in linked} == pairs
    assert g2.metadata["neurotile"] == {"dt": options["dt"], "reset": options["reset"], "order": "delayed",
                                        "discretization": "euler", "decay_mode": "loihi", "units": "chip"}
    # through HDF5 and nir's own reader: the same integer network exactly
    nir.write(tmp_path / "g2.nir", g2)
    assert_same_network(net1, nt.from_nir(nir.read(tmp_path / "g2.nir"), quantize=False))
    # parameters: imported again as a float graph, the same decays to the 12-bit decay resolution and the same
    # weights relative to the threshold to the 8-bit resolution of the largest weight into the population (one
    # scale per population); readouts have no threshold and are compared in units of that largest weight
    net3 = nt.from_nir(tmp_path / "g2.nir")
    a, b = net1.float_model, net3.float_model
    for node in pops:
        pa, pb = a.populations[net1.names[node]], b.populations[net1.names[node]]
        assert np.all(np.abs(pa.a_mem - pb.a_mem) <= 0.5 / 4096 + 1e-9), node
        assert np.all(np.abs(pa.a_syn - pb.a_syn) <= 0.5 / 4096 + 1e-9), node
    ea = {p.name: effective_weights(a, p) for p in a.projections}
    eb = {p.name: effective_weights(b, p) for p in b.projections}
    assert set(ea) == set(eb)
    for p in a.projections:
        ref = max(np.abs(ea[q.name]).max() for q in a.projections if q.post == p.post)
        if not a.populations[p.post].spiking:
            ref_b = max(np.abs(eb[q.name]).max() for q in b.projections if q.post == p.post)
            ea[p.name], eb[p.name], ref = ea[p.name] / ref, eb[p.name] / ref_b, 1.0
        np.testing.assert_allclose(eb[p.name], ea[p.name], rtol=0, atol=ref / 254 * 1.01, err_msg=p.name)


def effective_weights(model, proj):
    """Dense [post, pre] potential per spike, relative to the threshold for spiking populations:
    ``G W / (v_threshold - v_reset)``."""
    post = model.populations[proj.post]
    n_pre = model.inputs[proj.pre] if proj.pre in model.inputs else model.populations[proj.pre].n
    e = np.zeros((post.n, n_pre))
    i = proj.post_idx
    unit = post.v_threshold[i] - post.v_reset[i] if post.spiking else 1.0
    np.add.at(e, (i, proj.pre_idx), post.gain[i] * proj.weight / unit)
    return e


def test_fixture_tests_import_no_torch():
    # What the tests above run (nir's reader, from_nir, the float model, to_nir) in a fresh interpreter: neither
    # torch nor a framework gets imported, so CI, which installs none, runs them all.
    code = (f"import sys, numpy as np, nir, neurotile as nt\n"
            f"for name in {list(FIXTURES)!r}:\n"
            f"    g = nir.read({str(DATA)!r} + '/' + name + '.nir')\n"
            f"    net = nt.from_nir(g, dt=1e-6 if name.startswith('norse') else 1e-4, discretization='euler')\n"
            f"    net.run_float(steps=5); nt.to_nir(net)\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'snntorch', 'norse', 'nirtorch'))\n"
            f"assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE)


# -- the frameworks themselves (skipped unless installed) ------------------------------------------------------------

@pytest.fixture(scope="module")
def maker():
    pytest.importorskip("torch")
    pytest.importorskip("nirtorch")
    return _load(DATA.parent / "make_framework_graphs.py", "neurotile_tests_make_framework_graphs")


@pytest.mark.parametrize("name", FIXTURES)
def test_regenerated_graph_matches_the_framework(name, maker):
    """Export and run with the installed framework now, and compare as the fixture tests do."""
    package = {"snntorch": "snntorch", "norse": "norse.torch"}[name.split("_")[0]]
    pytest.importorskip(package)
    options = FIXTURES[name][0]
    graph, record = maker.make(name)
    assert_matches_framework(name, nt.from_nir(as_framework_runs_it(name, graph), **options), record)
    assert nt.quantization_report(nt.from_nir(graph, **options), steps=50).clipped == 0
    # the stored fixture is what this framework makes, when it is the version that made it
    _, old = stored(name)
    if set(old["versions"].tolist()) == set(record["versions"].tolist()):
        for k in old:
            np.testing.assert_array_equal(old[k], record[k], err_msg=k)
        old_graph = nir.read(DATA / f"{name}.nir")
        assert set(old_graph.nodes) == set(graph.nodes)
        assert sorted(old_graph.edges) == sorted(graph.edges)
