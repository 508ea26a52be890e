"""Make the NIR graphs exported by real frameworks that tests/compiler/test_nir_frameworks.py imports.

Each model is built in snnTorch or Norse, exported with the framework's own NIR exporter
(``snntorch.export_nir.export_to_nir``, ``norse.torch.to_nir``), written with ``nir.write`` to
``frameworks/<name>.nir``, and run by the framework's own forward pass on fixed Bernoulli input spikes;
``frameworks/<name>.npz`` keeps those inputs (``x``, [steps, *input shape]) and, per neuron layer, the framework's
spikes (``spk/<node>``, none for a readout) and membrane potentials (``mem/<node>``, as the framework reports them
after each step), keyed by the layer's NIR node name, with the versions that made them (``versions``).

The files in tests/data/frameworks were made by this script with snntorch 1.0.0 and norse 1.1.0, on nirtorch 2.6,
torch 2.13.0+cpu, nir 1.0.8 and numpy 2.4 (``versions`` in each npz says which). To remake them (CI never does; it
has no torch)::

    pip install torch==2.13.0                      # CPU wheel; never an unpinned torch
    pip install "neurotile[frameworks]"            # snntorch and nirtorch, pinned
    pip install --no-deps norse==1.1.0             # its NIR export needs no torchvision
    python tests/data/make_framework_graphs.py [names]

With a framework installed, test_nir_frameworks.py rebuilds its models in memory, compares neurotile with the fresh
spikes, and checks that the stored files are what this script makes (when the versions are the same).
"""

import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent / "frameworks"
STEPS = 100
RATE = 0.3

#: name -> (input shape, description). snnTorch exports a scalar beta or threshold as a 0-d array, which NIR's type
#: inference rejects, so every neuron layer is given per-neuron tensors.
MODELS = {
    "snntorch_leaky_zero": ((6,), "Linear(6, 10) -> Leaky(beta 0.9, reset zero) -> Linear(10, 4) -> "
                                  "Leaky(beta 0.8, reset zero)"),
    "snntorch_leaky_subtract": ((6,), "Linear(6, 10) -> Leaky(beta 0.9) -> Linear(10, 4) -> Leaky(beta 0.8), "
                                      "snnTorch's default reset (subtract, one step late)"),
    "snntorch_rleaky": ((5,), "Linear(5, 8) -> RLeaky(beta 0.85, all-to-all Linear(8, 8)) -> Linear(8, 3) -> "
                              "Leaky(beta 0.9), default reset (subtract)"),
    "snntorch_synaptic": ((5,), "Linear(5, 8) -> RSynaptic(alpha 0.8, beta 0.9, all-to-all) -> Linear(8, 3) -> "
                                "Synaptic(alpha 0.7, beta 0.85), default reset (subtract)"),
    "snntorch_conv": ((1, 8, 8), "Conv2d(1, 2, 3, padding 1) -> AvgPool2d(2) -> Leaky(beta 0.9, reset zero) -> "
                                 "Flatten -> Linear(32, 3) -> Leaky(beta 0.9, reset zero)"),
    "norse_lifbox": ((6,), "Linear(6, 10) -> LIFBoxCell(tau_mem_inv 100/s) -> Linear(10, 4) -> "
                           "LIFBoxCell(tau_mem_inv 200/s), dt 1 ms"),
    "norse_lif": ((6,), "Linear(6, 10) -> LIFCell(tau_syn_inv 200/s, tau_mem_inv 100/s) -> Linear(10, 3) -> "
                        "LIBoxCell(tau_mem_inv 50/s) readout, dt 1 ms"),
}


def framework(name):
    return name.split("_")[0]


def versions(name):
    import importlib.metadata as md
    pkgs = [framework(name), "nirtorch", "torch", "nir", "numpy"]
    return {k: md.version(k) for k in pkgs}


def build(name):
    """The model ``name``, seeded; Linear and Conv weights scaled up so that every layer spikes."""
    import torch

    torch.manual_seed(list(MODELS).index(name))
    if framework(name) == "norse":
        return build_norse(name)
    import snntorch as snn

    def full(shape, value):
        return torch.full(shape if isinstance(shape, tuple) else (shape,), float(value))

    def leaky(n, beta, **kw):
        return snn.Leaky(beta=full(n, beta), threshold=full(n, 1.0), init_hidden=True, **kw)

    lin = torch.nn.Linear
    if name in ("snntorch_leaky_zero", "snntorch_leaky_subtract"):
        kw = {"reset_mechanism": "zero"} if name.endswith("zero") else {}
        layers = [lin(6, 10), leaky(10, 0.9, **kw), lin(10, 4), leaky(4, 0.8, **kw)]
        gains = {0: 2.0, 2: 1.5}
    elif name == "snntorch_rleaky":
        layers = [lin(5, 8), snn.RLeaky(beta=full(8, 0.85), threshold=full(8, 1.0), linear_features=8,
                                        init_hidden=True), lin(8, 3), leaky(3, 0.9)]
        gains = {0: 2.0, 2: 1.5}
    elif name == "snntorch_synaptic":
        layers = [lin(5, 8), snn.RSynaptic(alpha=full(8, 0.8), beta=full(8, 0.9), threshold=full(8, 1.0),
                                           linear_features=8, init_hidden=True),
                  lin(8, 3), snn.Synaptic(alpha=full(3, 0.7), beta=full(3, 0.85), threshold=full(3, 1.0),
                                          init_hidden=True)]
        gains = {0: 1.0, 2: 0.7}
    elif name == "snntorch_conv":
        layers = [torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.AvgPool2d(2),
                  leaky((2, 4, 4), 0.9, reset_mechanism="zero"), torch.nn.Flatten(), lin(32, 3),
                  leaky(3, 0.9, reset_mechanism="zero")]
        gains = {0: 3.0, 4: 1.5}
    else:
        raise KeyError(name)
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for i, g in gains.items():
            model[i].weight.mul_(g)
    return model


def build_norse(name):
    import norse.torch as norse
    import torch

    def p(cls, n, **kw):
        return cls(**{k: torch.full((n,), float(v)) for k, v in kw.items()})

    lin = torch.nn.Linear
    if name == "norse_lifbox":
        layers = [lin(6, 10), norse.LIFBoxCell(p(norse.LIFBoxParameters, 10, tau_mem_inv=100, v_th=1, v_leak=0)),
                  lin(10, 4), norse.LIFBoxCell(p(norse.LIFBoxParameters, 4, tau_mem_inv=200, v_th=1, v_leak=0))]
        gains = {0: 12.0, 2: 20.0}
    elif name == "norse_lif":
        layers = [lin(6, 10), norse.LIFCell(p(norse.LIFParameters, 10, tau_syn_inv=200, tau_mem_inv=100, v_th=1,
                                              v_leak=0, v_reset=0)),
                  lin(10, 3), norse.LIBoxCell(p(norse.LIBoxParameters, 3, tau_mem_inv=50, v_leak=0))]
        gains = {0: 3.0, 2: 2.0}
    else:
        raise KeyError(name)
    model = norse.SequentialState(*layers)
    with torch.no_grad():
        for i, g in gains.items():
            model[i].weight.mul_(g)
    return model


def export(model, input_shape):
    """The framework's own export, of a sample without its batch dimension: Norse's ``to_nir`` is given an
    unbatched sample, snnTorch's ``ignore_dims=[0]``. Otherwise nirtorch 2.6 keeps the batch dimension in the
    ``Input`` type (and Norse's in the ``Output`` type too), and NIR's type check rejects the graph."""
    import torch
    if type(model).__module__.startswith("norse"):
        import norse.torch as norse
        graph = norse.to_nir(model, torch.zeros(tuple(input_shape)))
        # Norse leaves torch tensors in the nodes (nir.write and from_nir take them); as numpy, the graph in
        # memory is the one nir.read gives back
        for node in graph.nodes.values():
            for k, v in vars(node).items():
                if isinstance(v, torch.Tensor):
                    setattr(node, k, v.numpy())
        return graph
    from snntorch.export_nir import export_to_nir
    return export_to_nir(model, torch.zeros((1,) + tuple(input_shape)), ignore_dims=[0])


def inputs(name, input_shape):
    rng = np.random.default_rng(100 + list(MODELS).index(name))
    return rng.random((STEPS,) + tuple(input_shape)) < RATE


def node_name(model, i):
    """The NIR node of layer ``i``: nirtorch names a layer by its index; RLeaky and RSynaptic become a subgraph
    whose neuron is ``<i>.lif``."""
    import snntorch as snn
    return f"{i}.lif" if isinstance(model[i], (snn.RLeaky, snn.RSynaptic)) else str(i)


def run_norse(model, x):
    """Norse's forward pass, one step at a time, unbatched; spikes and the state's v (after its reset), or the
    output v of a readout."""
    import norse.torch as norse
    import torch
    states = [None] * len(model)
    out = {}
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = torch.as_tensor(x[t], dtype=torch.float32)
            for i, layer in enumerate(model):
                if isinstance(layer, torch.nn.Linear):
                    h = layer(h)
                    continue
                h, states[i] = layer(h, states[i])
                spk, mem = out.setdefault(str(i), ([], []))
                if not isinstance(layer, norse.LIBoxCell):
                    spk.append(h.numpy().ravel() > 0)
                mem.append(states[i].v.numpy().ravel().copy())
    return {k: (np.array(s) if s else None, np.array(m, np.float32)) for k, (s, m) in out.items()}


def run(model, x):
    """The framework's forward pass (snnTorch's here, one step at a time, batch of one), in float32 as trained.

    Returns {node: (spikes bool [steps, n], mem float32 [steps, n])} for every neuron layer, flattened in C order."""
    if type(model).__module__.startswith("norse"):
        return run_norse(model, x)
    import snntorch as snn
    import torch
    from snntorch import utils
    utils.reset(model)
    out = {}
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = torch.as_tensor(x[t][None], dtype=torch.float32)
            for i, layer in enumerate(model):
                h = layer(h)
                if isinstance(layer, snn.SpikingNeuron):
                    if isinstance(h, tuple):
                        h = h[0]
                    spk, mem = out.setdefault(node_name(model, i), ([], []))
                    spk.append(h[0].numpy().ravel() > 0)
                    mem.append(layer.mem[0].numpy().ravel().copy())
    return {k: (np.array(s), np.array(m, np.float32)) for k, (s, m) in out.items()}


def make(name):
    """(graph, record) for model ``name``: the exported NIR graph and the npz contents."""
    shape, desc = MODELS[name]
    model = build(name)
    graph = export(model, shape)
    x = inputs(name, shape)
    record = {"x": x, "description": np.array(desc)}
    for node, (spk, mem) in run(model, x).items():
        if spk is not None:
            record[f"spk/{node}"] = spk
        record[f"mem/{node}"] = mem
    record["versions"] = np.array([f"{k} {v}" for k, v in versions(name).items()])
    return graph, record


def main(names=None):
    import nir
    HERE.mkdir(exist_ok=True)
    for name in names or MODELS:
        graph, record = make(name)
        nir.write(HERE / f"{name}.nir", graph, compression=None)     # gzip's chunk index triples these tiny files
        np.savez_compressed(HERE / f"{name}.npz", **record)
        rates = {k[4:]: round(float(v.mean()), 3) for k, v in record.items() if k.startswith("spk/")}
        print(f"{name}: {' '.join(record['versions'])}")
        print(f"{name}: {', '.join(f'{k} {type(v).__name__}' for k, v in graph.nodes.items())}; rates {rates}")


if __name__ == "__main__":
    main(sys.argv[1:])
