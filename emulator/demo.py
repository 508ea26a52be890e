"""The end-to-end demo: a spiking digit classifier from NIR to the chip, the emulator and the RTL.

``neurotile demo`` (or :func:`run_demo`) takes the model shipped with the package,
``emulator/data/digits_snn.nir`` (trained by ``examples/train_digits.py`` on scikit-learn's bundled
8x8 digits), and runs the whole chain on its held-out test digits:

1. **import** the NIR graph (:func:`neurotile.from_nir`) with the ``dt`` it was trained at;
2. **quantize**: print :func:`neurotile.quantization_report` on a few test digits;
3. **compile** for :func:`demo_arch` (a 2x2 mesh of 32-neuron cores) and print the image's report;
4. **emulate** every test digit in ``functional`` mode next to the float model: accuracy of both,
   how often they pick the same class, spikes and synaptic operations per inference; then a few
   digits in ``cycle`` mode for clock cycles and the energy estimate (:meth:`Emulator.energy`);
5. **co-simulate** a few digits on the generated RTL in Verilator
   (:func:`neurotile.sim.compare_with_emulator`) and check that it is bit-exact with the cycle mode;
6. write plots (spike raster, synaptic operations per core on the mesh, float vs chip accuracy).

The model file carries what the demo needs besides its weights in ``graph.metadata["digits_demo"]``:
``dt``, ``steps`` per digit, the test split's indices into ``sklearn.datasets.load_digits()`` and the
input encoding rule (:func:`encode_digits`), so no copy of the data set is shipped.

>>> import neurotile.emulator.demo as demo
>>> demo.encode_digits([[0, 8, 16]], steps=4).astype(int)[0].T    # one row per pixel
array([[0, 0, 0, 0],
       [0, 1, 0, 1],
       [1, 1, 1, 1]])
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import time
from pathlib import Path

import numpy as np

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileValueError, ToolchainError

__all__ = ["MODEL_RESOURCE", "METADATA_KEY", "PLOTS", "DEMO_ARCH", "ENCODING_RULE", "DigitsSpec", "DemoResult",
           "CycleFigures", "demo_arch", "model_file", "model_path", "load_model", "load_test_set", "encode_digits",
           "classify", "ChipRunner", "float_counts", "plot_raster", "plot_core_activity", "plot_accuracy",
           "run_demo", "summary_lines"]

#: The shipped model, relative to the ``neurotile.emulator`` package (package data).
MODEL_RESOURCE = "data/digits_snn.nir"
#: Key of the demo's own entries in the NIR graph's metadata.
METADATA_KEY = "digits_demo"
#: Plot files written into the output folder.
PLOTS = {"raster": "spike_raster.png", "mesh": "core_activity.png", "accuracy": "accuracy.png"}
#: Test digits run in cycle mode for the cycle and energy figures.
CYCLE_DIGITS = 5
#: Test digits the quantization report runs back to back.
REPORT_DIGITS = 8

#: The chip the demo compiles for: a 2x2 mesh of 32-neuron cores, so the 96 hidden neurons spread
#: over three cores and the 10 outputs sit on the fourth (every core and link of the mesh is used),
#: with memories sized to the model rather than to a big chip, which keeps the RTL small for
#: Verilator. 64 input channels to 3 cores make at most 192 input packets per step.
DEMO_ARCH = dict(mesh_w=2, mesh_h=2, neurons_per_core=32, profiles_per_core=4, axons_per_core=128,
                 synapses_per_core=4096, fanout_per_core=64, max_delay=4, host_in_depth=256,
                 host_out_depth=64, name="digits-demo")


def demo_arch(**changes):
    """The :class:`~neurotile.Arch` of the demo chip (:data:`DEMO_ARCH`), optionally with fields changed."""
    return Arch(**{**DEMO_ARCH, **changes})


# -- the input encoding -------------------------------------------------------------------------------------------

#: The rule :func:`encode_digits` implements, as stored in the model file.
ENCODING_RULE = ("deterministic rate code: pixel c (row-major, value x in 0..16 as in "
                 "sklearn.datasets.load_digits) is input channel c, which spikes in step t (0-based) iff "
                 "floor((t + 1) * x / 16) > floor(t * x / 16), i.e. x/16 spikes per step, evenly spaced")


def encode_digits(pixels, steps):
    """Input spikes of 8x8 digit images (:data:`ENCODING_RULE`).

    Parameters
    ----------
    pixels : array-like [..., n]
        Pixel values, whole numbers 0..16 (``load_digits().data`` rows have n = 64).
    steps : int

    Returns
    -------
    ndarray of bool [..., steps, n]
    """
    x = np.asarray(pixels)
    if not np.all((x == np.round(x)) & (x >= 0) & (x <= 16)):
        raise NeurotileValueError("pixel values must be whole numbers 0..16 (sklearn.datasets.load_digits)")
    x = x.astype(np.int64)
    t = np.arange(int(steps), dtype=np.int64).reshape((-1,) + (1,) * x.ndim)
    spikes = ((t + 1) * x) // 16 > (t * x) // 16          # [steps, ..., n]
    return np.moveaxis(spikes, 0, -2)


def classify(counts):
    """The class of each row of output spike counts: the most spikes, the lowest index on ties."""
    return np.asarray(counts).argmax(axis=-1)


# -- the model ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class DigitsSpec:
    """What the model file says about its use (``graph.metadata["digits_demo"]``).

    Members
    -------
    dt : float
        Seconds per step the model was trained at (pass it to ``nt.from_nir``).
    steps : int
        Steps per digit.
    test_indices : ndarray of int
        The held-out digits, as indices into ``sklearn.datasets.load_digits()``.
    input, hidden, output : str
        Group names: the 64 pixel channels, the hidden layer, the 10 class neurons.
    encoding, readout, split : str
        The input rule (:func:`encode_digits`), the class rule (:func:`classify`) and how the split was made.
    training : dict
        Everything else the training script recorded (``float_test_accuracy``, ``train_seconds``, ``seed``, ...).
    """

    dt: float
    steps: int
    test_indices: np.ndarray
    input: str
    hidden: str
    output: str
    encoding: str
    readout: str
    split: str
    training: dict

    @classmethod
    def from_metadata(cls, meta):
        if not isinstance(meta, dict) or METADATA_KEY not in meta:
            raise NeurotileValueError(f"the NIR graph has no metadata[{METADATA_KEY!r}]: it was not written by "
                                      f"examples/train_digits.py")
        m = {k: _plain(v) for k, v in meta[METADATA_KEY].items()}
        known = {f.name for f in dataclasses.fields(cls)} | {"dataset"}
        training = {k: v for k, v in m.items() if k not in known}
        return cls(dt=float(m["dt"]), steps=int(m["steps"]), test_indices=np.asarray(m["test_indices"], np.int64),
                   input=m["input"], hidden=m["hidden"], output=m["output"], encoding=m["encoding"],
                   readout=m["readout"], split=m["split"], training=training)


def _plain(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def model_file():
    """The shipped model as an :mod:`importlib.resources` traversable."""
    return importlib.resources.files("neurotile.emulator").joinpath(MODEL_RESOURCE)


@contextlib.contextmanager
def model_path():
    """Context manager giving the shipped model as a file system path (extracted if the package is zipped)."""
    with importlib.resources.as_file(model_file()) as path:
        yield Path(path)


def _nir():
    try:
        import nir
    except ImportError:
        raise ToolchainError("the demo needs the nir package: pip install 'neurotile[nir]'") from None
    return nir


def load_model(path=None, arch=None):
    """Import the model with the options it was trained for.

    Parameters
    ----------
    path : str or path, optional
        A NIR file written by ``examples/train_digits.py``; default the shipped one.
    arch : Arch, optional
        Default :func:`demo_arch`.

    Returns
    -------
    (NIRNetwork, DigitsSpec)
    """
    from ..compiler.nir_io import from_nir
    nir = _nir()
    if path is None:
        with model_path() as p:
            graph = nir.read(p, type_check=False)
    else:
        graph = nir.read(path, type_check=False)
    spec = DigitsSpec.from_metadata(graph.metadata)
    net = from_nir(graph, dt=spec.dt, arch=demo_arch() if arch is None else arch, name="digits_snn")
    return net, spec


def load_test_set(spec, n_test=None):
    """The held-out digits: ``(pixels [n, 64], labels [n], indices [n])``, the first ``n_test`` of the split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ToolchainError("the demo reads its test digits from scikit-learn's bundled data set: "
                             "pip install scikit-learn") from None
    digits = load_digits()
    idx = spec.test_indices if n_test is None else spec.test_indices[:int(n_test)]
    return digits.data[idx], digits.target[idx], idx


# -- running -----------------------------------------------------------------------------------------------------

def float_counts(net, spec, spikes_in, progress=None):
    """Run the float model on every digit: ``(output spike counts [n, 10], spikes per digit {group: [n]})``."""
    from tqdm.auto import tqdm
    n = len(spikes_in)
    counts = np.zeros((n, net.float_model.populations[spec.output].n), np.int64)
    totals = {p: np.zeros(n, np.int64) for p in net.float_model.populations}
    for k in tqdm(range(n), desc="float model", unit="digit", disable=_disable(progress), leave=False):
        r = net.run_float({spec.input: spikes_in[k]}, spec.steps)
        counts[k] = r.spikes[spec.output].sum(0)
        for p in totals:
            totals[p][k] = r.spikes[p].sum()
    return counts, totals


class ChipRunner:
    """One emulator for many digits: each run starts from the loaded image's state.

    The chip runs each population ``net.latency`` steps behind the float model (every synapse takes a
    step), so each digit runs ``steps + max latency`` steps with silent input at the end, and the spikes
    are shifted back to line up with the float model's (as :meth:`NIRNetwork.run_chip` does).
    """

    def __init__(self, net, image, spec, mode="functional"):
        from .emulator import Emulator
        self.net, self.image, self.spec = net, image, spec
        self.emulator = Emulator(image, mode=mode, progress=False)
        self.lag = max(net.latency.values(), default=0)

    @property
    def chip_steps(self):
        return self.spec.steps + self.lag

    def chip_inputs(self, spikes):
        """One digit's input ``[steps, 64]`` padded to the chip's run."""
        pad = np.zeros((self.chip_steps, spikes.shape[1]), bool)
        pad[:self.spec.steps] = spikes
        return {self.spec.input: pad}

    def aligned(self, result):
        """The spikes of a chip run shifted back by each population's latency: {pop: [steps, n]}."""
        steps = self.spec.steps
        return {p: s[self.net.latency[p]:self.net.latency[p] + steps] for p, s in result.spikes.items()
                if p in self.net.latency}

    def run(self, spikes):
        """Run one digit from the initial state: ``(RunResult, aligned spikes)``."""
        self.emulator.reset()
        result = self.emulator.run(self.chip_inputs(spikes), self.chip_steps)
        return result, self.aligned(result)


def _disable(progress):
    return None if progress is None else not progress


# -- plots -------------------------------------------------------------------------------------------------------

def _figure(**kw):
    # A bare Figure draws with Agg and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure
    return Figure(**kw)


def plot_raster(path, pixels, label, spikes_in, spikes, spec, predicted, float_predicted):
    """Spike raster of one digit: the image, its input spikes, the hidden layer and the class neurons."""
    steps = spec.steps
    fig = _figure(figsize=(9, 8), layout="constrained")
    grid = fig.add_gridspec(3, 2, width_ratios=[1, 4], height_ratios=[60, 80, 42])
    ax_img = fig.add_subplot(grid[0, 0])
    ax_img.imshow(np.asarray(pixels).reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
    ax_img.set_title(f"label {label}")
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    rows = [("input (64 pixels)", spikes_in, grid[0, 1], "tab:gray"),
            (f"hidden ({spikes[spec.hidden].shape[1]} LIF)", spikes[spec.hidden], grid[1, 1], "tab:blue"),
            ("output (10 classes)", spikes[spec.output], grid[2, 1], "tab:red")]
    first = None
    for title, s, where, color in rows:
        ax = fig.add_subplot(where, sharex=first)
        first = first or ax
        t, n = np.nonzero(s)
        ax.scatter(t, n, s=10, marker="|" if s.shape[1] > 20 else "s", color=color, linewidths=1.2)
        ax.set_xlim(-0.5, steps - 0.5)
        ax.set_ylim(-0.5, s.shape[1] - 0.5)
        ax.invert_yaxis()
        ax.set_ylabel("neuron")
        ax.set_title(f"{title}: {int(s.sum())} spikes", fontsize=10, loc="left")
    ax.set_yticks(range(10), [str(k) for k in range(10)], fontsize=7)
    ax.set_ylabel("class")
    ax.set_xlabel(f"step ({spec.dt * 1e3:g} ms each)")
    counts = spikes[spec.output].sum(0)
    ax_c = fig.add_subplot(grid[1:, 0])
    colors = ["tab:red" if k == predicted else "tab:gray" for k in range(10)]
    ax_c.barh(range(10), counts, color=colors)
    ax_c.set_yticks(range(10))
    ax_c.invert_yaxis()
    ax_c.set_xlabel("output spikes")
    ax_c.set_ylabel("class")
    ax_c.set_title(f"chip says {predicted}\n(float model: {float_predicted})", fontsize=10)
    fig.suptitle("one test digit on the emulated chip (functional mode, aligned to the float model's steps)")
    fig.savefig(path, dpi=110)


def plot_core_activity(path, image, synops_per_core, spikes_per_core, n_digits):
    """Heatmap of synaptic operations per inference on every core of the mesh."""
    a = image.arch
    grid = np.asarray(synops_per_core, float).reshape(a.mesh_h, a.mesh_w) / max(n_digits, 1)
    spk = np.asarray(spikes_per_core, float).reshape(a.mesh_h, a.mesh_w) / max(n_digits, 1)
    pops = [[[] for _ in range(a.mesh_w)] for _ in range(a.mesh_h)]
    for name, where in image.populations.items():
        for c in np.unique(np.asarray(where["core"], np.int64)):
            pops[int(c) // a.mesh_w][int(c) % a.mesh_w].append(name)
    fig = _figure(figsize=(2.6 * a.mesh_w + 2, 2.4 * a.mesh_h + 1.2), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(grid, cmap="viridis", vmin=0)
    top = grid.max() or 1.0
    for y in range(a.mesh_h):
        for x in range(a.mesh_w):
            text = (f"({x},{y}) {'+'.join(pops[y][x]) or 'unused'}\n{grid[y, x]:,.0f} synops\n"
                    f"{spk[y, x]:,.1f} spikes")
            ax.text(x, y, text, ha="center", va="center", fontsize=9,
                    color="black" if grid[y, x] > 0.6 * top else "white")
    ax.set_xticks(range(a.mesh_w), [f"x={x}" for x in range(a.mesh_w)])
    ax.set_yticks(range(a.mesh_h), [f"y={y}" for y in range(a.mesh_h)])
    ax.set_title(f"synaptic operations per inference by core\n(mean of {n_digits} test digits; host port west of (0,0))",
                 fontsize=10)
    fig.colorbar(im, ax=ax, label="synops per inference")
    fig.savefig(path, dpi=110)


def plot_accuracy(path, labels, float_pred, chip_pred):
    """Bars: float and chip accuracy overall and per class."""
    labels = np.asarray(labels)
    fig = _figure(figsize=(10, 4), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2, width_ratios=[1, 3])
    acc = [100 * np.mean(float_pred == labels), 100 * np.mean(chip_pred == labels)]
    bars = ax0.bar(["float model", "chip (integer)"], acc, color=["tab:blue", "tab:red"])
    for b, v in zip(bars, acc):
        ax0.text(b.get_x() + b.get_width() / 2, v + 0.5, f"{v:.1f} %", ha="center", va="bottom")
    agree = 100 * np.mean(float_pred == chip_pred)
    ax0.set_ylim(0, 112)
    ax0.set_ylabel("test accuracy (%)")
    ax0.set_title(f"{labels.size} test digits; same class {agree:.1f} %", fontsize=10)
    classes = np.arange(10)
    per_f = [100 * np.mean(float_pred[labels == c] == c) if np.any(labels == c) else np.nan for c in classes]
    per_c = [100 * np.mean(chip_pred[labels == c] == c) if np.any(labels == c) else np.nan for c in classes]
    ax1.bar(classes - 0.2, per_f, 0.4, label="float model", color="tab:blue")
    ax1.bar(classes + 0.2, per_c, 0.4, label="chip (integer)", color="tab:red")
    ax1.set_xticks(classes)
    ax1.set_xlabel("digit")
    ax1.set_ylim(0, 118)
    ax1.set_title("per class", fontsize=10)
    ax1.legend(loc="upper center", ncol=2, frameon=False)
    fig.savefig(path, dpi=110)


# -- the demo ----------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class DemoResult:
    """What :func:`run_demo` measured.

    Members
    -------
    n_test : int
    float_accuracy, chip_accuracy, agreement : float
        Fractions of the test digits: float model correct, chip correct, same class on both.
    spikes_per_inference : dict of str to float
        Input channels and populations (float model's step window on the chip).
    synops_per_inference : float
    cycles_per_inference : float or None
        Mean over the cycle-mode digits (``chip_steps`` steps each).
    energy_per_inference : dict of str to float or None
        Joules by category (:func:`~neurotile.emulator.energy.result_energy`), mean per cycle-mode digit.
    cosim : str
        ``"bit-exact"``, ``"MISMATCH"``, ``"skipped"`` or ``"unavailable"``.
    cosim_detail : str
    plots : dict of str to Path
    seconds : float
    """

    n_test: int
    float_accuracy: float
    chip_accuracy: float
    agreement: float
    spikes_per_inference: dict
    synops_per_inference: float
    cycles_per_inference: object
    energy_per_inference: object
    cycle_digits: int
    cosim: str
    cosim_detail: str
    plots: dict
    seconds: float

    @property
    def ok(self):
        """False only when the co-simulation found the RTL differing from the emulator."""
        return self.cosim != "MISMATCH"


def _section(echo, title):
    echo("")
    echo(f"== {title}")


def _cosimulate(image, runner, spikes_in, k, echo, progress):
    """Co-simulate the first ``k`` digits; ``(status, detail, rtl classes)``."""
    try:
        from .. import sim
        reason = sim.simulator_available("verilator")
    except ImportError as error:
        return "unavailable", f"the co-simulation module is missing ({error})", []
    if reason is not None:
        return "unavailable", f"Verilator cannot run here: {reason}", []
    from tqdm.auto import tqdm
    spec = runner.spec
    classes, lines = [], []
    t0 = time.time()
    try:
        build = getattr(sim, "build_chip", None)
        if build is not None:
            echo(f"building the {image.arch.mesh_w}x{image.arch.mesh_h} chip for Verilator (once per design, "
                 f"about a minute; cached after that) ...")
            b = build(image.arch)
            echo(f"simulator {'found in the cache' if b.cached else 'built'} in {b.seconds:.0f} s: {b.path}")
        for d in tqdm(range(k), desc="RTL co-simulation", unit="digit", disable=_disable(progress), leave=False):
            cmp = sim.compare_with_emulator(image, runner.chip_inputs(spikes_in[d]), runner.chip_steps)
            out = cmp.rtl.spikes.get(spec.output)
            cls = None if out is None else int(classify(runner.aligned(cmp.rtl)[spec.output].sum(0)))
            classes.append(cls)
            lines.append(f"  digit {d}: {cmp}" + ("" if cls is None else f"; RTL says {cls}"))
            if not cmp.exact:
                for line in lines:
                    echo(line)
                return "MISMATCH", f"digit {d}: {cmp}", classes
    except (ToolchainError, OSError) as error:
        for line in lines:
            echo(line)
        return "unavailable", f"the co-simulation could not run: {error}", classes
    for line in lines:
        echo(line)
    return "bit-exact", f"{k} of {k} digits bit-exact with the cycle mode ({time.time() - t0:.0f} s)", classes


def run_demo(out="neurotile-demo", n_test=None, cosim_digits=3, cosim=True, *, model=None, progress=None,
             echo=print):
    """Run the whole flow on the shipped model; see the module docstring.

    Parameters
    ----------
    out : str or path
        Folder for the plots (created).
    n_test : int, optional
        Test digits to emulate (default: the whole held-out split).
    cosim_digits : int
        Test digits to co-simulate on the RTL.
    cosim : bool
        False skips the co-simulation.
    model : str or path, optional
        Another model written by ``examples/train_digits.py``.
    progress : bool or None
        Progress bars (tqdm, on stderr): None shows them when stderr is a terminal.
    echo : callable
        Prints one line.

    Returns
    -------
    DemoResult
    """
    from ..compiler.quantize import quantization_report
    t_start = time.time()
    if n_test is not None and int(n_test) < 1:
        raise NeurotileValueError(f"n_test must be at least 1, not {n_test!r}")
    if int(cosim_digits) < 0:
        raise NeurotileValueError(f"cosim_digits must be >= 0, not {cosim_digits!r}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ToolchainError("the demo draws its plots with matplotlib: pip install 'neurotile[plots]'") from None
    from tqdm.auto import tqdm
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. import ----------------------------------------------------------------------------------------------
    net, spec = load_model(model)
    pixels, labels, indices = load_test_set(spec, n_test)
    n = len(labels)
    spikes_in = encode_digits(pixels, spec.steps)
    hidden_n = net.float_model.populations[spec.hidden].n
    echo(f"neurotile demo: {'digits_snn.nir (shipped)' if model is None else model}: 64 pixels -> {hidden_n} LIF "
         f"-> 10 LIF, {spec.steps} steps of {spec.dt * 1e3:g} ms per digit; {n} of the {spec.test_indices.size} "
         f"held-out digits of sklearn's 8x8 digits")
    _section(echo, "1. import NIR")
    echo(net.summary())

    # 2. quantize ---------------------------------------------------------------------------------------------
    _section(echo, f"2. quantize (report on {min(REPORT_DIGITS, n)} test digits back to back)")
    report_in = {spec.input: spikes_in[:REPORT_DIGITS].reshape(-1, 64)}
    echo(str(quantization_report(net, report_in)))
    echo("(the report runs these digits as one stream, without resets between them; per-digit accuracy "
         "follows in step 4)")

    # 3. compile ----------------------------------------------------------------------------------------------
    _section(echo, "3. compile")
    image = net.compile()
    echo(str(image.report()))

    # 4. emulate ----------------------------------------------------------------------------------------------
    _section(echo, f"4. emulate {n} test digits (functional mode) next to the float model")
    fcounts, ftotals = float_counts(net, spec, spikes_in, progress)
    runner = ChipRunner(net, image, spec, "functional")
    ccounts = np.zeros_like(fcounts)
    n_cores = image.arch.n_cores
    synops_core = np.zeros(n_cores, np.int64)
    spikes_core = np.zeros(n_cores, np.int64)
    ctotals = {p: np.zeros(n, np.int64) for p in ftotals}
    raster = None
    for k in tqdm(range(n), desc="chip (functional)", unit="digit", disable=_disable(progress), leave=False):
        res, spikes = runner.run(spikes_in[k])
        ccounts[k] = spikes[spec.output].sum(0)
        synops_core += res.counters["synops"].sum(0)
        spikes_core += res.counters["spikes"].sum(0)
        for p in ctotals:
            ctotals[p][k] = spikes[p].sum()
        if k == 0:
            raster = spikes
    fpred, cpred = classify(fcounts), classify(ccounts)
    float_acc = float(np.mean(fpred == labels))
    chip_acc = float(np.mean(cpred == labels))
    agree = float(np.mean(fpred == cpred))
    per_inf = {spec.input: float(spikes_in.sum() / n), **{p: float(v.mean()) for p, v in ctotals.items()}}
    synops = float(synops_core.sum() / n)
    echo(f"float model accuracy   {100 * float_acc:6.2f} %  ({int(np.sum(fpred == labels))} / {n})")
    echo(f"chip accuracy          {100 * chip_acc:6.2f} %  ({int(np.sum(cpred == labels))} / {n})")
    echo(f"same class             {100 * agree:6.2f} %  ({int(np.sum(fpred == cpred))} / {n}); equal spike "
         f"counts on all 10 outputs for {int(np.all(fcounts == ccounts, 1).sum())}")
    echo("spikes per inference   " + ", ".join(f"{p} {v:.1f}" for p, v in per_inf.items())
         + f"  (float model: " + ", ".join(f"{p} {v.mean():.1f}" for p, v in ftotals.items()) + ")")
    echo(f"synops per inference   {synops:,.0f}")

    k_cycle = min(n, CYCLE_DIGITS)
    cyc = CycleFigures.measure(net, image, spec, spikes_in[:k_cycle], progress)
    echo(f"cycle mode, {k_cycle} digits of {runner.chip_steps} chip steps ({spec.steps} + {runner.lag} of pipeline "
         f"latency): {cyc.cycles:,.0f} cycles per inference ({cyc.cycles / runner.chip_steps:,.0f} per step)")
    e = cyc.energy
    echo(f"energy per inference   {e['total'] * 1e6:.3f} uJ, estimated (Emulator.energy with Loihi's per-operation "
         f"figures: "
         + ", ".join(f"{k} {v * 1e9:.0f} nJ" for k, v in e.items() if k != "total" and v) + ")")

    # 5. co-simulate ------------------------------------------------------------------------------------------
    k_cosim = min(int(cosim_digits), n)
    _section(echo, f"5. RTL co-simulation (Verilator) of {k_cosim} test digits")
    if not cosim or k_cosim == 0:
        status, detail = "skipped", "not run (--no-cosim)" if not cosim else "not run (--cosim-digits 0)"
    else:
        status, detail, _ = _cosimulate(image, runner, spikes_in, k_cosim, echo, progress)
    if status == "unavailable":
        echo(f"NOT RUN: {detail}; the rest of the demo does not depend on it")
    elif status == "MISMATCH":
        echo(f"MISMATCH: {detail}")
    else:
        echo(detail)

    # 6. plots ------------------------------------------------------------------------------------------------
    _section(echo, "6. plots")
    plots = {key: out / name for key, name in PLOTS.items()}
    plot_raster(plots["raster"], pixels[0], int(labels[0]), spikes_in[0], raster, spec, int(cpred[0]),
                int(fpred[0]))
    plot_core_activity(plots["mesh"], image, synops_core, spikes_core, n)
    plot_accuracy(plots["accuracy"], labels, fpred, cpred)
    for p in plots.values():
        echo(f"wrote {p}")

    result = DemoResult(n, float_acc, chip_acc, agree, per_inf, synops, cyc.cycles, e, k_cycle, status, detail,
                        plots, time.time() - t_start)
    _section(echo, "summary")
    for line in summary_lines(result):
        echo(line)
    return result


@dataclasses.dataclass
class CycleFigures:
    """Mean clock cycles and energy per inference over a few digits run in cycle mode."""

    cycles: float
    energy: dict

    @classmethod
    def measure(cls, net, image, spec, spikes_in, progress=None):
        from tqdm.auto import tqdm
        runner = ChipRunner(net, image, spec, "cycle")
        cycles, energy = 0.0, {}
        k = len(spikes_in)
        for d in tqdm(range(k), desc="chip (cycle)", unit="digit", disable=_disable(progress), leave=False):
            res, _ = runner.run(spikes_in[d])
            cycles += float(np.sum(res.cycles))
            for key, v in runner.emulator.energy(res).items():
                energy[key] = energy.get(key, 0.0) + v / k
        return cls(cycles / max(k, 1), energy)


def summary_lines(r):
    """The demo's closing summary, one line per figure."""
    e = r.energy_per_inference
    return [
        f"test digits            {r.n_test}",
        f"float model accuracy   {100 * r.float_accuracy:.2f} %",
        f"chip accuracy          {100 * r.chip_accuracy:.2f} %",
        f"chip = float class     {100 * r.agreement:.2f} %",
        "spikes per inference   " + ", ".join(f"{p} {v:.1f}" for p, v in r.spikes_per_inference.items()),
        f"synops per inference   {r.synops_per_inference:,.0f}",
        f"cycles per inference   {r.cycles_per_inference:,.0f} (cycle mode, {r.cycle_digits} digits)",
        f"energy per inference   {e['total'] * 1e6:.3f} uJ (estimate from Loihi's per-operation figures)",
        f"RTL co-simulation      {r.cosim}: {r.cosim_detail}",
        "plots                  " + ", ".join(str(p) for p in r.plots.values()),
        f"demo time              {r.seconds:.1f} s",
    ]
