"""A plain-numpy float reference of an imported NIR graph, discretised exactly as the importer maps it.

:func:`neurotile.from_nir` builds one :class:`FloatModel` next to the integer network; both see the same
populations, synapses and step offsets, so their outputs can be compared spike for spike
(:func:`neurotile.quantization_report`). docs/nir.md derives every formula below.

Every population, whatever its NIR type, is one instance of this discrete-time model (``a = decay``,
``g = 1 - a`` of the chosen discretisation, ``x[t]`` the summed synaptic input plus the constant bias)::

    I[t] = a_syn * I[t-1] + g_syn * w_in * x[t]          # current (LIF, IF, LI, I: a_syn = 0, g_syn = w_in = 1)
    v[t] = a_mem * v[t-1] + g_mem * (v_leak + r * I[t])  # membrane (IF, I: a_mem = g_mem = 1, v_leak = 0)
    z[t] = v[t] > v_threshold                            # never, for the readouts LI, CubaLI, I
    v[t] = v_reset if z[t] ("zero")  or  v[t] - v_threshold if z[t] ("subtract")

starting from ``I = 0`` and ``v = v_reset`` (0 for readouts). The synapses of a projection deliver
``x[t] += weight * z_pre[t - offset]``; the offset of each synapse is its NIR delay in steps plus one step for
every edge (``order="delayed"``) or for the edges closing a loop only (``order="sequential"``). Populations are
updated in an order in which every zero-offset source comes first.
"""

import dataclasses

import numpy as np

from .errors import NetworkError, NeurotileTypeError

__all__ = ["FloatPopulation", "FloatProjection", "FloatModel", "FloatResult"]

#: Per-neuron parameters of a :class:`FloatPopulation`, in the order of the model equations.
PARAMS = ("a_syn", "g_syn", "w_in", "a_mem", "g_mem", "r", "v_leak", "v_threshold", "v_reset", "bias")


@dataclasses.dataclass(eq=False)
class FloatPopulation:
    """One population of the float model.

    Members
    -------
    name : str
        Group name in the integer network.
    node : str
        NIR node it came from.
    kind : str
        NIR type name (``"LIF"``, ``"CubaLIF"``, ``"IF"``, ``"LI"``, ``"CubaLI"``, ``"I"``).
    n : int
    spiking : bool
        False for the readouts (LI, CubaLI, I).
    a_syn, g_syn, w_in, a_mem, g_mem, r, v_leak, v_threshold, v_reset, bias : float64 arrays [n]
        The coefficients of the module equations; ``bias`` is the constant input (Affine and Conv biases)
        in the units of ``x``.
    """

    name: str
    node: str
    kind: str
    n: int
    spiking: bool
    a_syn: np.ndarray
    g_syn: np.ndarray
    w_in: np.ndarray
    a_mem: np.ndarray
    g_mem: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray
    v_threshold: np.ndarray
    v_reset: np.ndarray
    bias: np.ndarray

    def __post_init__(self):
        for k in PARAMS:
            arr = np.broadcast_to(np.asarray(getattr(self, k), np.float64), (self.n,)).copy()
            setattr(self, k, arr)

    @property
    def gain(self):
        """Membrane potential added (through the current) per unit of ``x``: ``g_mem * r * g_syn * w_in``."""
        return self.g_mem * self.r * self.g_syn * self.w_in


@dataclasses.dataclass(eq=False)
class FloatProjection:
    """Synapses from a source (input or population) to a population, in float.

    Members
    -------
    pre, post : str
        Group names.
    pre_idx, post_idx : int64 arrays
    weight : float64 array
        In the units of the target's ``x``.
    delay : int64 array
        NIR delay in steps (``nir.Delay`` nodes on the path), >= 0.
    offset : int64 array
        Steps from a spike to its arrival in the float model: ``delay`` plus the edge's own step (1 for every
        edge with ``order="delayed"``; with ``order="sequential"`` 1 for loop-closing edges, else 0).
    back : bool
        The edge closes a loop (a back edge of the depth-first search), ``order="sequential"`` only.
    """

    pre: str
    post: str
    pre_idx: np.ndarray
    post_idx: np.ndarray
    weight: np.ndarray
    delay: np.ndarray
    offset: np.ndarray
    back: bool = False

    @property
    def name(self):
        return f"{self.pre}->{self.post}"

    @property
    def n_synapses(self):
        return int(self.pre_idx.size)


@dataclasses.dataclass(eq=False)
class FloatResult:
    """What :meth:`FloatModel.run` returns: ``spikes[pop]`` bool, ``v[pop]`` and ``i[pop]`` float, [steps, n]."""

    steps: int
    spikes: dict
    v: dict
    i: dict


class FloatModel:
    """The float reference of an imported graph.

    Parameters
    ----------
    inputs : dict of str to int
        Input group sizes.
    populations : list of FloatPopulation
    projections : list of FloatProjection
    reset : {"zero", "subtract"}
    options : dict
        The discretisation the importer used (dt, order, discretization), kept for reports.
    """

    def __init__(self, inputs, populations, projections, reset="zero", options=None):
        if reset not in ("zero", "subtract"):
            raise NetworkError(f"reset must be 'zero' or 'subtract', not {reset!r}")
        self.inputs = dict(inputs)
        self.populations = {p.name: p for p in populations}
        self.projections = list(projections)
        self.reset = reset
        self.options = dict(options or {})
        self._order = self._update_order()
        # Synapses of each target, grouped by (source, offset): the run loop is one gather-and-bincount per group.
        self._groups = {name: [] for name in self.populations}
        for proj in self.projections:
            for off in np.unique(proj.offset):
                sel = proj.offset == off
                self._groups[proj.post].append(
                    (proj.pre, int(off), proj.pre_idx[sel], proj.post_idx[sel], proj.weight[sel]))

    def _update_order(self):
        """Populations ordered so that every source reached with offset 0 is updated before its target."""
        deps = {name: set() for name in self.populations}
        for proj in self.projections:
            if proj.post not in self.populations:
                raise NetworkError(f"projection {proj.name}: no population {proj.post!r}")
            if proj.pre not in self.populations and proj.pre not in self.inputs:
                raise NetworkError(f"projection {proj.name}: no input or population {proj.pre!r}")
            if np.any(proj.offset < 0):
                raise NetworkError(f"projection {proj.name}: offsets must be >= 0")
            if proj.pre in self.populations and proj.n_synapses and proj.offset.min() == 0:
                deps[proj.post].add(proj.pre)
        order, state = [], {}

        def visit(name, path):
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                loop = " -> ".join(path[path.index(name):] + [name])
                raise NetworkError(f"the populations {loop} depend on each other within one step (a loop with "
                                   f"no delay); a loop needs at least one step of delay")
            state[name] = 1
            for d in sorted(deps[name], key=list(self.populations).index):
                visit(d, path + [name])
            state[name] = 2
            order.append(name)

        for name in self.populations:
            visit(name, [])
        return order

    def run(self, inputs=None, steps=None):
        """Run ``steps`` steps from the initial state (I = 0, v = v_reset).

        Parameters
        ----------
        inputs : dict of str to bool array [steps, n], optional
            Input spikes by group; a group left out is silent.
        steps : int, optional
            Taken from the input arrays when omitted.

        Returns
        -------
        FloatResult
        """
        inputs = {} if inputs is None else inputs
        if not isinstance(inputs, dict):
            raise NeurotileTypeError(f"inputs must be a dict of input name to spikes, not "
                                     f"{type(inputs).__name__}")
        for name in inputs:
            if name not in self.inputs:
                raise NetworkError(f"unknown input {name!r}; inputs: {', '.join(map(repr, self.inputs))}")
        if steps is None:
            if not inputs:
                raise NetworkError("run() needs steps=... when no input arrays are given")
            steps = int(np.shape(next(iter(inputs.values())))[0])
        src = {}
        for name, n in self.inputs.items():
            arr = np.zeros((steps, n), bool) if name not in inputs else np.asarray(inputs[name]).astype(bool)
            if arr.shape != (steps, n):
                raise NetworkError(f"input {name!r} must have shape {(steps, n)}, not {arr.shape}")
            src[name] = arr
        spikes = {name: np.zeros((steps, p.n), bool) for name, p in self.populations.items()}
        vs = {name: np.zeros((steps, p.n)) for name, p in self.populations.items()}
        cur = {name: np.zeros((steps, p.n)) for name, p in self.populations.items()}
        src.update(spikes)
        state_i = {name: np.zeros(p.n) for name, p in self.populations.items()}
        state_v = {name: np.where(p.spiking, p.v_reset, 0.0) for name, p in self.populations.items()}
        for t in range(steps):
            for name in self._order:
                p = self.populations[name]
                x = p.bias.copy()
                for pre, off, pi, po, w in self._groups[name]:
                    if t - off < 0:
                        continue
                    active = src[pre][t - off][pi]
                    if active.any():
                        x += np.bincount(po[active], w[active], minlength=p.n)
                i = p.a_syn * state_i[name] + p.g_syn * p.w_in * x
                v = p.a_mem * state_v[name] + p.g_mem * (p.v_leak + p.r * i)
                if p.spiking:
                    z = v > p.v_threshold
                    if self.reset == "zero":
                        v = np.where(z, p.v_reset, v)
                    else:
                        v = np.where(z, v - p.v_threshold, v)
                    spikes[name][t] = z
                state_i[name], state_v[name] = i, v
                vs[name][t] = v
                cur[name][t] = i
        return FloatResult(steps, spikes, vs, cur)

    def __repr__(self):
        n = sum(p.n for p in self.populations.values())
        return (f"<FloatModel {len(self.inputs)} inputs, {len(self.populations)} populations ({n} neurons), "
                f"{len(self.projections)} projections, reset={self.reset!r}>")
