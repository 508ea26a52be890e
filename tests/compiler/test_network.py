"""Tests of :mod:`neurotile.compiler.network`: building networks and refusing bad ones where they are built.

Expected values come from the definitions in the docstrings of ``LIF`` and ``Network.connect`` (dense weights keep
their non-zero entries in row-major order; the sparse form keeps every entry).
"""

import numpy as np
import pytest

import neurotile as nt
from neurotile.compiler.network import LIF_RANGES, Input, Population


@pytest.fixture
def net():
    n = nt.Network("n")
    n.input(2, name="x")
    n.population(3, nt.LIF(), name="h")
    return n


# -- building ------------------------------------------------------------------------------------------------------


def test_dense_weights_keep_nonzeros_in_row_major_order(net):
    """[[1, 0, 2], [0, 3, 0]] has non-zeros at (0, 0), (0, 2), (1, 1), in that order."""
    p = net.connect("x", "h", weights=np.array([[1, 0, 2], [0, 3, 0]]), delay=np.array([[1, 9, 2], [9, 3, 9]]))
    assert p.pre_idx.tolist() == [0, 0, 1]
    assert p.post_idx.tolist() == [0, 2, 1]
    assert p.weight.tolist() == [1, 2, 3]
    assert p.delay.tolist() == [1, 2, 3]          # the delay matrix is read at the same entries
    assert p.n_synapses == 3 and p.weight_exp == 0
    assert all(a.dtype == np.int64 for a in (p.pre_idx, p.post_idx, p.weight, p.delay))


def test_sparse_weights_keep_zeros_and_repeats(net):
    p = net.connect("x", "h", (np.array([0, 0, 1]), np.array([2, 2, 0]), np.array([0, 5, 5])), delay=[1, 2, 3])
    assert p.pre_idx.tolist() == [0, 0, 1]
    assert p.post_idx.tolist() == [2, 2, 0]
    assert p.weight.tolist() == [0, 5, 5]
    assert p.delay.tolist() == [1, 2, 3]


def test_integer_valued_floats_are_accepted(net):
    p = net.connect("x", "h", weights=np.array([[1.0, 0.0, -2.0], [0.0, 0.0, 0.0]]), delay=2.0)
    assert p.weight.tolist() == [1, -2] and p.delay.tolist() == [2, 2]


def test_groups_and_views(net):
    h2 = net.population(4, nt.LIF(vth=[1, 2, 3, 4]), name="h2")
    net.connect("h", h2, weights=np.ones((3, 4), int))
    net.output(h2)
    assert isinstance(net.groups["x"], Input) and isinstance(net.groups["h"], Population)
    assert [g.name for g in net.inputs] == ["x"]
    assert [g.name for g in net.populations] == ["h", "h2"]
    assert net.n_neurons == 7 and net.n_synapses == 12
    assert net.outputs == [h2]
    assert repr(net) == "<Network 'n': 1 inputs, 2 populations (7 neurons), 1 projections (12 synapses)>"
    assert len(h2) == 4 and repr(h2) == "<Population 'h2' n=4>"
    assert h2.params["vth"].tolist() == [1, 2, 3, 4]
    assert h2.params["du"].tolist() == [0, 0, 0, 0]       # scalars broadcast to one value per neuron


def test_automatic_names():
    net = nt.Network()
    x = net.input(1)
    h = net.population(1, nt.LIF())
    assert (x.name, h.name) == ("in0", "pop1")
    p1 = net.connect(x, h, weights=np.array([[1]]))
    p2 = net.connect(x, h, weights=np.array([[2]]))
    assert p1.name == "in0->pop1"
    assert p2.name == "in0->pop1#1"        # a second projection between one pair gets the projection number


def test_lif_parameter_edges_are_accepted():
    lo = nt.LIF(**{k: v[0] for k, v in LIF_RANGES.items()})
    hi = nt.LIF(**{k: v[1] for k, v in LIF_RANGES.items()})
    assert int(lo.bias_mant) == -4096 and int(hi.vth) == (1 << 17) - 1


# -- errors --------------------------------------------------------------------------------------------------------


def test_network_name_must_be_str():
    with pytest.raises(nt.NeurotileTypeError, match=r"^Network name must be a str, not 3$"):
        nt.Network(3)


@pytest.mark.parametrize("n, exc, msg", [
    (0, nt.NetworkError, r"^population size must be at least 1, not 0$"),
    (-2, nt.NetworkError, r"^population size must be at least 1, not -2$"),
    (2.0, nt.NeurotileTypeError, r"^population size must be an int, not 2\.0$"),
    (True, nt.NeurotileTypeError, r"^population size must be an int, not True$"),
])
def test_population_size_errors(n, exc, msg):
    with pytest.raises(exc, match=msg):
        nt.Network().population(n, nt.LIF())


def test_zero_size_input_is_refused():
    with pytest.raises(nt.NetworkError, match=r"^input size must be at least 1, not 0$"):
        nt.Network().input(0)


def test_duplicate_and_bad_names(net):
    with pytest.raises(nt.NetworkError, match=r"^a group named 'h' already exists; names must be unique$"):
        net.population(2, nt.LIF(), name="h")
    with pytest.raises(nt.NetworkError, match=r"^a group named 'x' already exists"):
        net.input(2, name="x")
    with pytest.raises(nt.NetworkError, match=r"^group name must be an identifier .*, not 'a b'$"):
        net.input(1, name="a b")


def test_neuron_model_must_be_lif():
    with pytest.raises(nt.NeurotileTypeError, match=r"^neuron must be an nt\.LIF, not dict$"):
        nt.Network().population(2, {"vth": 1})


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(vth=1 << 17), nt.NetworkError, r"^LIF\.vth must be between 0 and 131071, not 131072$"),
    (dict(du=-1), nt.NetworkError, r"^LIF\.du must be between 0 and 4095, not -1$"),
    (dict(dv=4096), nt.NetworkError, r"^LIF\.dv must be between 0 and 4095, not 4096$"),
    (dict(bias_mant=4096), nt.NetworkError, r"^LIF\.bias_mant must be between -4096 and 4095, not 4096$"),
    (dict(bias_exp=[0, 8]), nt.NetworkError, r"^LIF\.bias_exp must be between 0 and 7, not 8$"),
    (dict(vth=1.5), nt.NetworkError, r"^LIF\.vth must be integers, not (np\.float64\()?1\.5\)?: quantize float "
                                     r"models first"),
    (dict(vth=float("nan")), nt.NetworkError, r"^LIF\.vth must be finite integers, but holds NaN or infinity$"),
    (dict(vth=np.inf), nt.NetworkError, r"^LIF\.vth must be finite integers"),
    (dict(vth=True), nt.NeurotileTypeError, r"^LIF\.vth must be an integer, not True$"),
    (dict(vth=np.array([True, False])), nt.NeurotileTypeError, r"^LIF\.vth must hold integers, not booleans$"),
    (dict(vth="10"), nt.NeurotileTypeError, r"^LIF\.vth must be integers, not an array of <U2$"),
    (dict(vth=np.ones((2, 2), int)), nt.NetworkError, r"^LIF\.vth must be a scalar or 1-D, not of shape \(2, 2\)$"),
])
def test_lif_parameter_errors(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        nt.LIF(**kw)


def test_lif_per_neuron_length_must_match_population():
    with pytest.raises(nt.NetworkError, match=r"^LIF\.vth has 2 values but the population has 3 neurons; give one "
                                              r"value or one per neuron$"):
        nt.Network().population(3, nt.LIF(vth=[1, 2]))


def test_connect_unknown_names(net):
    with pytest.raises(nt.NetworkError, match=r"^unknown group 'nope' as pre; groups: x, h$"):
        net.connect("nope", "h", weights=np.ones((2, 3), int))
    with pytest.raises(nt.NetworkError, match=r"^unknown group 'zz' as post; groups: x, h$"):
        net.connect("x", "zz", weights=np.ones((2, 3), int))
    with pytest.raises(nt.NetworkError, match=r"^unknown group 'q' as output; groups: x, h$"):
        net.output("q")


def test_connect_group_kinds(net):
    other = nt.Network()
    g = other.population(3, nt.LIF(), name="h")
    with pytest.raises(nt.NetworkError, match=r"^pre 'h' belongs to another network$"):
        net.connect(g, "h", weights=np.ones((3, 3), int))
    with pytest.raises(nt.NeurotileTypeError, match=r"^pre must be a group of this network or its name, not int$"):
        net.connect(3, "h", weights=np.ones((3, 3), int))
    with pytest.raises(nt.NetworkError, match=r"^post 'x' is an input; connections must end on a population$"):
        net.connect("h", "x", weights=np.ones((3, 2), int))


@pytest.mark.parametrize("kwargs, msg", [
    (dict(weights=np.ones((3, 2), int)), r"dense weights must have shape \(2, 3\) \(pre x post\), not \(3, 2\)$"),
    (dict(weights=np.ones((2, 3), int), delay=np.ones((3, 2), int)),
     r"delay must be a scalar or a \(2, 3\) matrix, not of shape \(3, 2\)$"),
    (dict(weights=([0], [1])), r"sparse weights must be \(pre_idx, post_idx, weight\), not a tuple of 2$"),
    (dict(weights=([0, 1], [1], [1])), r"sparse arrays must have one length, not 2, 1, 1$"),
    (dict(weights=([0], [1], [1]), delay=[1, 2]), r"delay must be a scalar or one per synapse \(1\), not of shape "
                                                  r"\(2,\)$"),
    (dict(weights=([2], [0], [1])), r"pre_idx holds 2, outside 0\.\.1 \('x' has 2 neurons\)$"),
    (dict(weights=([0], [-1], [1])), r"post_idx holds -1, outside 0\.\.2 \('h' has 3 neurons\)$"),
    (dict(weights=np.ones((2, 3), int), delay=0), r"delays must be at least 1 step, not 0$"),
    (dict(weights=np.ones((2, 3), int), weight_exp=8), r"weight_exp must be an int from 0 to 7, not 8$"),
])
def test_connect_value_errors(net, kwargs, msg):
    with pytest.raises(nt.NetworkError, match=r"^connect\('x', 'h'\): " + msg):
        net.connect("x", "h", **kwargs)


# The offending value is shown with repr(), which numpy 2 writes as np.float64(0.5); either form is accepted.
@pytest.mark.parametrize("kwargs, msg", [
    (dict(weights=np.full((2, 3), 0.5)), r"weights must be integers, not (np\.float64\()?0\.5\)?: quantize"),
    (dict(weights=np.full((2, 3), np.nan)), r"weights must be finite integers, but holds NaN or infinity$"),
    (dict(weights=([0.5], [0], [1])), r"sparse pre_idx must be integers, not (np\.float64\()?0\.5\)?: quantize"),
])
def test_connect_non_integer_values(net, kwargs, msg):
    with pytest.raises(nt.NetworkError, match=r"^connect\('x', 'h'\) " + msg):
        net.connect("x", "h", **kwargs)


def test_connect_type_errors(net):
    with pytest.raises(nt.NeurotileTypeError, match=r"^connect\('x', 'h'\) weights must hold integers, not booleans$"):
        net.connect("x", "h", weights=np.ones((2, 3), bool))
    with pytest.raises(nt.NeurotileTypeError, match=r"^connect\('x', 'h'\) delay must be an integer, not True$"):
        net.connect("x", "h", weights=np.ones((2, 3), int), delay=True)


def test_output_errors(net):
    with pytest.raises(nt.NetworkError, match=r"^output 'x' is an input; outputs must be populations$"):
        net.output("x")
    net.output("h")
    with pytest.raises(nt.NetworkError, match=r"^population 'h' is already an output$"):
        net.output("h")
