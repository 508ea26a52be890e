"""Tests of :mod:`neurotile.compiler.layouts`: pack/unpack round trips, field edges and refusals.

Bit positions come from the layouts' declaration order (fields from the least significant bit up), as the
module docstring says; field ranges from their shapes (n-bit unsigned 0..2**n-1, signed -2**(n-1)..2**(n-1)-1).
"""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

import neurotile as nt
from neurotile.compiler.layouts import TABLES, field_range, pack, unpack

ARCHS = [nt.Arch(), nt.Arch.profile("large"), nt.Arch.profile("ice40up5k"),
         nt.Arch(mesh_w=16, mesh_h=16, neurons_per_core=1024, axons_per_core=1 << 20, synapses_per_core=1 << 24,
                 fanout_per_core=1 << 20, max_delay=64, weight_bits=2, acc_bits=32, host_out_depth=1 << 20)]


def random_fields(layout, rng, n):
    """``n`` random values of every field, with both ends of each range included."""
    out = {}
    for name, _ in layout:
        lo, hi = field_range(layout, name)
        v = rng.integers(lo, hi, n, endpoint=True)
        v[:2] = lo, hi
        out[name] = v
    return out


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{a.name}-{a.neurons_per_core}")
@pytest.mark.parametrize("table", TABLES)
def test_pack_unpack_round_trip(arch, table):
    layout = arch.layouts[table]
    assert layout.size <= 64
    fields = random_fields(layout, np.random.default_rng(0), 200)
    words = pack(layout, fields)
    assert words.dtype == np.uint64
    if layout.size < 64:
        assert int(words.max()) < 1 << layout.size
    back = unpack(layout, words)
    for name in fields:
        np.testing.assert_array_equal(back[name], fields[name])
        assert back[name].dtype == np.int64


def test_signed_edges_of_the_synapse_weight():
    """An 8-bit weight holds -128..127; -1 is all ones in its field, -128 is only the top bit."""
    a = nt.Arch()
    lay = a.layouts.synapse
    off = lay["weight"].offset
    words = pack(lay, {"target": [0, 0, 0, 0], "weight": [-128, -1, 0, 127], "delay": [0] * 4, "wexp": [0] * 4})
    assert ((words >> np.uint64(off)) & np.uint64(0xFF)).tolist() == [0x80, 0xFF, 0x00, 0x7F]
    assert unpack(lay, words)["weight"].tolist() == [-128, -1, 0, 127]


def test_signed_edges_of_the_neuron_state():
    lay = nt.Arch().layouts.neuron_state
    u = [-(1 << 23), -1, (1 << 23) - 1]
    back = unpack(lay, pack(lay, {"u": u, "v": u[::-1]}))
    assert back["u"].tolist() == u and back["v"].tolist() == u[::-1]


def test_field_positions_follow_declaration_order():
    """packet = host (bit 0) | x | y | index: on the default 2x2 mesh x is bit 1, y bit 2, index from bit 3."""
    lay = nt.Arch().layouts.packet
    words = pack(lay, {"host": [1, 0, 0, 0], "x": [0, 1, 0, 0], "y": [0, 0, 1, 0], "index": [0, 0, 0, 5]})
    assert words.tolist() == [1, 2, 4, 5 << 3]


@pytest.mark.parametrize("field, value, msg", [
    ("weight", 128, r"field 'weight' holds 128, outside its 8-bit signed range -128\.\.127"),
    ("weight", -129, r"field 'weight' holds -129, outside its 8-bit signed range -128\.\.127"),
    ("delay", 16, r"field 'delay' holds 16, outside its 4-bit unsigned range 0\.\.15"),
    ("target", -1, r"field 'target' holds -1, outside its 7-bit unsigned range 0\.\.127"),
])
def test_out_of_range_values_are_refused(field, value, msg):
    fields = {"target": [0, 1], "weight": [0, 1], "delay": [0, 1], "wexp": [0, 1]}
    fields[field] = [0, value]
    with pytest.raises(nt.ImageError, match="^" + msg + "$"):
        pack(nt.Arch().layouts.synapse, fields)


def test_missing_field_is_refused():
    with pytest.raises(nt.ImageError, match=r"^cannot pack: fields \['wexp'\] are missing$"):
        pack(nt.Arch().layouts.synapse, {"target": [0], "weight": [0], "delay": [0]})


def test_non_layout_is_refused():
    with pytest.raises(nt.NeurotileTypeError, match=r"^layout must be an amaranth StructLayout, not 3$"):
        pack(3, {})


def test_empty_arrays_pack_to_empty_words():
    lay = nt.Arch().layouts.axon
    words = pack(lay, {"base": np.zeros(0, int), "count": np.zeros(0, int)})
    assert words.size == 0 and all(v.size == 0 for v in unpack(lay, words).values())


def test_field_range():
    lay = data.StructLayout({"a": unsigned(3), "b": signed(5)})
    assert field_range(lay, "a") == (0, 7)
    assert field_range(lay, "b") == (-16, 15)


def test_layout_lookup_and_table():
    lays = nt.Arch().layouts
    assert lays["fanout"] is lays.packet
    with pytest.raises(KeyError, match="no layout named 'nope'"):
        lays["nope"]
    rows = lays.table()
    assert ("synapse", "weight", 7, 8, True) in rows         # after the 7-bit target
    assert {r[0] for r in rows} == set(TABLES)
