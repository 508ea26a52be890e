"""Find the first place where two runs disagree.

Every link of the chain (reference, functional and cycle engines, RTL co-simulation, board)
returns a :class:`~.result.RunResult`; :func:`first_divergence` compares two of them and names the
earliest step, and in it the earliest effect, at which they differ: a neuron's u or v, a spike, a
counter, a flag.
"""

import dataclasses

import numpy as np

from ..compiler.errors import NeurotileTypeError
from .result import COUNTERS_CHIP, COUNTERS_CYCLE, COUNTERS_PER_CORE, RunResult

__all__ = ["Divergence", "first_divergence"]

_PORTS = ("N", "E", "S", "W", "L")
# Counter order within a step: what the UPDATE phase produces first.
_COUNTER_ORDER = COUNTERS_PER_CORE + COUNTERS_CHIP + ("link",) + COUNTERS_CYCLE


@dataclasses.dataclass(frozen=True)
class Divergence:
    """Where two run results first differ.

    Members
    -------
    step : int
        Index into the results' arrays (0 = the first step of the run).
    chip_step : int
        The chip's step number (``start_step + step``).
    kind : str
        ``"probe"``, ``"spikes"``, ``"counter"``, ``"flag"``, ``"steps"`` (run lengths differ),
        ``"start_step"`` or ``"shape"`` (arrays of different sizes).
    name : str
        Population, probe (``"pop.v"``), counter or flag name.
    core : int or None
        Core index ``y * mesh_w + x`` (per-core counters, link, and, with an image, neurons).
    neuron : int or None
        Neuron index within its population (spikes and probes).
    local : int or None
        The neuron's number within its core (with an image).
    port : str or None
        Router output port of a ``link`` difference.
    a, b
        The two values.
    xy : (int, int) or None
        Mesh position of ``core`` (with an image).
    """

    step: int
    chip_step: int
    kind: str
    name: str
    a: object
    b: object
    core: object = None
    neuron: object = None
    local: object = None
    port: object = None
    xy: object = None

    def _where(self):
        parts = []
        if self.neuron is not None:
            parts.append(f"neuron {self.neuron}")
        if self.core is not None:
            where = f"core {self.core}"
            if self.xy is not None:
                where += f" at {self.xy}"
            if self.local is not None:
                where += f", local neuron {self.local}"
            parts.append(where if self.neuron is None else f"({where})")
        if self.port is not None:
            parts.append(f"port {self.port}")
        return " ".join(parts)

    def __str__(self):
        when = f"step {self.step}" + (f" (chip step {self.chip_step})"
                                      if self.chip_step != self.step else "")
        if self.kind == "steps":
            return (f"runs differ in length: a has {self.a} steps, b has {self.b}; they agree on "
                    f"the first {self.step}")
        if self.kind == "start_step":
            return f"runs start at different chip steps: a at {self.a}, b at {self.b}"
        if self.kind == "shape":
            return f"{self.name} differ in shape: a {self.a}, b {self.b}"
        if self.kind == "flag":
            def show(v):
                return "not raised" if v < 0 else f"raised in chip step {v}"
            return f"{when}: flag {self.name!r} a {show(self.a)}, b {show(self.b)}"
        what = {"probe": f"probe {self.name!r}", "spikes": f"spikes of {self.name!r}",
                "counter": f"counter {self.name!r}"}[self.kind]
        where = self._where()
        return f"{when}: {what}{' ' + where if where else ''}: a={self.a!r}, b={self.b!r}"


def _py(x):
    return x.item() if isinstance(x, np.generic) else x


class _Finder:
    """Collects candidates; keeps the earliest (step, rank)."""

    def __init__(self, a, b, image):
        self.a, self.b, self.image = a, b, image
        self.best = None
        self.rank = 0

    def offer(self, step, **kw):
        key = (step, self.rank)
        if self.best is None or key < self.best[0]:
            self.best = (key, kw)

    def xy(self, core):
        if self.image is None or core is None:
            return None
        w = self.image.arch.mesh_w
        return (core % w, core // w)

    def array(self, kind, name, x, y, steps):
        """Compare two arrays whose first axis is the step."""
        x, y = np.asarray(x), np.asarray(y)
        self.rank += 1
        if x.shape[1:] != y.shape[1:]:
            self.offer(0, kind="shape", name=f"{kind} {name!r}", a=x.shape, b=y.shape)
            return
        x, y = x[:steps], y[:steps]
        diff = x != y
        if not diff.any():
            return
        idx = np.argwhere(diff)[0]
        step = int(idx[0])
        kw = dict(kind=kind, name=name, a=_py(x[tuple(idx)]), b=_py(y[tuple(idx)]))
        rest = [int(i) for i in idx[1:]]
        if kind in ("spikes", "probe"):
            kw["neuron"] = rest[0]
            pops = self.image.populations if self.image is not None else {}
            pop = name.rpartition(".")[0] if kind == "probe" else name
            if pop in pops:
                kw["core"] = int(pops[pop]["core"][rest[0]])
                kw["local"] = int(pops[pop]["local"][rest[0]])
        elif len(rest) >= 1:
            kw["core"] = rest[0]
            if len(rest) == 2:
                kw["port"] = _PORTS[rest[1]]
        kw["xy"] = self.xy(kw.get("core"))
        self.offer(step, **kw)


def first_divergence(a, b, image=None):
    """The first difference between two run results, or None if they agree.

    Compares, for the steps both ran: the spikes of every population both hold, every probe both
    hold, every counter both hold, and the sticky flags (value and first step). The answer is the
    difference at the earliest step; within a step, probes come before spikes, spikes before
    counters (in :data:`~.result.COUNTERS_PER_CORE`, :data:`~.result.COUNTERS_CHIP`, ``link``,
    :data:`~.result.COUNTERS_CYCLE` order), counters before flags. Runs of different lengths that
    agree on their common steps diverge at the first step only one of them ran.

    Parameters
    ----------
    a, b : RunResult
    image : ChipImage, optional
        Used to name the core and the local neuron of a spike or probe difference, and mesh
        positions.

    Returns
    -------
    Divergence or None
    """
    for r, which in ((a, "a"), (b, "b")):
        if not isinstance(r, RunResult):
            raise NeurotileTypeError(f"first_divergence needs two RunResults; {which} is a "
                                     f"{type(r).__name__}")
    if a.start_step != b.start_step:
        return Divergence(0, 0, "start_step", "start_step", a.start_step, b.start_step)
    steps = min(a.steps, b.steps)
    f = _Finder(a, b, image)
    for key in a.probes:
        if key in b.probes:
            f.array("probe", key, a.probes[key], b.probes[key], steps)
    for pop in a.spikes:
        if pop in b.spikes:
            f.array("spikes", pop, a.spikes[pop], b.spikes[pop], steps)
    names = [k for k in _COUNTER_ORDER if k in a.counters and k in b.counters]
    names += sorted(k for k in a.counters if k in b.counters and k not in _COUNTER_ORDER)
    for name in names:
        x, y = a.counters[name], b.counters[name]
        if x is None or y is None:
            continue
        f.array("counter", name, x, y, steps)
    f.rank += 1
    if a.steps != b.steps:
        f.offer(steps, kind="steps", name="steps", a=a.steps, b=b.steps)
    f.rank += 1
    for flag in a.flag_step:
        if flag not in b.flag_step:
            continue
        sa, sb = int(a.flag_step[flag]), int(b.flag_step[flag])
        fa, fb = bool(a.flags.get(flag, sa >= 0)), bool(b.flags.get(flag, sb >= 0))
        if sa != sb or fa != fb:
            first = min(s for s in (sa, sb) if s >= 0) if max(sa, sb) >= 0 else a.start_step
            f.offer(max(first - a.start_step, 0), kind="flag", name=flag, a=sa, b=sb)
    if f.best is None:
        return None
    (step, _), kw = f.best
    return Divergence(step=step, chip_step=a.start_step + step, **kw)
