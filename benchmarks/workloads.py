"""The standard benchmark workloads of /work/shared/WORKLOADS.md as neurotile networks.

The peers ran float LIF (``v <- 0.95 v + I``, threshold 1, reset to zero). The integer equivalent
here: ``du = 4095`` clears u every step, so ``u = input << 6`` and v integrates this step's
synaptic input; ``dv = 205`` keeps ``1 - 205/4096 = 0.95`` of v; reset to zero (the ``zero``
reset mode of the architecture). In input units (``v >> 6``) the threshold is ``vth``, so the
weights below are read against ``vth``. Weight scales and drives were tuned (with the functional
emulator) so that the firing rates match the ones the peers report; every random choice comes
from a fixed seed, so a workload is the same network and the same input every time.

Run ``python benchmarks/workloads.py [W1 W2 W3]`` to compile them and print their rates (with
neurotile installed, e.g. ``pip install -e .``); ``benchmarks/emulator_speed.py`` times them.
"""

import dataclasses

import numpy as np

import neurotile as nt

__all__ = ["Workload", "build", "WORKLOADS", "DV_095"]

#: dv for a decay of v by 0.95 per step: 1 - 205 / 4096 = 0.94995.
DV_095 = 205


@dataclasses.dataclass
class Workload:
    """A network, the architecture it is compiled for, and its input.

    Members
    -------
    name : str
    network : nt.Network
    arch : nt.Arch
    inputs : dict of str to ndarray of bool [steps, n]
    steps : int
    target_rates : dict of str to float
        Spikes per neuron per step that the peers' runs show, by population.
    """

    name: str
    network: object
    arch: object
    inputs: dict
    steps: int
    target_rates: dict


def _lif(vth):
    return nt.LIF(du=4095, dv=DV_095, vth=vth)


# -- W1: feed-forward 784-256-256-10 ---------------------------------------------------------------

#: Tuned: hidden layers fire 9 % and 11 % per step under 10 % Poisson input. Weights are
#: rounded normal (mean, sd) pairs per layer, clipped to the signed 8-bit range.
W1_PARAMS = dict(vth=1000, w1=(1.65, 20.0), w2=(6.6, 20.0), w3=(5.1, 20.0), seed=1)


def _w1(steps=100, seed=None):
    p = W1_PARAMS
    rng = np.random.default_rng(p["seed"] if seed is None else seed)
    net = nt.Network("W1")
    x = net.input(784, name="x")
    h1 = net.population(256, _lif(p["vth"]), name="h1")
    h2 = net.population(256, _lif(p["vth"]), name="h2")
    out = net.population(10, _lif(p["vth"]), name="out")
    for pre, post, (mu, sd) in ((x, h1, p["w1"]), (h1, h2, p["w2"]), (h2, out, p["w3"])):
        w = np.clip(np.rint(rng.normal(mu, sd, (pre.n, post.n))), -127, 127).astype(np.int64)
        w[w == 0] = 1                   # dense: every pair is a synapse
        net.connect(pre, post, w)
    net.output(out)
    inputs = {"x": rng.random((steps, 784)) < 0.10}
    arch = nt.Arch.profile("large", mesh_w=4, mesh_h=2)
    return Workload("W1", net, arch, inputs, steps, {"h1": 0.09, "h2": 0.11})


# -- W2, W3: recurrent E/I networks with external Poisson drive ------------------------------------

#: Tuned: about 7 % of the neurons fire per step. ``ext_rate``: Poisson rate of the one external
#: channel per neuron; weights in input units against ``vth``.
W2_PARAMS = dict(vth=100, w_e=3, w_i=-12, w_ext=23, ext_rate=0.25)
W3_PARAMS = dict(vth=100, w_e=3, w_i=-12, w_ext=32, ext_rate=0.25)


def _recurrent(name, n, p_conn, steps, arch, seed, prm):
    rng = np.random.default_rng(seed)
    net = nt.Network(name)
    n_e = int(round(0.8 * n))
    ext = net.input(n, name="ext")
    pop = net.population(n, _lif(prm["vth"]), name="exc_inh")
    # Random connectivity with probability p_conn, drawn per presynaptic neuron without a dense
    # [n, n] matrix (W3 has 32768^2 pairs).
    deg = rng.binomial(n, p_conn, n)
    pre = np.repeat(np.arange(n), deg)
    post = np.concatenate([rng.choice(n, k, replace=False) for k in deg])
    w = np.where(pre < n_e, prm["w_e"], prm["w_i"])
    net.connect(pop, pop, (pre, post, w), delay=1)
    idx = np.arange(n)
    net.connect(ext, pop, (idx, idx, np.full(n, prm["w_ext"])), delay=1)
    inputs = {"ext": rng.random((steps, n)) < prm["ext_rate"]}
    return Workload(name, net, arch, inputs, steps, {"exc_inh": 0.07})


def _w2(steps=1000, seed=2):
    return _recurrent("W2", 4096, 0.1, steps, nt.Arch.profile("large", mesh_w=8, mesh_h=4), seed,
                      W2_PARAMS)


def _w3(steps=200, seed=3):
    return _recurrent("W3", 32768, 0.01, steps, nt.Arch.profile("large"), seed, W3_PARAMS)


WORKLOADS = {"W1": _w1, "W2": _w2, "W3": _w3}


def build(name, steps=None):
    """The workload ``name`` ("W1", "W2" or "W3"), with its default steps unless given."""
    if name not in WORKLOADS:
        raise nt.NeurotileValueError(f"unknown workload {name!r}; workloads: "
                                     f"{', '.join(WORKLOADS)}")
    return WORKLOADS[name]() if steps is None else WORKLOADS[name](steps=steps)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="Compile the workloads and print their firing rates.")
    ap.add_argument("names", nargs="*", default=list(WORKLOADS))
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args(argv)
    for name in args.names:
        w = build(name, args.steps)
        image = nt.compile(w.network, w.arch)
        emu = nt.Emulator(image, progress=False)
        res = emu.run(w.inputs, steps=w.steps)
        rates = {k: float(s.mean()) for k, s in res.spikes.items()}
        print(f"{name}: {w.network!r}, {image.meta['cores_used']} cores; rates "
              + ", ".join(f"{k} {r:.4f} (target {w.target_rates.get(k, '-')})"
                          for k, r in rates.items())
              + f"; synops/step {res.total('synops') / w.steps:.0f}")


if __name__ == "__main__":
    main()
