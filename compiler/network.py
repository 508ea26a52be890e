"""The network model: what the user asks the chip to run, in the chip's integer parameters.

Float models arrive through NIR (:mod:`neurotile.compiler.nir_io`); here every parameter is
already a hardware integer, validated where the object is built.
"""

import dataclasses
import numbers
import re

import numpy as np

from .errors import NetworkError, NeurotileTypeError

__all__ = ["LIF", "Network", "Input", "Population", "Projection"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: LIF parameter ranges (inclusive), the widths of :class:`~neurotile.compiler.arch.Arch`.
LIF_RANGES = {
    "du": (0, 4095), "dv": (0, 4095), "vth": (0, (1 << 17) - 1),
    "bias_mant": (-(1 << 12), (1 << 12) - 1), "bias_exp": (0, 7),
}

#: Initial-state ranges (inclusive): ``u0`` is any signed 24-bit value (u wraps like a 24-bit register),
#: ``v0`` is within v's saturation limits ``+-(2^23 - 1)`` (docs/architecture.md section 4).
STATE_RANGES = {"u0": (-(1 << 23), (1 << 23) - 1), "v0": (-((1 << 23) - 1), (1 << 23) - 1)}


def _as_int_array(value, what):
    """An int64 array from integer-valued input; refuses floats with fractions, NaN, bools."""
    if isinstance(value, (bool, np.bool_)):
        raise NeurotileTypeError(f"{what} must be an integer, not {value!r}")
    arr = np.asarray(value)
    if arr.dtype == bool:
        raise NeurotileTypeError(f"{what} must hold integers, not booleans")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise NetworkError(f"{what} must be finite integers, but holds NaN or infinity")
        if not np.all(arr == np.round(arr)):
            bad = arr[arr != np.round(arr)].flat[0].item()
            raise NetworkError(f"{what} must be integers, not {bad!r}: quantize float models "
                               f"first (nt.from_nir does)")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise NeurotileTypeError(f"{what} must be integers, not an array of {arr.dtype}")
    return arr.astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class LIF:
    """Current-based leaky integrate-and-fire neuron with Loihi's integer parameters.

    Each parameter is a scalar or one value per neuron (length checked when the population is
    made). With ``decay_mode="loihi"`` the update of one step is::

        u <- wrap24(sign(u) * ((|u| * (4095 - du)) >> 12) + (input << 6))
        v <- sat24(sign(v) * ((|v| * (4096 - dv)) >> 12) + u + (bias_mant << bias_exp))
        spike = v > (vth << 6);  on a spike v <- 0 (reset "zero") or v - (vth << 6) ("subtract")

    and with ``decay_mode="shift"``, ``du``/``dv`` are shift amounts k (0..23) and the decays are
    ``x - (x >> k)``. docs/architecture.md states every rounding and width.

    Parameters
    ----------
    du, dv : int or array of int
        Current and voltage decay (0..4095; 0..23 in shift mode).
    vth : int or array of int
        Threshold mantissa, unsigned 17 bits; the comparison is against ``vth << 6``.
    bias_mant : int or array of int
        Signed 13-bit bias mantissa.
    bias_exp : int or array of int
        Bias exponent 0..7.
    u0, v0 : int or array of int
        Initial state: the ``u`` and ``v`` the chip image's ``neuron_state`` memory holds before step 0 (and
        ``Emulator.reset()`` restores). Default 0. ``u0`` is signed 24 bits (``-2^23 .. 2^23 - 1``), ``v0``
        within v's saturation limits ``-(2^23 - 1) .. 2^23 - 1``. ``nt.from_nir`` sets them to pre-charge
        populations (docs/nir.md section 4).
    """

    du: object = 0
    dv: object = 0
    vth: object = 100
    bias_mant: object = 0
    bias_exp: object = 0
    u0: object = 0
    v0: object = 0

    def __post_init__(self):
        for name, (lo, hi) in {**LIF_RANGES, **STATE_RANGES}.items():
            arr = _as_int_array(getattr(self, name), f"LIF.{name}")
            if arr.ndim > 1:
                raise NetworkError(f"LIF.{name} must be a scalar or 1-D, not of shape {arr.shape}")
            if arr.size and (arr.min() < lo or arr.max() > hi):
                bad = arr[(arr < lo) | (arr > hi)].flat[0]
                raise NetworkError(f"LIF.{name} must be between {lo} and {hi}, not {int(bad)}")
            object.__setattr__(self, name, arr)

    def params(self, n):
        """Per-neuron parameter arrays (int64, length ``n``): the profile fields and ``u0``, ``v0``."""
        out = {}
        for name in (*LIF_RANGES, *STATE_RANGES):
            arr = getattr(self, name)
            if arr.ndim == 0:
                arr = np.full(n, int(arr), np.int64)
            elif arr.shape != (n,):
                raise NetworkError(f"LIF.{name} has {arr.shape[0]} values but the population has "
                                   f"{n} neurons; give one value or one per neuron")
            out[name] = arr
        return out


class _Group:
    kind = "group"

    def __init__(self, network, name, n):
        self.network = network
        self.name = name
        self.n = n

    def __len__(self):
        return self.n

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} n={self.n}>"


class Input(_Group):
    """Spike sources driven by the host, one per input channel."""
    kind = "input"


class Population(_Group):
    """Neurons of one model with (possibly per-neuron) parameters."""
    kind = "population"

    def __init__(self, network, name, n, neuron):
        super().__init__(network, name, n)
        self.neuron = neuron
        self.params = neuron.params(n)


@dataclasses.dataclass(eq=False)
class Projection:
    """Synapses from one group to a population.

    Members
    -------
    pre, post : Input or Population
    pre_idx, post_idx, weight, delay : int64 arrays, one entry per synapse
    weight_exp : int
        Every synapse adds ``weight << weight_exp`` to its target's dendritic accumulator.
    name : str
    """

    pre: _Group
    post: Population
    pre_idx: np.ndarray
    post_idx: np.ndarray
    weight: np.ndarray
    delay: np.ndarray
    weight_exp: int
    name: str

    @property
    def n_synapses(self):
        return int(self.pre_idx.size)


class Network:
    """A spiking network in hardware integers.

    Examples
    --------
    >>> import numpy as np, neurotile as nt
    >>> net = nt.Network()
    >>> x = net.input(2, name="x")
    >>> h = net.population(3, nt.LIF(du=4095, dv=0, vth=10), name="h")
    >>> p = net.connect(x, h, weights=np.array([[1, 0, 2], [0, 3, 0]]))
    >>> p.n_synapses
    3
    >>> net.output(h)
    """

    def __init__(self, name="network"):
        if not isinstance(name, str):
            raise NeurotileTypeError(f"Network name must be a str, not {name!r}")
        self.name = name
        self.groups = {}
        self.projections = []
        self.outputs = []

    # -- building --------------------------------------------------------------------------------

    def _new_name(self, name, prefix):
        if name is None:
            name = f"{prefix}{len(self.groups)}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise NetworkError(f"group name must be an identifier (letters, digits, _), "
                               f"not {name!r}")
        if name in self.groups:
            raise NetworkError(f"a group named {name!r} already exists; names must be unique")
        return name

    @staticmethod
    def _size(n, what):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
            raise NeurotileTypeError(f"{what} size must be an int, not {n!r}")
        if n <= 0:
            raise NetworkError(f"{what} size must be at least 1, not {n}")
        return int(n)

    def input(self, n, name=None):
        """Add ``n`` host-driven spike sources."""
        n = self._size(n, "input")
        group = Input(self, self._new_name(name, "in"), n)
        self.groups[group.name] = group
        return group

    def population(self, n, neuron, name=None):
        """Add ``n`` neurons of model ``neuron`` (an :class:`LIF`)."""
        n = self._size(n, "population")
        if not isinstance(neuron, LIF):
            raise NeurotileTypeError(f"neuron must be an nt.LIF, not {type(neuron).__name__}")
        group = Population(self, self._new_name(name, "pop"), n, neuron)
        self.groups[group.name] = group
        return group

    def _group(self, g, role):
        if isinstance(g, str):
            if g not in self.groups:
                raise NetworkError(f"unknown group {g!r} as {role}; groups: "
                                   f"{', '.join(self.groups) or 'none'}")
            g = self.groups[g]
        if not isinstance(g, _Group):
            raise NeurotileTypeError(f"{role} must be a group of this network or its name, "
                                     f"not {type(g).__name__}")
        if self.groups.get(g.name) is not g:
            raise NetworkError(f"{role} {g.name!r} belongs to another network")
        return g

    def connect(self, pre, post, weights, delay=1, weight_exp=0, name=None):
        """Connect ``pre`` to ``post``.

        Parameters
        ----------
        pre : Input or Population (or its name)
        post : Population (or its name)
        weights : 2-D array of int, or tuple (pre_idx, post_idx, weight)
            Dense ``[pre.n, post.n]`` matrix, whose non-zero entries become synapses; or the
            sparse form, whose every entry is a synapse (zeros and repeats included).
        delay : int or array of int
            Steps from a spike to its integration (>= 1): a scalar, a matrix like ``weights``
            (dense form) or one per synapse (sparse form).
        weight_exp : int
            0..7; every synapse adds ``weight << weight_exp``.
        """
        pre = self._group(pre, "pre")
        post = self._group(post, "post")
        if not isinstance(post, Population):
            raise NetworkError(f"post {post.name!r} is an input; connections must end on a "
                               f"population")
        what = f"connect({pre.name!r}, {post.name!r})"
        if isinstance(weights, tuple):
            if len(weights) != 3:
                raise NetworkError(f"{what}: sparse weights must be (pre_idx, post_idx, weight), "
                                   f"not a tuple of {len(weights)}")
            pre_idx, post_idx, w = (_as_int_array(a, f"{what} sparse {k}").ravel()
                                    for a, k in zip(weights, ("pre_idx", "post_idx", "weight")))
            if not pre_idx.size == post_idx.size == w.size:
                raise NetworkError(f"{what}: sparse arrays must have one length, not "
                                   f"{pre_idx.size}, {post_idx.size}, {w.size}")
            for idx, g, k in ((pre_idx, pre, "pre_idx"), (post_idx, post, "post_idx")):
                if idx.size and (idx.min() < 0 or idx.max() >= g.n):
                    bad = idx[(idx < 0) | (idx >= g.n)][0]
                    raise NetworkError(f"{what}: {k} holds {int(bad)}, outside 0..{g.n - 1} "
                                       f"({g.name!r} has {g.n} neurons)")
            d = _as_int_array(delay, f"{what} delay")
            if d.ndim == 0:
                d = np.full(w.size, int(d), np.int64)
            elif d.shape != w.shape:
                raise NetworkError(f"{what}: delay must be a scalar or one per synapse "
                                   f"({w.size}), not of shape {d.shape}")
        else:
            dense = _as_int_array(weights, f"{what} weights")
            if dense.shape != (pre.n, post.n):
                raise NetworkError(f"{what}: dense weights must have shape {(pre.n, post.n)} "
                                   f"(pre x post), not {dense.shape}")
            pre_idx, post_idx = np.nonzero(dense)
            w = dense[pre_idx, post_idx]
            d = _as_int_array(delay, f"{what} delay")
            if d.ndim == 0:
                d = np.full(w.size, int(d), np.int64)
            elif d.shape == dense.shape:
                d = d[pre_idx, post_idx]
            else:
                raise NetworkError(f"{what}: delay must be a scalar or a {dense.shape} matrix, "
                                   f"not of shape {d.shape}")
        if d.size and d.min() < 1:
            raise NetworkError(f"{what}: delays must be at least 1 step, not {int(d.min())}")
        wexp = _as_int_array(weight_exp, f"{what} weight_exp")
        if wexp.ndim != 0 or not 0 <= int(wexp) <= 7:
            raise NetworkError(f"{what}: weight_exp must be an int from 0 to 7, not {weight_exp!r}")
        if name is None:
            name = f"{pre.name}->{post.name}"
            if any(p.name == name for p in self.projections):
                name = f"{name}#{len(self.projections)}"
        proj = Projection(pre, post, pre_idx.astype(np.int64), post_idx.astype(np.int64),
                          w.astype(np.int64), d.astype(np.int64), int(wexp), name)
        self.projections.append(proj)
        return proj

    def output(self, pop):
        """Mark a population whose spikes the host reads back."""
        pop = self._group(pop, "output")
        if not isinstance(pop, Population):
            raise NetworkError(f"output {pop.name!r} is an input; outputs must be populations")
        if pop in self.outputs:
            raise NetworkError(f"population {pop.name!r} is already an output")
        self.outputs.append(pop)

    # -- views -----------------------------------------------------------------------------------

    @property
    def inputs(self):
        return [g for g in self.groups.values() if isinstance(g, Input)]

    @property
    def populations(self):
        return [g for g in self.groups.values() if isinstance(g, Population)]

    @property
    def n_neurons(self):
        return sum(p.n for p in self.populations)

    @property
    def n_synapses(self):
        return sum(p.n_synapses for p in self.projections)

    def __repr__(self):
        return (f"<Network {self.name!r}: {len(self.inputs)} inputs, {len(self.populations)} "
                f"populations ({self.n_neurons} neurons), {len(self.projections)} projections "
                f"({self.n_synapses} synapses)>")
