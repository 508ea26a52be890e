"""Train the spiking digit classifier that ``neurotile demo`` runs, and export it as NIR.

    python examples/train_digits.py                 # writes emulator/data/digits_snn.nir
    python examples/train_digits.py --out my.nir --epochs 60 --hidden 128

Data: scikit-learn's bundled 8x8 digits (``sklearn.datasets.load_digits``, 1797 images, no download),
split 80/20 with ``train_test_split(..., test_size=0.2, stratify=labels, random_state=0)``; the 360 test
indices are stored in the model file, so the demo reads exactly these digits.

Input: each of the 64 pixels (0..16) is an input channel firing x/16 spikes per step, evenly spaced and
deterministic (``neurotile.emulator.demo.encode_digits``): channel c spikes in step t iff
``floor((t + 1) x / 16) > floor(t x / 16)``. No randomness, so the float model, the emulator and the RTL
see the same spikes and the rule fits in one line of metadata.

Network: 64 inputs -> Linear -> 96 LIF -> Linear -> 10 LIF, no biases (a bias per neuron would be a
profile per neuron on the chip). The class is the output neuron with the most spikes over the 25 steps
(lowest index on ties).

Dynamics (plain numpy, float64), exactly what ``nt.from_nir(path, dt=1e-3)`` builds as its float model
(``compiler/float_model.py`` with the defaults ``discretization="exp"``, ``order="sequential"``,
``reset="zero"``)::

    a = exp(-dt / tau),  g = 1 - a,  r = 1 / g          # tau = 20 ms, dt = 1 ms: a = 0.951229
    v[t] = a v[t-1] + g (v_leak + r x[t])                # = a v[t-1] + x[t];  v_leak = 0
    z[t] = v[t] > v_threshold (= 1);  then v <- v_reset (= 0)

with ``x[t] = W z_pre[t]`` from the same step (layers in order within a step). Exported as NIR's
continuous-time ``LIF(tau, r, v_leak, v_threshold, v_reset)``: ``tau dv/dt = (v_leak - v) + r I``, whose
exact solution over a step with the input held is the update above; ``r = 1/g`` makes one step's input
``x`` add ``x`` to ``v``. After training the script imports the file with ``nt.from_nir`` and checks that
its float model produces the same spikes as the training code on every test digit.

Training: backpropagation through time with a fast-sigmoid surrogate gradient
``dz/dv = 1 / (1 + k |v - v_threshold|)**2`` (k = 5), the reset treated as a constant in the backward pass,
cross-entropy on the output spike counts, Adam (lr 2e-3, batch 32), 40 epochs, seed 0. It takes about ten
seconds on two cores and reaches about 98 % float test accuracy.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from neurotile.emulator import demo

DT = 1e-3           # seconds per step
TAU = 20e-3         # membrane time constant of both layers
V_TH = 1.0          # threshold; v_reset = v_leak = 0
SLOPE = 5.0         # fast-sigmoid surrogate slope


def lif_constants(dt=DT, tau=TAU):
    """``(a, g, r)``: as compiler/nir_io.py computes them from the NIR parameters this script writes."""
    a = float(np.exp(-dt / tau))
    g = 1.0 - a
    return a, g, 1.0 / g


def forward(spikes, w1, w2, consts):
    """Run a batch ``spikes [B, T, 64]``; returns the spikes and pre-reset potentials of both layers."""
    a, g, r = consts
    batch, steps, _ = spikes.shape
    v1 = np.zeros((batch, w1.shape[1]))
    v2 = np.zeros((batch, w2.shape[1]))
    z1s, z2s, v1s, v2s = [], [], [], []
    for t in range(steps):
        v1 = a * v1 + g * (0.0 + r * (spikes[:, t] @ w1))
        z1 = (v1 > V_TH).astype(np.float64)
        v2 = a * v2 + g * (0.0 + r * (z1 @ w2))
        z2 = (v2 > V_TH).astype(np.float64)
        z1s.append(z1), z2s.append(z2), v1s.append(v1), v2s.append(v2)
        v1 = np.where(z1 > 0, 0.0, v1)
        v2 = np.where(z2 > 0, 0.0, v2)
    return [np.stack(x, 1) for x in (z1s, z2s, v1s, v2s)]


def surrogate(v):
    return 1.0 / (1.0 + SLOPE * np.abs(v - V_TH)) ** 2


def loss_and_grads(spikes, labels, w1, w2, consts):
    """Cross-entropy of the output spike counts and its BPTT gradients."""
    a = consts[0]
    z1, z2, v1, v2 = forward(spikes, w1, w2, consts)
    batch, steps, _ = spikes.shape
    counts = z2.sum(1)
    logits = counts - counts.max(1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    rows = np.arange(batch)
    loss = float(-np.log(p[rows, labels] + 1e-12).mean())
    dcount = p
    dcount[rows, labels] -= 1.0
    dcount /= batch
    dw1, dw2 = np.zeros_like(w1), np.zeros_like(w2)
    dv1_next = np.zeros((batch, w1.shape[1]))
    dv2_next = np.zeros((batch, w2.shape[1]))
    # v[t+1] = a v_reset[t] + x[t+1] with v_reset[t] = v[t] (1 - z[t]); the reset is not differentiated.
    for t in range(steps - 1, -1, -1):
        dv2 = dcount * surrogate(v2[:, t]) + a * dv2_next * (1.0 - z2[:, t])
        dw2 += z1[:, t].T @ dv2
        dv1 = (dv2 @ w2.T) * surrogate(v1[:, t]) + a * dv1_next * (1.0 - z1[:, t])
        dw1 += spikes[:, t].T @ dv1
        dv1_next, dv2_next = dv1, dv2
    return loss, dw1, dw2


class Adam:
    def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, b1, b2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= self.lr * (m / (1 - self.b1 ** self.t)) / (np.sqrt(v / (1 - self.b2 ** self.t)) + self.eps)


def predict(spikes, w1, w2, consts, batch=256):
    out = []
    for i in range(0, len(spikes), batch):
        out.append(forward(spikes[i:i + batch], w1, w2, consts))
    return [np.concatenate(x) for x in zip(*out)]


def to_nir(w1, w2, steps, test_idx, figures, seed):
    import nir
    hidden = w1.shape[1]

    def lif(n):
        return nir.LIF(tau=np.full(n, TAU), r=np.full(n, lif_constants()[2]), v_leak=np.zeros(n),
                       v_threshold=np.full(n, V_TH), v_reset=np.zeros(n))

    meta = {
        "dt": DT, "steps": steps, "test_indices": np.asarray(test_idx, np.int64),
        "input": "pixels", "hidden": "hidden", "output": "digits",
        "dataset": "sklearn.datasets.load_digits",
        "split": "sklearn.model_selection.train_test_split(arange(1797), test_size=0.2, stratify=target, "
                 "random_state=0); test_indices holds the result",
        "encoding": demo.ENCODING_RULE,
        "readout": "class = the output neuron with the most spikes over the steps (lowest index on ties)",
        "seed": seed, **figures,
    }
    return nir.NIRGraph(nodes={
        "pixels": nir.Input(np.array([64])),
        "w_hidden": nir.Linear(np.ascontiguousarray(w1.T)),
        "hidden": lif(hidden),
        "w_digits": nir.Linear(np.ascontiguousarray(w2.T)),
        "digits": lif(10),
        "output": nir.Output(np.array([10])),
    }, edges=[("pixels", "w_hidden"), ("w_hidden", "hidden"), ("hidden", "w_digits"), ("w_digits", "digits"),
              ("digits", "output")], metadata={demo.METADATA_KEY: meta})


def main(argv=None):
    default_out = Path(demo.__file__).parent / demo.MODEL_RESOURCE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=default_out, help=f"NIR file to write (default {default_out})")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x, y = digits.data, digits.target
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    consts = lif_constants()
    s_train = demo.encode_digits(x[train_idx], args.steps).astype(np.float64)
    s_test = demo.encode_digits(x[test_idx], args.steps).astype(np.float64)
    y_train, y_test = y[train_idx], y[test_idx]
    print(f"{len(train_idx)} training and {len(test_idx)} test digits, {args.steps} steps of {DT * 1e3:g} ms, "
          f"mean {s_train.sum((1, 2)).mean():.0f} input spikes per digit")

    rng = np.random.default_rng(args.seed)
    w1 = rng.normal(0.0, 1.0 / np.sqrt(64), (64, args.hidden))
    w2 = rng.normal(0.0, 1.0 / np.sqrt(args.hidden), (args.hidden, 10))
    opt = Adam([w1, w2], args.lr)
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train_idx))
        total = 0.0
        for i in range(0, len(order), args.batch):
            b = order[i:i + args.batch]
            loss, dw1, dw2 = loss_and_grads(s_train[b], y_train[b], w1, w2, consts)
            opt.step([dw1, dw2])
            total += loss * len(b)
        if epoch % 5 == 0 or epoch == args.epochs:
            z1, z2, _, _ = predict(s_test, w1, w2, consts)
            acc = np.mean(demo.classify(z2.sum(1)) == y_test)
            print(f"epoch {epoch:3d}  loss {total / len(order):.4f}  test accuracy {100 * acc:.2f} %  "
                  f"hidden rate {z1.mean():.3f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    seconds = time.perf_counter() - t0
    # Stored as float32 (half the file); the figures below are those of the stored weights.
    w1, w2 = w1.astype(np.float32), w2.astype(np.float32)
    z1, z2, _, _ = predict(s_test, w1.astype(np.float64), w2.astype(np.float64), consts)
    _, z2_train, _, _ = predict(s_train, w1.astype(np.float64), w2.astype(np.float64), consts)
    test_acc = float(np.mean(demo.classify(z2.sum(1)) == y_test))
    train_acc = float(np.mean(demo.classify(z2_train.sum(1)) == y_train))
    print(f"trained in {seconds:.1f} s: train accuracy {100 * train_acc:.2f} %, float test accuracy "
          f"{100 * test_acc:.2f} %")

    figures = {"float_test_accuracy": test_acc, "float_train_accuracy": train_acc,
               "train_seconds": round(seconds, 1), "epochs": args.epochs, "lr": args.lr, "batch": args.batch}
    graph = to_nir(w1, w2, args.steps, test_idx, figures, args.seed)
    import nir
    args.out.parent.mkdir(parents=True, exist_ok=True)
    nir.write(args.out, graph)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")

    # The file read back by neurotile: its float model must be the model trained here.
    net, spec = demo.load_model(args.out)
    fl = net.float_model
    same = 0
    for k in range(len(test_idx)):
        r = fl.run({spec.input: s_test[k].astype(bool)}, args.steps)
        same += bool(np.array_equal(r.spikes[spec.hidden], z1[k] > 0) and
                     np.array_equal(r.spikes[spec.output], z2[k] > 0))
    print(f"nt.from_nir float model: the same spikes as the training code on {same} of {len(test_idx)} test digits")
    image = net.compile()
    runner = demo.ChipRunner(net, image, spec)
    chip = np.array([runner.run(s_test[k].astype(bool))[1][spec.output].sum(0) for k in range(len(test_idx))])
    cpred, fpred = demo.classify(chip), demo.classify(z2.sum(1))
    print(f"chip (functional emulator, {image.arch.name}): test accuracy {100 * np.mean(cpred == y_test):.2f} %, "
          f"same class as the float model on {100 * np.mean(cpred == fpred):.2f} % of the test digits")
    if same != len(test_idx):
        raise SystemExit("error: the imported float model differs from the trained one")


if __name__ == "__main__":
    main()
