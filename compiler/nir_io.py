r"""NIR graphs in and out: :func:`from_nir` maps a float NIR graph to the chip's integer network, :func:`to_nir`
writes an integer network as a NIR graph.

NIR (the Neuromorphic Intermediate Representation, package ``nir``) describes a network in continuous time. The chip
runs in steps of integers, so an import makes choices; every one is a parameter with a documented default, and
where the graph itself is ambiguous the import stops with a :class:`~.errors.NetworkError` saying which choice to
make. docs/nir.md has the derivations and examples.

Structure
---------
**Spike sources** are the graph's ``Input`` nodes and its neuron nodes; every neuron node becomes a population. The
nodes between sources are linear maps (``Affine``, ``Linear``, ``Scale``, ``Delay``, ``Flatten``, ``Conv1d``,
``Conv2d``, ``SumPool2d``, ``AvgPool2d``, subgraph boundaries); along every path from a source to a population
they are multiplied out into one sparse matrix (convolutions and pools expanded into synapses, vectorised), and
the paths between the same source and population are summed into one projection. Edges into one node add. Biases
of ``Affine`` and ``Conv`` nodes are carried to the population as a constant input ``b``. Shapes missing from the
graph (scalar neuron parameters, ``Conv`` without ``input_shape``, pools) are inferred from the neighbours. A loop
of linear nodes with no neuron on it cannot run in steps and is refused. ``Output`` nodes must be fed by a neuron
node (through ``Flatten`` at most): spiking ones become the network's outputs, the non-spiking readouts ``LI``,
``CubaLI`` and ``I`` become populations whose threshold (``2**17 - 1``) is never reached and whose ``v`` is read
with ``probes=["name.v"]`` (:meth:`NIRNetwork.run_chip` converts it back to float units).

Discretisation (``dt``, ``discretization``)
-------------------------------------------
A first-order equation ``tau * dx/dt = -x + y`` becomes ``x[t] = a * x[t-1] + (1 - a) * y[t]`` with

- ``discretization="exp"`` (default): ``a = exp(-dt / tau)``, exact for ``y`` held over the step;
- ``discretization="euler"``: ``a = 1 - dt / tau`` (forward Euler; needs ``dt <= tau``). snnTorch's exports
  (``tau = dt / (1 - beta)``, ``dt = 1e-4``) give back its ``beta`` exactly with this and its ``dt``; Norse 1.1.0's
  (``tau = dt / tau_inv``) with ``dt`` squared (docs/nir.md section 9).

``tau = 0`` gives ``a = 0`` and ``tau = inf`` gives ``a = 1``. With ``g = 1 - a`` and ``x[t]`` the summed synaptic
input plus ``b``, the neuron nodes are (:mod:`.float_model` runs exactly this in float):

=========  ===========================================================================================
LIF        ``v = a_mem v + g_mem (v_leak + r x)``, spike ``v > v_threshold``, reset
CubaLIF    ``I = a_syn I + g_syn w_in x``;  ``v = a_mem v + g_mem (v_leak + r I)``, spike, reset
IF         ``v = v + r x`` (no dt: NIR's ideal integrator per step, as snnTorch and Sinabs read it)
LI         LIF without spikes;  CubaLI: CubaLIF without spikes;  I: ``v = v + r x`` without spikes
=========  ===========================================================================================

The state starts at ``I = 0``, ``v = v_reset`` (0 for the readouts). ``reset="zero"`` (default) sets ``v`` to
``v_reset`` after a spike, ``reset="subtract"`` subtracts ``v_threshold`` (and then needs ``v_reset = 0``); the
chip's ``Arch.reset_mode`` is set to match. Within a step the current is updated before the voltage, and the
voltage sees the new current (the chip's order).

Timing (``order``)
------------------
``Delay`` nodes delay by ``delay / dt`` steps, which must be a whole number. On the chip every synapse takes at
least one step. ``order`` says how the float model times an edge:

- ``"sequential"`` (default; snnTorch, Norse, Sinabs, Rockpool and lava-dl evaluate layers in order within one
  step): an edge takes no time, except the edges that close a loop (back edges of a depth-first search from the
  inputs, taken in the order of their first edge; successors in the order of their first incoming edge), which
  read the previous step. The
  chip runs each population ``latency[pop]`` steps behind the float model (its depth), with synapse delays
  ``offset + latency[post] - latency[pre]``. A loop of m populations needs m steps on the chip but has only one
  in the float model; it is refused unless ``nir.Delay`` nodes make up the difference.
- ``"delayed"`` (Lava's ``Dense``, the chip's own timing): every edge takes one step plus its ``Delay``. No latency.

Pre-charge (``precharge=True``, default): the chip's bias is on from chip step 0, but a population's inputs reach
it only from chip step ``latency`` (its float step 0). Each neuron therefore starts from an initial chip state
(``LIF.u0``, ``LIF.v0``, in the image's ``neuron_state`` words) such that after those ``latency`` steps of pre-roll
its ``v`` is the float ``v_reset`` (chip 0) and, for a CubaLIF bias, its ``u`` is minus the bias's current part
``bias_u = s G b / (1 - a_syn)``, so that ``u + bias`` rises through ``tau_syn`` as the float current does (at every
latency, 0 included). :func:`~.quantize.precharge` finds both integers exactly with the chip's own update; where they
do not fit 24 bits, or the pre-roll would fire the neuron, it falls back and the notes say where. ``precharge=False``
starts from ``u = v = 0``: the bias then acts ``latency`` steps early and a CubaLIF bias reaches ``v`` at its steady
state at once (both noted).

Mapping to the chip (docs/architecture.md sections 4 and 5)
-----------------------------------------------------------
Each population gets a scale ``s`` (chip ``v`` LSBs per float unit; :mod:`.quantize` chooses it) with chip
``v = s (v - v_reset)``, chip ``u = s g_mem r I``, and ``G = g_mem r g_syn w_in`` per neuron:

=============  ===============================================================================================
du             ``round(4096 (1 - a_syn)) - 1`` (Loihi's +1 offset; LIF/IF/LI: a_syn = 0, so du = 4095 clears u)
dv             ``round(4096 (1 - a_mem))``; IF, I: 0.  (``decay_mode="shift"``: ``round(-log2(1 - a))``)
weight         ``(w << weight_exp) << 6 = round(s G[post] W)``: ``w = round(s G W / 2**(6 + weight_exp))``
delay          ``offset + latency[post] - latency[pre]`` steps (>= 1)
vth            ``round(s (v_threshold - v_reset) / 64)``, compared as ``vth << 6``
bias           ``bias_mant << bias_exp = round(s (g_mem (v_leak - v_reset) + G b / (1 - a_syn)))`` per step
=============  ===============================================================================================

The bias is exact for LIF and IF; for CubaLIF the chip adds its steady state every step and the pre-charged
``u0 = -bias_u`` (above) restores the rise through ``tau_syn`` (without it a constant input reaches ``v`` at once).
``u0``, ``v0``: the pre-charge. Example: ``tau = 10 ms``, ``dt = 1 ms``: ``a = exp(-0.1) = 0.904837``,
``dv = round(4096 * 0.095163) = 390``.

Export
------
:func:`to_nir` writes chip units (``s = 1``): a population becomes ``LIF`` (``du = 4095``; ``IF`` when also
``dv = 0``) or ``CubaLIF`` with ``tau = -dt / ln(a)`` from the chip's decay factor, ``r = 1 / g_mem``,
``w_in = 1 / g_syn`` (so ``G = 1``), ``v_threshold = vth * 64``, ``v_reset = 0``, ``v_leak = bias / g_mem``; a
projection becomes a ``Linear`` node per distinct delay, with ``W = w * 2**(6 + weight_exp)`` and its
``weight_exp`` in ``metadata["neurotile"]`` (a population's ``bias_exp`` likewise, as ``w << e`` and
``bias_mant << bias_exp`` are not unique; a non-zero initial state ``u0``, ``v0`` likewise, as NIR has no field
for it), followed by a ``Delay`` of ``(delay - 1) * dt``. The graph's
``metadata["neurotile"]`` records dt, reset, order ("delayed"), discretisation and decay mode, which
:func:`from_nir` takes as its defaults, and ``from_nir(..., quantize=False)`` reads such a graph back exactly.
"""

import math
import numbers
import os
import re

import numpy as np

from .arch import Arch
from .errors import MappingError, NetworkError, NeurotileTypeError, NeurotileValueError
from .float_model import FloatModel, FloatPopulation, FloatProjection
from .network import LIF, Network
from .quantize import quantize_population

__all__ = ["from_nir", "to_nir", "NIRNetwork", "ChipRun", "SUPPORTED", "DEFAULTS"]

#: Every NIR node type neurotile maps, and its role: one registry for the importer, its errors and the docs.
SUPPORTED = {
    "Input": "input", "Output": "output",
    "Affine": "linear", "Linear": "linear", "Scale": "linear", "Delay": "linear", "Flatten": "linear",
    "Identity": "linear", "Conv1d": "linear", "Conv2d": "linear", "SumPool2d": "linear", "AvgPool2d": "linear",
    "LIF": "neuron", "CubaLIF": "neuron", "IF": "neuron", "LI": "neuron", "CubaLI": "neuron", "I": "neuron",
}
#: Neuron types without spikes: mapped to populations whose threshold is never reached, read through ``v``.
READOUTS = ("LI", "CubaLI", "I")
#: Defaults of the import options (a graph written by :func:`to_nir` overrides them with its metadata).
DEFAULTS = {"dt": 1e-3, "reset": "zero", "order": "sequential", "discretization": "exp"}
ORDERS = ("sequential", "delayed")
DISCRETIZATIONS = ("exp", "euler")
RESETS = ("zero", "subtract")

_NEURON_PARAMS = {
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "I": ("r",),
}
_ELEMENTWISE = {"Input", "Output", "Scale", "Delay", "Identity", "_pass"} | set(_NEURON_PARAMS)


def _supported_list():
    return ", ".join(sorted(SUPPORTED))


def _nir():
    try:
        import nir
    except ImportError:                      # pragma: no cover - nir is installed with neurotile[nir]
        raise NeurotileTypeError("NIR import and export need the nir package: pip install 'neurotile[nir]'") \
            from None
    return nir


def _arr(x):
    return np.asarray(x, dtype=np.float64)


def _shape(x):
    return None if x is None else tuple(int(v) for v in np.asarray(x).ravel())


# -- sparse linear maps with per-entry delays ------------------------------------------------------------------

class _Map:
    """A sparse linear map ``n_in -> n_out`` whose entries carry a delay in steps: ``y[r](t) += v * x[c](t - d)``."""

    __slots__ = ("rows", "cols", "vals", "dly", "n_out", "n_in")

    def __init__(self, rows, cols, vals, dly, n_out, n_in):
        self.rows = np.asarray(rows, np.int64)
        self.cols = np.asarray(cols, np.int64)
        self.vals = np.asarray(vals, np.float64)
        self.dly = np.broadcast_to(np.asarray(dly, np.int64), self.rows.shape).copy()
        self.n_out, self.n_in = int(n_out), int(n_in)

    @classmethod
    def identity(cls, n):
        i = np.arange(n)
        return cls(i, i, np.ones(n), 0, n, n)

    def compose(self, other):
        """``self o other``: ``other`` first (``n_in -> n_mid``), then ``self`` (``n_mid -> n_out``)."""
        order = np.argsort(other.rows, kind="stable")
        counts = np.bincount(other.rows, minlength=self.n_in)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        cnt = counts[self.cols]
        total = int(cnt.sum())
        rep = np.repeat(np.arange(self.cols.size), cnt)
        within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        idx = order[np.repeat(starts[self.cols], cnt) + within]
        return _Map(self.rows[rep], other.cols[idx], self.vals[rep] * other.vals[idx],
                    self.dly[rep] + other.dly[idx], self.n_out, other.n_in).merged()

    def merged(self):
        """Entries with equal (row, col, delay) summed, exact zeros dropped, sorted by row, col, delay."""
        if self.rows.size == 0:
            return self
        o = np.lexsort((self.dly, self.cols, self.rows))
        r, c, d, v = self.rows[o], self.cols[o], self.dly[o], self.vals[o]
        new = np.ones(r.size, bool)
        new[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1]) | (d[1:] != d[:-1])
        starts = np.flatnonzero(new)
        v = np.add.reduceat(v, starts)
        keep = v != 0
        return _Map(r[starts][keep], c[starts][keep], v[keep], d[starts][keep], self.n_out, self.n_in)

    @staticmethod
    def add(maps):
        maps = list(maps)
        m0 = maps[0]
        return _Map(np.concatenate([m.rows for m in maps]), np.concatenate([m.cols for m in maps]),
                    np.concatenate([m.vals for m in maps]), np.concatenate([m.dly for m in maps]),
                    m0.n_out, m0.n_in).merged()

    def apply(self, vec):
        """``y = M x`` for a constant ``x`` (delays do not matter)."""
        return np.bincount(self.rows, self.vals * vec[self.cols], minlength=self.n_out)


# -- the graph ------------------------------------------------------------------------------------------------

def _flatten_graph(nir, graph, prefix="", inner=False):
    """Nodes and edges of ``graph`` with subgraphs inlined as ``sub.node``; subgraph Input/Output pass through."""
    nodes, edges, entry, exit_ = {}, [], {}, {}
    for name, node in graph.nodes.items():
        full = prefix + str(name)
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten_graph(nir, node, full + ".", inner=True)
            nodes.update(sub_nodes)
            edges += sub_edges
            ins = [k for k, v in node.nodes.items() if isinstance(v, nir.Input)]
            outs = [k for k, v in node.nodes.items() if isinstance(v, nir.Output)]
            entry[full] = f"{full}.{ins[0]}" if len(ins) == 1 else None
            exit_[full] = f"{full}.{outs[0]}" if len(outs) == 1 else None
        elif inner and isinstance(node, (nir.Input, nir.Output)):
            nodes[full] = ("_pass", node)                    # a subgraph's boundary passes values through
        else:
            nodes[full] = node
    for a, b in graph.edges:
        a, b = prefix + str(a), prefix + str(b)
        for end, table, what in ((a, exit_, "Output"), (b, entry, "Input")):
            if end in table and table[end] is None:
                raise NetworkError(f"edge ({a!r}, {b!r}) connects subgraph {end!r}, which needs exactly one {what} "
                                   f"node to connect through; name the inner node in the edge instead")
        edges.append((exit_.get(a, a), entry.get(b, b)))
    return nodes, edges


def _type_name(node):
    if isinstance(node, tuple):
        return "_pass"
    return type(node).__name__


class _Graph:
    """The flattened graph with roles, predecessors and shapes."""

    def __init__(self, nir, graph, dt):
        self.nir = nir
        self.dt = dt
        nodes, edges = _flatten_graph(nir, graph)
        self.nodes = nodes
        self.types = {k: _type_name(v) for k, v in nodes.items()}
        for name, t in self.types.items():
            if t != "_pass" and t not in SUPPORTED:
                hint = ""
                if t == "Threshold":
                    hint = " (a Threshold alone has no state: use IF with r = 1 and v_reset = 0 for a spiking unit)"
                raise NetworkError(f"node {name!r} is a nir.{t}, which neurotile cannot map{hint}; supported node "
                                   f"types: {_supported_list()}")
        seen = set()
        for a, b in edges:
            for end in (a, b):
                if end not in nodes:
                    raise NetworkError(f"edge ({a!r}, {b!r}) names node {end!r}, which the graph does not have")
            if (a, b) in seen:
                raise NetworkError(f"edge ({a!r}, {b!r}) is listed twice; NIR edges are identities, so a repeated "
                                   f"edge is ambiguous (double the weights instead)")
            seen.add((a, b))
            if self.types[b] == "Input":
                raise NetworkError(f"edge ({a!r}, {b!r}) leads into Input node {b!r}; inputs have no predecessors")
            if self.types[a] == "Output":
                raise NetworkError(f"edge ({a!r}, {b!r}) leaves Output node {a!r}; outputs have no successors")
        self.edges = edges
        self.preds = {k: [] for k in nodes}
        self.succs = {k: [] for k in nodes}
        for a, b in edges:
            self.preds[b].append(a)
            self.succs[a].append(b)
        self.first_in = {k: math.inf for k in nodes}
        self.first_out = {k: math.inf for k in nodes}
        for i, (a, b) in enumerate(edges):
            self.first_in[b] = min(self.first_in[b], i)
            self.first_out[a] = min(self.first_out[a], i)
        self._infer_shapes()

    def role(self, name):
        t = self.types[name]
        return "linear" if t == "_pass" else SUPPORTED[t]

    def describe(self, name):
        t = self.types[name]
        return f"{name!r} ({'subgraph boundary' if t == '_pass' else 'nir.' + t})"

    # -- shapes -------------------------------------------------------------------------------------------

    def _own_shapes(self, name):
        node, t = self.nodes[name], self.types[name]
        if t == "Input":
            s = _shape(node.input_type.get("input"))
            return s, s
        if t == "Output":
            s = _shape(node.output_type.get("output"))
            return s, s
        if t in ("Affine", "Linear"):
            w = _arr(node.weight)
            if w.ndim != 2:
                raise NetworkError(f"node {self.describe(name)} has a weight of shape {w.shape}; neurotile maps "
                                   f"2-D weights (out x in) only")
            return (w.shape[1],), (w.shape[0],)
        if t in ("Scale", "Delay"):
            p = _arr(node.scale if t == "Scale" else node.delay)
            return (p.shape, p.shape) if p.ndim else (None, None)
        if t in _NEURON_PARAMS:
            shapes = [_arr(getattr(node, k)).shape for k in _NEURON_PARAMS[t] if getattr(node, k, None) is not None]
            shapes = [s for s in shapes if len(s)]
            if not shapes:
                return None, None
            sizes = {int(np.prod(s)) for s in shapes}
            if len(sizes) > 1:
                raise NetworkError(f"node {self.describe(name)} has parameters of different sizes {sorted(sizes)}; "
                                   f"give each one value or one per neuron")
            s = max(shapes, key=len)
            return s, s
        if t == "Flatten":
            s = node.input_type.get("input") if isinstance(node.input_type, dict) else None
            s = _shape(s)
            return s, (self._transform(name, s) if s is not None else None)
        if t in ("Conv1d", "Conv2d"):
            if node.input_shape is None:
                return None, None
            sp = _shape(node.input_shape)
            c_in = int(_arr(node.weight).shape[1]) * int(node.groups)
            s = (c_in, *sp)
            return s, self._transform(name, s)
        return None, None

    def _transform(self, name, s):
        """Output shape of ``name`` for input shape ``s`` (None when it cannot be derived)."""
        t = self.types[name]
        if t in _ELEMENTWISE:
            return s
        if t == "Flatten":
            node = self.nodes[name]
            start, end = int(node.start_dim), int(node.end_dim)
            nd = len(s)
            start = start + nd if start < 0 else start
            end = end + nd if end < 0 else end
            if 0 <= start <= end < nd:
                return tuple(s[:start]) + (int(np.prod(s[start:end + 1])),) + tuple(s[end + 1:])
            return (int(np.prod(s)),)
        if t in ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d"):
            return self._conv_geometry(name, s)["out"]
        return None

    def _infer_shapes(self):
        ins, outs = {}, {}
        for name in self.nodes:
            ins[name], outs[name] = self._own_shapes(name)
        changed = True
        while changed:
            changed = False
            for name in self.nodes:
                elem = self.types[name] in _ELEMENTWISE
                if outs[name] is None and ins[name] is not None:
                    outs[name] = self._transform(name, ins[name])
                    changed |= outs[name] is not None
                if ins[name] is None and outs[name] is not None and elem:
                    ins[name] = outs[name]
                    changed = True
            for a, b in self.edges:
                if outs[a] is not None and ins[b] is None:
                    ins[b] = outs[a]
                    changed = True
                elif ins[b] is not None and outs[a] is None and self.types[a] in _ELEMENTWISE:
                    outs[a] = ins[b]
                    changed = True
        for name in self.nodes:
            if ins[name] is None or outs[name] is None:
                raise NetworkError(
                    f"cannot infer the shape of node {self.describe(name)}: its parameters do not fix it and no "
                    f"neighbour with a known shape reaches it; give its parameters one value per neuron, set "
                    f"input_shape (Conv), or give the graph an Input node with a shape")
            if self.types[name] in _ELEMENTWISE and np.prod(ins[name]) != np.prod(outs[name]):
                raise NetworkError(f"node {self.describe(name)} takes {int(np.prod(ins[name]))} values but has "
                                   f"{int(np.prod(outs[name]))} outputs")
        for a, b in self.edges:
            na, nb = int(np.prod(outs[a])), int(np.prod(ins[b]))
            if na != nb:
                raise NetworkError(f"shape mismatch on edge ({a!r}, {b!r}): {self.describe(a)} gives {na} values "
                                   f"{outs[a]} but {self.describe(b)} takes {nb} {ins[b]}")
        self.in_shape, self.out_shape = ins, outs

    def size(self, name):
        return int(np.prod(self.out_shape[name]))

    # -- convolutions and pools -----------------------------------------------------------------------------

    def _conv_geometry(self, name, s):
        node, t = self.nodes[name], self.types[name]
        dims = 1 if t == "Conv1d" else 2
        if t in ("SumPool2d", "AvgPool2d"):
            if len(s) != 3:
                raise NetworkError(f"node {self.describe(name)} needs a (channels, height, width) input, not "
                                   f"{s}; pools cannot take flattened inputs")
            k = _pair(node.kernel_size, 2, name, "kernel_size")
            stride = _pair(node.stride if node.stride is not None else node.kernel_size, 2, name, "stride")
            padding = node.padding if node.padding is not None else 0
            c = s[0]
            weight = np.ones((c, 1, *k)) / (float(np.prod(k)) if t == "AvgPool2d" else 1.0)
            groups, dil, c_in, sp = c, (1, 1), c, tuple(s[1:])
        else:
            weight = _arr(node.weight)
            if weight.ndim != dims + 2:
                raise NetworkError(f"node {self.describe(name)} has a weight of shape {weight.shape}; nir.{t} "
                                   f"takes (C_out, C_in / groups, kernel...)")
            groups = int(node.groups)
            c_in = weight.shape[1] * groups
            if weight.shape[0] % groups:
                raise NetworkError(f"node {self.describe(name)}: {weight.shape[0]} output channels do not divide "
                                   f"into groups={groups}")
            stride = _pair(node.stride, dims, name, "stride")
            dil = _pair(node.dilation, dims, name, "dilation")
            padding = node.padding
            if len(s) == dims + 1 and s[0] == c_in:
                sp = tuple(s[1:])
            elif node.input_shape is not None and int(np.prod(s)) == c_in * int(np.prod(_shape(node.input_shape))):
                sp = _shape(node.input_shape)
            else:
                raise NetworkError(f"node {self.describe(name)} gets input of shape {s}, which is not "
                                   f"({c_in} channels, {'length' if dims == 1 else 'height, width'}); set its "
                                   f"input_shape")
            k = weight.shape[2:]
        if isinstance(padding, (str, bytes)):
            padding = padding.decode() if isinstance(padding, bytes) else padding
            if padding == "valid":
                lo = (0,) * dims
                out = tuple((sp[d] - dil[d] * (k[d] - 1) - 1) // stride[d] + 1 for d in range(dims))
            elif padding == "same":
                if any(st != 1 for st in stride):
                    raise NetworkError(f"node {self.describe(name)} has padding='same' with stride {stride}; "
                                       f"'same' is defined for stride 1 only: give the padding as numbers")
                lo = tuple(dil[d] * (k[d] - 1) // 2 for d in range(dims))
                out = tuple(sp)
            else:
                raise NetworkError(f"node {self.describe(name)} has padding {padding!r}; NIR takes 'same', "
                                   f"'valid' or numbers")
        else:
            lo = _pair(padding, dims, name, "padding")
            out = tuple((sp[d] + 2 * lo[d] - dil[d] * (k[d] - 1) - 1) // stride[d] + 1 for d in range(dims))
        if any(o <= 0 for o in out):
            raise NetworkError(f"node {self.describe(name)} gives an empty output {out} for input {s}")
        return {"weight": weight, "c_in": c_in, "sp": sp, "stride": stride, "lo": lo, "dil": dil,
                "groups": groups, "out_sp": out, "out": (weight.shape[0], *out)}

    def _conv_map(self, name):
        g = self._conv_geometry(name, self.in_shape[name])
        w, sp, out_sp = g["weight"], g["sp"], g["out_sp"]
        c_out, cg = w.shape[:2]
        dims = len(sp)
        grids = np.meshgrid(np.arange(c_out), np.arange(cg), *[np.arange(k) for k in w.shape[2:]],
                            *[np.arange(o) for o in out_sp], indexing="ij", sparse=True)
        co, cgi, kk, oo = grids[0], grids[1], grids[2:2 + dims], grids[2 + dims:]
        val = w[(co, cgi, *kk)]
        valid = val != 0
        row = co
        col = (co // (c_out // g["groups"])) * cg + cgi
        for d in range(dims):
            idx = oo[d] * g["stride"][d] - g["lo"][d] + kk[d] * g["dil"][d]
            valid = valid & (idx >= 0) & (idx < sp[d])
            row = row * out_sp[d] + oo[d]
            col = col * sp[d] + idx
        row, col, val, valid = np.broadcast_arrays(row, col, val, valid)
        n_in = g["c_in"] * int(np.prod(sp))
        return _Map(row[valid], col[valid], val[valid], 0, int(np.prod(g["out"])), n_in).merged()

    # -- linear maps ----------------------------------------------------------------------------------------

    def linear_map(self, name):
        """The node's map (from its input to its output) and its bias (or None)."""
        node, t = self.nodes[name], self.types[name]
        n_in, n_out = int(np.prod(self.in_shape[name])), self.size(name)
        if t in ("Affine", "Linear"):
            w = _arr(node.weight)
            if w.shape != (n_out, n_in):
                raise NetworkError(f"node {self.describe(name)} has weight {w.shape} but connects {n_in} inputs "
                                   f"to {n_out} outputs")
            r, c = np.nonzero(w)
            bias = None
            if t == "Affine" and node.bias is not None:
                bias = _expand(node.bias, n_out, name, "bias")
            return _Map(r, c, w[r, c], 0, n_out, n_in), bias
        if t == "Scale":
            return _Map(np.arange(n_out), np.arange(n_out), _expand(node.scale, n_out, name, "scale"), 0,
                        n_out, n_in).merged(), None
        if t == "Delay":
            k = _expand(node.delay, n_out, name, "delay") / self.dt
            steps = np.floor(k + 0.5)
            bad = (np.abs(k - steps) > 1e-6 * np.maximum(1, k)) | (k < 0) | ~np.isfinite(k)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise NetworkError(f"node {self.describe(name)} delays channel {i} by "
                                   f"{float(_expand(node.delay, n_out, name, 'delay')[i])!r} s = {k[i]:g} steps of "
                                   f"dt={self.dt!r}: the chip delays by whole steps; choose a dt that divides every "
                                   f"delay")
            return _Map(np.arange(n_out), np.arange(n_out), np.ones(n_out), steps.astype(np.int64), n_out, n_in), None
        if t in ("Flatten", "Identity", "_pass"):
            return _Map.identity(n_out), None
        if t in ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d"):
            m = self._conv_map(name)
            bias = None
            if t.startswith("Conv") and node.bias is not None and np.any(_arr(node.bias) != 0):
                b = _arr(node.bias).ravel()
                c_out = self.out_shape[name][0]
                if b.size == 1:
                    b = np.full(c_out, float(b[0]))
                if b.size != c_out:
                    raise NetworkError(f"node {self.describe(name)} has {b.size} biases for {c_out} channels")
                bias = np.repeat(b, n_out // c_out)
            return m, bias
        raise AssertionError(t)                                  # pragma: no cover - roles are checked above


def _pair(x, dims, name, what):
    v = np.asarray(x).ravel()
    if v.size == 1:
        v = np.repeat(v, dims)
    if v.size != dims:
        raise NetworkError(f"node {name!r}: {what} must have {dims} values, not {v.tolist()}")
    return tuple(int(a) for a in v)


def _expand(x, n, name, what):
    a = _arr(x).ravel()
    if a.size == 1:
        return np.full(n, float(a[0]))
    if a.size != n:
        raise NetworkError(f"node {name!r}: {what} has {a.size} values for {n} neurons")
    if not np.all(np.isfinite(a)) and what not in ("tau", "tau_syn", "tau_mem", "v_threshold"):
        raise NetworkError(f"node {name!r}: {what} holds NaN or infinity")
    return a


# -- neuron parameters ------------------------------------------------------------------------------------------

def _decay(tau, dt, disc, name, what):
    """``(a, g)`` of ``tau * dx/dt = -x + y`` for one step."""
    if np.any(np.isnan(tau)) or np.any(tau < 0):
        raise NetworkError(f"node {name!r}: {what} must be >= 0 (0: no memory, inf: no decay), not "
                           f"{float(tau[np.isnan(tau) | (tau < 0)][0])!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        if disc == "exp":
            a = np.where(tau == 0, 0.0, np.exp(-dt / np.where(tau == 0, 1.0, tau)))
        else:
            a = np.where(tau == 0, 0.0, 1.0 - dt / np.where(tau == 0, 1.0, tau))
            if np.any(a < 0):
                bad = float(tau[a < 0][0])
                raise NetworkError(f"node {name!r}: {what}={bad!r} is shorter than dt={dt!r}; Euler discretisation "
                                   f"needs dt <= tau (its decay 1 - dt/tau would be negative): use "
                                   f"discretization='exp' or a smaller dt")
    return a, 1.0 - a


def _population(g, name, group, dt, disc, reset):
    """The FloatPopulation of neuron node ``name``."""
    node, t = g.nodes[name], g.types[name]
    n = g.size(name)
    p = {k: _expand(getattr(node, k), n, name, k) for k in _NEURON_PARAMS[t]
         if getattr(node, k, None) is not None}
    zeros, ones = np.zeros(n), np.ones(n)
    a_syn, g_syn, w_in = zeros, ones, ones
    if t in ("CubaLIF", "CubaLI"):
        a_syn, g_syn = _decay(p["tau_syn"], dt, disc, name, "tau_syn")
        w_in = p.get("w_in", ones)
    if t in ("IF", "I"):
        a_mem, g_mem, v_leak = ones, ones, zeros
    else:
        a_mem, g_mem = _decay(p["tau" if "tau" in p else "tau_mem"], dt, disc, name,
                              "tau" if "tau" in p else "tau_mem")
        v_leak = p["v_leak"]
    spiking = t not in READOUTS
    v_th = p["v_threshold"] if spiking else np.full(n, np.inf)
    v_reset = p.get("v_reset", zeros) if spiking else zeros
    if spiking and reset == "subtract" and np.any(v_reset != 0):
        raise NetworkError(f"node {name!r} (nir.{t}) has v_reset={float(v_reset[v_reset != 0][0])!r}, but "
                           f"reset='subtract' subtracts the threshold and ignores v_reset; pass reset='zero' (reset "
                           f"to v_reset) or give the node v_reset = 0")
    if spiking and not np.all(np.isfinite(v_th)):
        raise NetworkError(f"node {name!r} (nir.{t}) has an infinite or NaN v_threshold; use nir.LI / nir.CubaLI "
                           f"for a neuron that never fires")
    return FloatPopulation(group, name, t, n, spiking, a_syn, g_syn, w_in, a_mem, g_mem, p["r"], v_leak, v_th,
                           v_reset, zeros)


# -- the imported network ---------------------------------------------------------------------------------------

class ChipRun:
    """The chip's run of an imported network, aligned to the float model's steps.

    Members
    -------
    steps : int
    spikes : dict of str to bool array [steps, n]
        Every population's spikes, shifted back by its latency.
    v : dict of str to float array [steps, n]
        The probed populations' ``v`` in float units (``v_chip / scale + v_reset``); readouts always.
    result : RunResult
        The emulator's raw result (``steps + max latency`` steps, chip units).
    image : ChipImage
    """

    def __init__(self, steps, spikes, v, result, image):
        self.steps, self.spikes, self.v, self.result, self.image = steps, spikes, v, result, image

    def __repr__(self):
        return f"<ChipRun {self.steps} steps, {sum(int(s.sum()) for s in self.spikes.values())} spikes>"


class NIRNetwork(Network):
    """An :class:`~neurotile.Network` imported from NIR, with what the import made of the float model.

    It is a Network: pass it to :func:`neurotile.compile` (with ``net.arch``, whose ``reset_mode``,
    ``decay_mode`` and ``weight_bits`` the import used).

    Members
    -------
    graph : nir.NIRGraph
        The imported graph.
    float_model : FloatModel
        The float reference with the same discretisation (:mod:`.float_model`).
    quantization : dict of str to PopulationQuant
        Per population its scale, what set it, and every parameter's rounding (:mod:`.quantize`).
    arch : Arch
        The chip the integers were made for.
    options : dict
        ``dt``, ``reset``, ``order``, ``discretization``, ``quantize``, ``percentile``, ``precharge``.
    names : dict of str to str
        NIR node -> group name (inputs and populations).
    latency : dict of str to int
        Steps the chip runs each population behind the float model (``order="sequential"``).
    readouts : dict of str to float
        Non-spiking populations and their scale: float ``v = v_chip / scale``.
    notes : list of str
        Everything the import changed or assumed beyond rounding.
    """

    graph = None

    @property
    def probes(self):
        """The probes that read the readouts: ``["name.v", ...]``."""
        return [f"{name}.v" for name in self.readouts]

    def run_float(self, inputs=None, steps=None):
        """Run the float reference (:meth:`FloatModel.run`)."""
        return self.float_model.run(inputs, steps)

    def compile(self, arch=None, **kwargs):
        """``nt.compile(self, arch or self.arch, **kwargs)``."""
        from .compile import compile as _compile
        return _compile(self, self.arch if arch is None else arch, **kwargs)

    def run_chip(self, inputs=None, steps=None, *, arch=None, mode="functional", probe_all=False):
        """Compile, emulate and align the chip's run with the float model.

        Parameters
        ----------
        inputs : dict of str to bool array [steps, n]
        steps : int, optional
        arch : Arch, optional
            Default :attr:`arch`.
        mode : {"functional", "cycle", "reference"}
        probe_all : bool
            Probe ``v`` of every population, not only of the readouts.

        Returns
        -------
        ChipRun
        """
        from ..emulator.emulator import Emulator
        inputs = {} if inputs is None else {k: np.asarray(v).astype(bool) for k, v in inputs.items()}
        unknown = set(inputs) - {g.name for g in self.inputs}
        if unknown:
            raise NetworkError(f"unknown inputs {sorted(unknown)}; inputs: "
                               f"{', '.join(repr(g.name) for g in self.inputs) or 'none'}")
        if steps is None:
            if not inputs:
                raise NetworkError("run_chip() needs steps=... when no input arrays are given")
            steps = next(iter(inputs.values())).shape[0]
        lag = max(self.latency.values(), default=0)
        padded = {}
        for g in self.inputs:
            arr = np.zeros((steps + lag, g.n), bool)
            if g.name in inputs:
                arr[:steps] = inputs[g.name]
            padded[g.name] = arr
        image = self.compile(arch)
        pops = [p.name for p in self.populations] if probe_all else list(self.readouts)
        res = Emulator(image, mode=mode, progress=False).run(padded, steps + lag, probes=[f"{p}.v" for p in pops])
        spikes = {p.name: res.spikes[p.name][self.latency[p.name]:self.latency[p.name] + steps]
                  for p in self.populations}
        v = {}
        for name in pops:
            q = self.quantization[name]
            fp = self.float_model.populations[name]
            raw = res.probes[f"{name}.v"][self.latency[name]:self.latency[name] + steps]
            v[name] = raw / q.scale + (fp.v_reset if fp.spiking else 0.0)
        return ChipRun(steps, spikes, v, res, image)

    def summary(self):
        """The notes and per-population scales as text."""
        lines = [repr(self)]
        for name, q in self.quantization.items():
            lines.append(f"  {name}: scale {q.scale:.6g} (set by {q.limit}), latency {self.latency[name]}"
                         + (", readout" if name in self.readouts else ""))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


_IDENT = re.compile(r"[^A-Za-z0-9_]")


def _group_name(node, used):
    base = _IDENT.sub("_", node) or "node"
    if not (base[0].isalpha() or base[0] == "_"):
        base = "n_" + base
    name, i = base, 2
    while name in used:
        name, i = f"{base}_{i}", i + 1
    used.add(name)
    return name


def _options(graph, dt, reset, order, discretization, arch, weight_bits):
    meta = graph.metadata.get("neurotile", {}) if isinstance(getattr(graph, "metadata", None), dict) else {}
    meta = meta if isinstance(meta, dict) else {}

    def pick(value, key):
        if value is not None:
            return value
        if key in meta:
            v = meta[key]
            return v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)
        return DEFAULTS[key]

    dt = pick(dt, "dt")
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not (0 < dt < math.inf):
        raise NeurotileValueError(f"dt must be a positive number of seconds, not {dt!r}")
    order = pick(order, "order")
    if order not in ORDERS:
        raise NeurotileValueError(f"order must be one of {', '.join(map(repr, ORDERS))}, not {order!r}")
    discretization = pick(discretization, "discretization")
    if discretization not in DISCRETIZATIONS:
        raise NeurotileValueError(f"discretization must be one of {', '.join(map(repr, DISCRETIZATIONS))}, "
                                  f"not {discretization!r}")
    if reset is not None and reset not in RESETS:
        raise NeurotileValueError(f"reset must be one of {', '.join(map(repr, RESETS))}, not {reset!r}")
    if arch is None:
        mode = meta.get("decay_mode", "loihi")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        arch = Arch(reset_mode=pick(reset, "reset"), decay_mode=mode)
    elif not isinstance(arch, Arch):
        raise NeurotileTypeError(f"arch must be an nt.Arch, not {type(arch).__name__}")
    elif reset is not None and reset != arch.reset_mode:
        raise NeurotileValueError(f"reset={reset!r} but arch.reset_mode={arch.reset_mode!r}: the chip resets every "
                                  f"neuron one way; pass an Arch with reset_mode={reset!r} or leave reset out")
    if weight_bits is not None:
        if isinstance(weight_bits, bool) or not isinstance(weight_bits, numbers.Integral):
            raise NeurotileTypeError(f"weight_bits must be an int, not {weight_bits!r}")
        arch = arch.replace(weight_bits=int(weight_bits))
    return float(dt), arch.reset_mode, order, discretization, arch


def _compose(g):
    """Multiply out the linear nodes: per (source, population) pair one sparse map with delays.

    Returns the input nodes (ordered by their first edge), the neuron nodes, the pair maps, each population's
    constant input and the ``weight_exp`` hints (from :func:`to_nir` metadata) per pair.
    """
    memo, visiting = {}, []

    def out_maps(node):
        role = g.role(node)
        n = g.size(node)
        if role in ("input", "neuron"):
            return {node: _Map.identity(n)}, np.zeros(n), {}
        if node in memo:
            return memo[node]
        if node in visiting:
            loop = visiting[visiting.index(node):] + [node]
            raise NetworkError(f"the graph has a loop through linear nodes only ({' -> '.join(loop)}); with no "
                               f"neuron on it the loop has no state and cannot run in steps")
        visiting.append(node)
        ins, b_in, hints = in_maps(node)
        m, bias = g.linear_map(node)
        res = {src: m.compose(a) for src, a in ins.items()}
        b = m.apply(b_in) + (bias if bias is not None else 0.0)
        e = _meta(g.nodes[node]).get("weight_exp")
        if e is not None:
            hints = {src: hints.get(src, set()) | {int(e)} for src in res}
        visiting.pop()
        memo[node] = (res, b, hints)
        return memo[node]

    def in_maps(node):
        n_in = int(np.prod(g.in_shape[node]))
        acc, b, hints = {}, np.zeros(n_in), {}
        for p in g.preds[node]:
            maps, bp, hp = out_maps(p)
            for src, m in maps.items():
                acc.setdefault(src, []).append(m)
            b = b + bp
            for src, h in hp.items():
                hints[src] = hints.get(src, set()) | h
        return {src: _Map.add(ms) for src, ms in acc.items()}, b, hints

    neurons = [k for k in g.nodes if g.role(k) == "neuron"]
    if not neurons:
        raise NetworkError(f"the graph has no neuron node, so nothing to put on the chip; neuron types: "
                           f"{', '.join(sorted(_NEURON_PARAMS))}")
    inputs = sorted((k for k in g.nodes if g.role(k) == "input"), key=lambda k: (g.first_out[k], k))
    pair_maps, biases, pair_hints = {}, {}, {}
    for nrn in neurons:
        ins, b, hints = in_maps(nrn)
        biases[nrn] = b
        for src, m in ins.items():
            if m.rows.size:
                pair_maps[(src, nrn)] = m
                if hints.get(src):
                    pair_hints[(src, nrn)] = hints[src]
    return inputs, neurons, pair_maps, biases, pair_hints


def _outputs(g):
    """The neuron nodes feeding Output nodes (through Flatten or pass-through nodes)."""
    outputs = []
    for o in (k for k in g.nodes if g.role(k) == "output"):
        for p in g.preds[o]:
            q = p
            while g.types[q] in ("Flatten", "Identity", "_pass") and len(g.preds[q]) == 1:
                q = g.preds[q][0]
            if g.role(q) != "neuron":
                raise NetworkError(f"Output {o!r} is fed by {g.describe(q)}; the chip reads out the spikes of "
                                   f"neuron populations (or the v of a non-spiking readout): end the graph with a "
                                   f"neuron node, e.g. nir.LI as a readout")
            if q not in outputs:
                outputs.append(q)
    return outputs


def _timing(g, inputs, neurons, pair_maps, order):
    """Population order, back edges, each pair's own step (0 or 1) and each population's latency.

    The populations are ordered by a depth-first search from the inputs (in the order of their first edge;
    successors in the order of their first incoming edge); an edge to a population on the search stack closes a
    loop (a back edge). The latencies are the smallest ``lat >= 0`` with
    ``lat[post] >= lat[pre] + 1 - base - delay`` for every pair (longest paths, Bellman-Ford); a loop that keeps
    raising them needs more steps on the chip than in the float model and is refused.
    """
    succ = {k: [] for k in inputs + neurons}
    for (src, tgt) in pair_maps:
        succ[src].append(tgt)
    for k in succ:
        succ[k].sort(key=lambda t: (g.first_in[t], t))
    order_list, back, state = [], set(), {}

    def dfs(root):
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        if root in neurons:
            order_list.append(root)
        while stack:
            node, it = stack[-1]
            for t in it:
                if state.get(t) == 1:
                    back.add((node, t))
                elif t not in state:
                    state[t] = 1
                    order_list.append(t)
                    stack.append((t, iter(succ[t])))
                    break
            else:
                state[node] = 2
                stack.pop()

    for root in inputs:
        dfs(root)
    for root in sorted(neurons, key=lambda k: (g.first_in[k], k)):
        if root not in state:
            dfs(root)

    base = {pair: (1 if order == "delayed" or pair in back else 0) for pair in pair_maps}
    kmin = {pair: int(m.dly.min()) for pair, m in pair_maps.items()}
    lat = {k: 0 for k in inputs + neurons}
    if order == "delayed":
        return order_list, back, base, lat
    pred_of = {}
    for _ in range(len(neurons) + 1):
        changed = []
        for (s, t) in pair_maps:
            need = lat[s] + 1 - base[(s, t)] - kmin[(s, t)]
            if need > lat[t]:
                lat[t] = need
                pred_of[t] = s
                changed.append(t)
        if not changed:
            return order_list, back, base, lat
    t = changed[0]
    for _ in range(len(neurons)):
        t = pred_of[t]                                          # now on the loop that keeps raising latencies
    loop, x = [t], pred_of[t]
    while x != t:
        loop.append(x)
        x = pred_of[x]
    loop = loop[::-1]
    loop.append(loop[0])
    steps = sum(base[(a, b)] + kmin[(a, b)] for a, b in zip(loop, loop[1:]))
    raise NetworkError(
        f"order='sequential' cannot keep the timing of the loop {' -> '.join(loop)}: its {len(loop) - 1} "
        f"edges take {steps} step(s) in the float model (only the loop-closing edge reads the previous "
        f"step), but on the chip every edge takes at least one step; pass order='delayed' (every edge "
        f"takes one step, as on the chip) or add nir.Delay nodes worth {len(loop) - 1 - steps} more step(s) "
        f"to the loop")


def from_nir(graph, dt=None, *, reset=None, order=None, discretization=None, weight_bits=None, arch=None,
             quantize=True, percentile=100.0, scales=None, name=None, precharge=True):
    """Import a NIR graph as a chip network.

    Parameters
    ----------
    graph : nir.NIRGraph or path
        A graph, or the path of one saved with ``nir.write``.
    dt : float, optional
        Seconds per chip step. Default 1e-3 (or the ``dt`` recorded by :func:`to_nir`).
    reset : {"zero", "subtract"}, optional
        After a spike ``v <- v_reset`` or ``v <- v - v_threshold``. Default ``arch.reset_mode`` if ``arch`` is
        given, else "zero" (or the recorded one).
    order : {"sequential", "delayed"}, optional
        Timing of edges (module docstring). Default "sequential" (or the recorded one).
    discretization : {"exp", "euler"}, optional
        Decay per step ``exp(-dt/tau)`` or ``1 - dt/tau``. Default "exp" (or the recorded one).
    weight_bits : int, optional
        Weight width to quantize to (2..8); replaces ``arch.weight_bits``.
    arch : Arch, optional
        The chip (``decay_mode``, ``reset_mode``, ``weight_bits``, ``max_delay``). Default
        ``nt.Arch(reset_mode=reset)``.
    quantize : bool
        True: choose scales and round (:mod:`.quantize`). False: the graph holds chip values already (as
        :func:`to_nir` writes them) and is taken exactly; a value that is not an exact chip integer raises.
    percentile : float
        Percentile (0 < p <= 100) of each population's effective weights that maps to the full weight range;
        below 100 the largest weights clip (reported) for finer resolution of the rest.
    scales : dict, optional
        Scale ``s`` per population (group or NIR node name), overriding the quantizer's choice.
    name : str, optional
        Network name (default: the file's stem, or "nir").
    precharge : bool
        True (default): every population starts from the initial chip state (``LIF.u0``, ``LIF.v0``) that, after
        the ``latency`` steps the chip runs it behind the float model, equals the float model's initial state with
        the bias current's ``tau_syn`` transient included (:func:`~.quantize.precharge`; docs/nir.md section 4).
        False: the chip starts from ``u = v = 0``; the bias then acts ``latency`` steps early and a CubaLIF's
        bias reaches ``v`` at its steady state at once (both noted). With ``quantize=False`` an initial state
        recorded by :func:`to_nir` is taken as it is, whatever this says.

    Returns
    -------
    NIRNetwork
        A :class:`~neurotile.Network` (pass it to ``nt.compile(net, net.arch)``) that also carries the float
        model, the quantization, the latencies, the readouts and notes on what changed.

    Raises
    ------
    NeurotileTypeError
        ``graph`` is neither a NIRGraph nor a path; a wrong kind of option.
    NeurotileValueError
        A bad option, or ``reset`` disagreeing with ``arch.reset_mode``.
    NetworkError
        An unsupported node (named, with its type and the supported types), a shape that cannot be inferred or
        does not match, an ambiguous graph (a delay that is not a whole number of steps at ``dt``, a loop whose
        timing ``order="sequential"`` cannot keep, ``v_reset`` with ``reset="subtract"``, an Output not fed by a
        neuron), or with ``quantize=False`` a value that is not an exact chip integer.
    MappingError
        A synapse needs a delay beyond ``arch.max_delay``.
    """
    nir = _nir()
    if isinstance(graph, (str, os.PathLike)):
        if name is None:
            name = _IDENT.sub("_", os.path.splitext(os.path.basename(os.fspath(graph)))[0]) or "nir"
        graph = nir.read(graph, type_check=False)
    if not isinstance(graph, nir.NIRGraph):
        raise NeurotileTypeError(f"from_nir needs a nir.NIRGraph or the path of a NIR file, not "
                                 f"{type(graph).__name__}")
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real) or not 0 < percentile <= 100:
        raise NeurotileValueError(f"percentile must be a number in (0, 100], not {percentile!r}")
    if quantize not in (True, False):
        raise NeurotileTypeError(f"quantize must be True or False, not {quantize!r}")
    if precharge not in (True, False):
        raise NeurotileTypeError(f"precharge must be True or False, not {precharge!r}")
    dt, reset, order, disc, arch = _options(graph, dt, reset, order, discretization, arch, weight_bits)
    g = _Graph(nir, graph, dt)
    notes = [f"discretisation: dt={dt:g} s per step, {disc} decays, order={order!r}, reset={reset!r}, "
             f"decay_mode={arch.decay_mode!r}"]

    inputs, neurons, pair_maps, biases, pair_hints = _compose(g)
    outputs = _outputs(g)
    order_list, back, base, lat = _timing(g, inputs, neurons, pair_maps, order)

    # -- names, float model --------------------------------------------------------------------------------
    used = set()
    names = {k: _group_name(k, used) for k in inputs + order_list}
    pops = {}
    for nrn in order_list:
        fp = _population(g, nrn, names[nrn], dt, disc, reset)
        fp.bias = biases[nrn].astype(np.float64)
        pops[nrn] = fp
    fprojs = []
    for (src, tgt), m in sorted(pair_maps.items(), key=lambda kv: (order_list.index(kv[0][1]),
                                                                   (inputs + order_list).index(kv[0][0]))):
        off = m.dly + base[(src, tgt)]
        fprojs.append(FloatProjection(names[src], names[tgt], m.cols, m.rows, m.vals, m.dly, off,
                                      (src, tgt) in back and order == "sequential"))
    opts = {"dt": dt, "reset": reset, "order": order, "discretization": disc, "quantize": quantize,
            "percentile": float(percentile), "precharge": precharge}
    fm = FloatModel({names[k]: g.size(k) for k in inputs}, [pops[k] for k in order_list], fprojs, reset, opts)

    # -- quantize and build --------------------------------------------------------------------------------
    scales = dict(scales or {})
    for key in list(scales):
        if key in names and names[key] != key:
            scales[names[key]] = scales.pop(key)
    unknown = set(scales) - {p.name for p in pops.values()}
    if unknown:
        raise NeurotileValueError(f"scales names unknown populations {sorted(unknown)}; populations: "
                                  f"{', '.join(p.name for p in pops.values())}")
    net = NIRNetwork(name or "nir")
    net.graph = graph
    net.float_model = fm
    net.arch = arch
    net.options = opts
    net.names = dict(names)
    net.latency = {}
    net.readouts = {}
    net.quantization = {}
    net.notes = notes
    for k in inputs:
        net.input(g.size(k), name=names[k])
    by_post = {}
    for fp in fprojs:
        by_post.setdefault(fp.post, []).append(fp)
    hints = {f"{names[s]}->{names[t]}": min(h) for (s, t), h in pair_hints.items()}
    fallbacks = {"u_range": [], "v_range": [], "spike": []}
    recorded, applied = [], {}                  # applied: per population "precharge", "recorded" or "none"
    for nrn in order_list:
        fp = pops[nrn]
        q = quantize_population(fp, by_post.get(fp.name, []), arch, percentile=percentile,
                                scale=scales.get(fp.name), exact=not quantize, hints=hints,
                                bias_exp=_meta(g.nodes[nrn]).get("bias_exp"))
        net.quantization[fp.name] = q
        state = _recorded_state(g, nrn, fp.n) if not quantize else None
        if state is not None:
            (u0, v0), applied[fp.name] = state, "recorded"
        elif precharge:
            u0, v0, fb = _precharge(q.params, lat[nrn], q.bias_u, arch)
            applied[fp.name] = "precharge"
            for k, mask in fb.items():
                if mask.any():
                    fallbacks[k].append(f"{fp.name} ({int(mask.sum())} of {fp.n})")
            if fb["u_range"].any():
                applied[fp.name] = "precharge, u partly dropped"
        else:
            u0 = v0 = np.zeros(fp.n, np.int64)
            applied[fp.name] = "none"
        if quantize and any(k in _meta(g.nodes[nrn]) for k in ("u0", "v0")):
            recorded.append(fp.name)
        params = {k: (int(v[0]) if v.size and np.all(v == v[0]) else v)
                  for k, v in dict(q.params, u0=u0, v0=v0).items()}
        net.population(fp.n, LIF(**params), name=fp.name)
        net.latency[fp.name] = int(lat[nrn])
        if not fp.spiking:
            net.readouts[fp.name] = q.scale
    zeroed = 0
    for proj in fprojs:
        w, wexp = net.quantization[proj.post].weights[proj.name]
        src_node = next(k for k, v in names.items() if v == proj.pre)
        tgt_node = next(k for k, v in names.items() if v == proj.post)
        delay = proj.offset + lat[tgt_node] - lat[src_node]
        keep = w != 0
        zeroed += int(np.count_nonzero(~keep))
        if delay.size and delay.min() < 1:                     # pragma: no cover - the latencies guarantee it
            raise AssertionError(f"{proj.name}: delay {delay.min()}")
        if delay[keep].size and delay[keep].max() > arch.max_delay:
            raise MappingError(
                f"projection {proj.name!r} (NIR {src_node!r} -> {tgt_node!r}) needs a delay of "
                f"{int(delay[keep].max())} steps (NIR delay {int(proj.delay.max())} step(s) plus timing "
                f"alignment), beyond arch.max_delay={arch.max_delay} (exceeded by "
                f"{int(delay[keep].max()) - arch.max_delay}): use a larger dt, order='delayed' or an Arch with a "
                f"larger max_delay")
        net.connect(proj.pre, proj.post, (proj.pre_idx[keep], proj.post_idx[keep], w[keep]),
                    delay=delay[keep], weight_exp=wexp, name=proj.name)
    for nrn in outputs:
        if pops[nrn].spiking:
            net.output(names[nrn])

    # -- notes: what changed ---------------------------------------------------------------------------------
    pre_u = [names[k] for k in order_list if applied[names[k]].startswith("precharge")
             and np.any(net.groups[names[k]].params["u0"] != 0)]
    pre_v = [names[k] for k in order_list if applied[names[k]].startswith("precharge")
             and np.any(net.groups[names[k]].params["v0"] != 0)]
    if pre_u or pre_v:
        notes.append(f"pre-charged initial state (precharge=True): v0 in {pre_v or 'none'} makes up for the steps "
                     f"the chip integrates the bias before the float model (latency), u0 in {pre_u or 'none'} "
                     f"for the bias current's rise through tau_syn; after its latency each population is in the "
                     f"float model's initial state, up to rounding")
    if fallbacks["u_range"]:
        notes.append(f"pre-charge of u does not fit 24 bits in {fallbacks['u_range']} (a small a_syn over a long "
                     f"latency): there u0 = 0 and the bias reaches v at its steady state at once (tau_syn "
                     f"transient dropped)")
    if fallbacks["v_range"]:
        notes.append(f"pre-charge of v does not fit 24 bits in {fallbacks['v_range']}: there v0 = 0 (as without "
                     f"pre-charge: the bias acts for the latency before the float model's step 0)")
    if fallbacks["spike"]:
        notes.append(f"pre-charge of v would fire the neuron before the float model's step 0 in "
                     f"{fallbacks['spike']} (a bias that moves v by more than the threshold over the latency): "
                     f"there v0 is the largest that does not fire, and v starts below the float model's")
    if recorded:
        notes.append(f"the initial state (u0, v0) recorded in the metadata of {recorded} is in chip units of the "
                     f"exported network and was not used (quantize=True); import with quantize=False to keep it")
    for nrn in order_list:
        fp = pops[nrn]
        if not fp.spiking:
            notes.append(f"{nrn!r} (nir.{fp.kind}) is a non-spiking readout: population {fp.name!r} with threshold "
                         f"vth = 2**17 - 1, never reached; read it with probes=['{fp.name}.v'] (float v = chip v / "
                         f"{net.quantization[fp.name].scale:.6g})")
            if np.any(fp.a_mem >= 1):
                notes.append(f"readout {fp.name!r} integrates without leak; its v saturates at +-(2**23 - 1) and "
                             f"could then cross the threshold if driven long enough")
        if np.any((fp.bias != 0) & (fp.a_syn > 0)) and applied[fp.name] != "precharge":
            notes.append(f"population {fp.name!r} (nir.{fp.kind}): its constant input b enters v at its steady "
                         f"state G*b/(1 - a_syn) per step, not through the synaptic current (tau_syn transient "
                         f"dropped; {'precharge=False' if applied[fp.name] == 'none' else 'where u0 does not fit'})")
    if order == "sequential" and any(lat.values()):
        shown = {names[k]: int(v) for k, v in lat.items() if k in names and v}
        notes.append(f"order='sequential': the chip runs these populations behind the float model by their depth "
                     f"(steps): {shown}; run_chip() aligns them")
        with_bias = [names[k] for k in neurons if lat[k] and np.any(_bias_v(pops[k]) != 0)
                     and applied[names[k]] == "none"]
        if with_bias:
            notes.append(f"populations {with_bias} leak or have a bias and a latency > 0: on the chip they start "
                         f"integrating it that many steps before their float counterparts")
    if any(np.any(b != 0) for b in biases.values()) and any(m.dly.max() > 0 for m in pair_maps.values()):
        notes.append("biases are carried through nir.Delay nodes without delay (they are constant after the first "
                     "steps)")
    if zeroed:
        notes.append(f"{zeroed} synapse(s) rounded to weight 0 and were left out")
    if arch.decay_mode == "shift":
        notes.append("decay_mode='shift': decays are 1 - 2**-k; no decay (IF, I) becomes k = 23")
    return net


def _meta(node):
    """The ``metadata["neurotile"]`` dict of a node ({} if absent)."""
    meta = getattr(node, "metadata", None)
    meta = meta.get("neurotile") if isinstance(meta, dict) else None
    return meta if isinstance(meta, dict) else {}


def _precharge(params, latency, bias_u, arch):
    from .quantize import precharge
    return precharge(params, latency, bias_u, arch)


def _recorded_state(g, nrn, n):
    """``(u0, v0)`` recorded by :func:`to_nir` in the node's ``metadata["neurotile"]``, or None."""
    meta = _meta(g.nodes[nrn])
    if "u0" not in meta and "v0" not in meta:
        return None
    out = []
    for k in ("u0", "v0"):
        x = np.asarray(meta.get(k, 0), np.float64).ravel()
        if x.size not in (1, n) or not np.all(x == np.round(x)):
            raise NetworkError(f"node {nrn!r}: metadata['neurotile'][{k!r}] must be one integer or {n}, not "
                               f"{x.tolist()[:4]}")
        out.append(np.broadcast_to(x, (n,)).astype(np.int64))
    return tuple(out)


def _bias_v(fp):
    return fp.g_mem * fp.v_leak - (1 - fp.a_mem) * fp.v_reset + fp.bias


# -- export -------------------------------------------------------------------------------------------------------

def _tau(a, dt, disc):
    with np.errstate(divide="ignore"):
        if disc == "exp":
            return np.where(a <= 0, 0.0, np.where(a >= 1, np.inf, -dt / np.log(np.clip(a, 1e-300, 1))))
        return np.where(a >= 1, np.inf, dt / np.maximum(1 - a, 1e-300))


def to_nir(network, dt=None, *, reset=None, discretization=None, arch=None):
    """Write an integer network as a NIR graph, in chip units.

    Parameters
    ----------
    network : Network
        Any network (an imported :class:`NIRNetwork` keeps its readouts as ``LI``/``CubaLI``/``I`` nodes).
    dt : float, optional
        Seconds per step the time constants are written for. Default: the import's, else 1e-3.
    reset : {"zero", "subtract"}, optional
        Recorded in the graph's metadata (the chip's ``Arch.reset_mode``). Default: the import's, else "zero".
    discretization : {"exp", "euler"}, optional
        How ``tau`` is computed from the chip's decay factor ``a``: ``-dt / ln(a)`` or ``dt / (1 - a)``.
    arch : Arch, optional
        Supplies ``decay_mode`` (default: the import's, else ``loihi``).

    Returns
    -------
    nir.NIRGraph
        Populations as ``LIF``, ``IF`` or ``CubaLIF`` (module docstring; a non-zero ``bias_exp``, ``u0`` or ``v0``
        in their ``metadata["neurotile"]``, chip units), projections as ``Linear`` nodes (one per distinct delay,
        ``weight_exp`` in their metadata) followed by ``Delay`` nodes, outputs as ``Output`` nodes named
        ``<population>_out``. Synapses between the same neurons with the same delay are summed (NIR weights are
        dense matrices). The initial state is metadata only: the float graph starts from ``v = v_reset``.

    Raises
    ------
    NeurotileTypeError
        ``network`` is not a Network.
    NetworkError
        A population NIR cannot express: a synaptic current (du < 4095) without leak (dv = 0); a mix of leaky
        and non-leaky neurons; a bias on a non-leaky population with no projection into it.
    """
    nir = _nir()
    if not isinstance(network, Network):
        raise NeurotileTypeError(f"to_nir needs an nt.Network, not {type(network).__name__}")
    opts = getattr(network, "options", None) or {}
    dt = float(dt if dt is not None else opts.get("dt", DEFAULTS["dt"]))
    reset = reset or opts.get("reset", DEFAULTS["reset"])
    disc = discretization or opts.get("discretization", DEFAULTS["discretization"])
    if reset not in RESETS:
        raise NeurotileValueError(f"reset must be one of {', '.join(map(repr, RESETS))}, not {reset!r}")
    if disc not in DISCRETIZATIONS:
        raise NeurotileValueError(f"discretization must be one of {', '.join(map(repr, DISCRETIZATIONS))}, "
                                  f"not {disc!r}")
    if arch is None:
        arch = getattr(network, "arch", None) or Arch()
    mode = arch.decay_mode
    readouts = getattr(network, "readouts", {}) or {}
    nodes, edges, used = {}, [], set()

    def fresh(base):
        base = _IDENT.sub("_", base.replace("->", "_to_"))
        name, i = base, 2
        while name in used or name in network.groups:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        return name

    for g in network.inputs:
        nodes[g.name] = nir.Input(np.array([g.n]))
        used.add(g.name)
    pending_bias = {}
    for p in network.populations:
        used.add(p.name)
        prm = p.params
        du, dv = prm["du"].astype(np.float64), prm["dv"].astype(np.float64)
        if mode == "loihi":
            a_s, a_m = (4095 - du) / 4096, (4096 - dv) / 4096
        else:
            a_s = np.where(du == 0, 0.0, 1 - np.exp2(-du))
            a_m = np.where(dv == 0, 0.0, 1 - np.exp2(-dv))
        g_s, g_m = 1 - a_s, 1 - a_m
        bias = prm["bias_mant"] * np.exp2(prm["bias_exp"]).astype(np.float64)
        th = prm["vth"] * 64.0
        readout = p.name in readouts
        no_leak = a_m >= 1
        what = f"population {p.name!r}"
        if np.any(no_leak) and not np.all(no_leak):
            raise NetworkError(f"{what} mixes neurons with dv=0 (no leak) and with a leak; NIR has no node for "
                               f"both: split it into two populations")
        if np.all(a_s == 0) and np.all(no_leak):
            if np.any(bias != 0):
                pending_bias[p.name] = bias
            nodes[p.name] = nir.I(r=np.ones(p.n)) if readout else \
                nir.IF(r=np.ones(p.n), v_threshold=th, v_reset=np.zeros(p.n))
        elif np.any(no_leak):
            raise NetworkError(f"{what} has a synaptic current (du < 4095) but no leak (dv = 0); NIR's CubaLIF cannot "
                               f"express it (its input gain vanishes as tau_mem -> inf): give it dv > 0")
        else:
            tau_m = _tau(a_m, dt, disc)
            r = 1 / g_m
            v_leak = bias / g_m
            if np.all(a_s == 0):
                nodes[p.name] = nir.LI(tau=tau_m, r=r, v_leak=v_leak) if readout else \
                    nir.LIF(tau=tau_m, r=r, v_leak=v_leak, v_threshold=th, v_reset=np.zeros(p.n))
            else:
                tau_s, w_in = _tau(a_s, dt, disc), 1 / g_s
                nodes[p.name] = nir.CubaLI(tau_syn=tau_s, tau_mem=tau_m, r=r, v_leak=v_leak, w_in=w_in) \
                    if readout else nir.CubaLIF(tau_syn=tau_s, tau_mem=tau_m, r=r, v_leak=v_leak, v_threshold=th,
                                                v_reset=np.zeros(p.n), w_in=w_in)
    for p in network.populations:
        meta = {}
        for k in ("bias_exp", "u0", "v0"):
            x = p.params[k]
            if np.any(x != 0):
                meta[k] = int(x[0]) if np.all(x == x[0]) else x.copy()
        if meta:
            nodes[p.name].metadata = {"neurotile": meta}
    for proj in network.projections:
        pre, post = proj.pre, proj.post
        base = fresh(proj.name)
        delays = np.unique(proj.delay)
        for d in delays:
            sel = proj.delay == d
            w = np.zeros((post.n, pre.n))
            np.add.at(w, (proj.post_idx[sel], proj.pre_idx[sel]), proj.weight[sel] * 2.0 ** (6 + proj.weight_exp))
            lin = base if len(delays) == 1 else fresh(f"{base}_d{int(d)}")
            meta = {"neurotile": {"weight_exp": int(proj.weight_exp)}}
            if post.name in pending_bias:
                nodes[lin] = nir.Affine(weight=w, bias=pending_bias.pop(post.name), metadata=meta)
            else:
                nodes[lin] = nir.Linear(weight=w, metadata=meta)
            edges.append((pre.name, lin))
            if d > 1:
                dl = fresh(f"{lin}_delay")
                nodes[dl] = nir.Delay(delay=np.full(post.n, (int(d) - 1) * dt))
                edges += [(lin, dl), (dl, post.name)]
            else:
                edges.append((lin, post.name))
    if pending_bias:
        name = next(iter(pending_bias))
        raise NetworkError(f"population {name!r} has a bias but no leak and no projection into it; NIR's IF has no "
                           f"v_leak and an Affine bias needs an Affine node: give it a leak or an input")
    for p in list(network.outputs) + [network.groups[r] for r in readouts if r in network.groups]:
        out = fresh(f"{p.name}_out")
        nodes[out] = nir.Output(np.array([p.n]))
        edges.append((p.name, out))
    meta = {"neurotile": {"dt": dt, "reset": reset, "order": "delayed", "discretization": disc,
                          "decay_mode": mode, "units": "chip"}}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
