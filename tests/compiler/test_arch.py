"""Tests of :mod:`neurotile.compiler.arch`: defaults, derived widths, profiles, validation and serialisation.

Expected widths follow from the definitions in ``arch.py``: a field holding 0..n-1 needs ``ceil(log2 n)`` bits
(at least 1), a count 0..n needs ``n.bit_length()`` bits.
"""

import dataclasses

import pytest

import neurotile as nt
from neurotile.compiler.arch import PROFILES


def test_defaults_and_derived_widths():
    a = nt.Arch()
    assert (a.mesh_w, a.mesh_h, a.n_cores) == (2, 2, 4)
    assert (a.x_bits, a.y_bits) == (1, 1)
    assert a.neuron_bits == 7            # 128 neurons: 0..127
    assert a.profile_bits == 4           # 16 profiles
    assert a.axon_bits == 12             # 4096 axons
    assert a.delay_bits == 4             # delays 1..16 stored as 0..15
    assert a.index_bits == 12            # max(axon bits, bits of 4096 outputs)
    assert a.input_bits == 18            # 24-bit u minus the << 6 alignment
    assert a.max_input == (1 << 17) - 1
    assert a.max_acc == (1 << 23) - 1    # 24-bit signed accumulator
    assert a.addr_bits(65536) == 16 and a.count_bits(65536) == 17
    assert a.update_cycles == 128 + nt.Arch.UPDATE_LATENCY


def test_one_wide_mesh_still_has_one_bit_coordinates():
    a = nt.Arch(mesh_w=1, mesh_h=1, neurons_per_core=1)
    assert (a.x_bits, a.y_bits, a.neuron_bits) == (1, 1, 1)


def test_named_profiles():
    large = nt.Arch.profile("large")
    assert large.name == "large" and large.n_cores == 256 and large.axons_per_core == 32768
    small = nt.Arch.profile("large", mesh_w=8, mesh_h=4)
    assert (small.n_cores, small.name, small.synapses_per_core) == (32, "large", 65536)
    for name in PROFILES:
        assert nt.Arch.profile(name).name == name


def test_unknown_profile():
    with pytest.raises(nt.ArchError, match=r"^Unknown architecture profile 'huge'; known profiles: ecp5-85f, "
                                           r"ice40up5k, large$"):
        nt.Arch.profile("huge")


def test_arch_is_frozen_and_hashable():
    a = nt.Arch()
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.mesh_w = 3
    assert a == nt.Arch() and hash(a) == hash(nt.Arch())
    assert a.with_mesh(3, 2) == nt.Arch(mesh_w=3, mesh_h=2)
    assert a.replace(max_delay=32).max_delay == 32


def test_dict_and_json_round_trip():
    a = nt.Arch.profile("ecp5-85f", decay_mode="shift")
    assert nt.Arch.from_dict(a.to_dict()) == a
    assert '"decay_mode": "shift"' in a.to_json()


def test_the_ice40_profile_keeps_synapses_in_spram_with_16_bit_counters_and_round_trips():
    a = nt.Arch.profile("ice40up5k")
    assert (a.synapse_ram, a.synapses_per_core, a.counter_bits) == ("spram", 16384, 16)
    assert nt.Arch.from_dict(a.to_dict()) == a
    # Every other profile keeps the defaults: block RAM and 32-bit counters.
    for name in ("large", "ecp5-85f"):
        assert (nt.Arch.profile(name).synapse_ram, nt.Arch.profile(name).counter_bits) == \
            ("bram", 32)
    # An Arch saved before the two fields existed loads with their defaults.
    old = nt.Arch.profile("ecp5-85f").to_dict()
    del old["synapse_ram"], old["counter_bits"]
    assert nt.Arch.from_dict(old) == nt.Arch.profile("ecp5-85f")


def test_from_dict_errors():
    with pytest.raises(nt.NeurotileTypeError, match=r"^Arch\.from_dict needs a dict, not list$"):
        nt.Arch.from_dict([])
    with pytest.raises(nt.ArchError, match=r"^Unknown Arch fields \['colour'\]; known fields: "):
        nt.Arch.from_dict({"colour": 1})


@pytest.mark.parametrize("field, value, msg", [
    ("mesh_w", 0, r"Arch\.mesh_w must be between 1 and 16, not 0"),
    ("mesh_h", 17, r"Arch\.mesh_h must be between 1 and 16, not 17"),
    ("weight_bits", 9, r"Arch\.weight_bits must be between 2 and 8, not 9"),
    ("acc_bits", 17, r"Arch\.acc_bits must be between 18 and 32, not 17"),   # at least the saturated input width
    ("max_delay", 128, r"Arch\.max_delay must be between 1 and 64, not 128"),
    ("neurons_per_core", 100, r"Arch\.neurons_per_core must be a power of two, not 100"),
    ("profiles_per_core", 3, r"Arch\.profiles_per_core must be a power of two, not 3"),
    ("max_delay", 12, r"Arch\.max_delay must be a power of two, not 12"),
    ("decay_mode", "exp", r"Arch\.decay_mode must be one of 'loihi', 'shift', not 'exp'"),
    ("reset_mode", "hold", r"Arch\.reset_mode must be one of 'zero', 'subtract', not 'hold'"),
    ("synapse_ram", "ebr", r"Arch\.synapse_ram must be one of 'bram', 'spram', not 'ebr'"),
    ("synapse_ram", None, r"Arch\.synapse_ram must be one of 'bram', 'spram', not None"),
    ("counter_bits", 8, r"Arch\.counter_bits must be between 16 and 32, not 8"),
    ("counter_bits", 64, r"Arch\.counter_bits must be between 16 and 32, not 64"),
])
def test_value_errors(field, value, msg):
    with pytest.raises(nt.ArchError, match="^" + msg + "$"):
        nt.Arch(**{field: value})


@pytest.mark.parametrize("field, value, msg", [
    ("mesh_w", 2.0, r"Arch\.mesh_w must be an int, not 2\.0"),
    ("fifo_depth", True, r"Arch\.fifo_depth must be an int, not True"),
    ("name", 5, r"Arch\.name must be a str, not 5"),
])
def test_type_errors(field, value, msg):
    with pytest.raises(nt.NeurotileTypeError, match="^" + msg + "$"):
        nt.Arch(**{field: value})


def test_arch_errors_are_value_errors_of_the_package():
    with pytest.raises(ValueError):
        nt.Arch(mesh_w=0)
    assert issubclass(nt.ArchError, nt.NeurotileError)


def test_layouts_are_cached_per_arch():
    a = nt.Arch()
    assert a.layouts is a.layouts
    assert a.layouts.synapse.size == a.neuron_bits + a.weight_bits + a.delay_bits + nt.Arch.WEIGHT_EXP_BITS
