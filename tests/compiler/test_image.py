"""Tests of :mod:`neurotile.compiler.image` (validation, save/load, checksum) and of the image report
(:mod:`neurotile.compiler.report`, reached as ``ChipImage.report``).

Images come from small seeded networks compiled with :func:`neurotile.compile`; the files they are saved to live in
pytest's ``tmp_path``.
"""

import io
import json

import numpy as np
import pytest

import neurotile as nt
from neurotile.compiler.image import CORE_TABLES, FORMAT_VERSION, CoreImage
from neurotile.compiler.report import MEMORIES, Report, image_report


def make_network(seed=0):
    rng = np.random.default_rng(seed)
    net = nt.Network("img")
    x = net.input(8, name="x")
    h = net.population(40, nt.LIF(du=4095, dv=205, vth=rng.choice([30, 40], 40)), name="h")
    o = net.population(6, nt.LIF(vth=20), name="o")
    net.connect(x, h, weights=rng.integers(-20, 21, (8, 40)) * (rng.random((8, 40)) < 0.5), delay=2)
    net.connect(h, h, weights=rng.integers(-5, 6, (40, 40)) * (rng.random((40, 40)) < 0.2), weight_exp=1)
    net.connect(h, o, weights=rng.integers(0, 9, (40, 6)), delay=rng.integers(1, 5, (40, 6)))
    net.output(o)
    return net


@pytest.fixture
def image():
    return nt.compile(make_network(), nt.Arch(mesh_w=3, mesh_h=2, neurons_per_core=16))


def assert_images_equal(a, b):
    assert a.arch == b.arch and a.meta == b.meta and a.version == b.version
    assert a.outputs["names"] == b.outputs["names"]
    ka, kb = a._arrays(), b._arrays()
    assert ka.keys() == kb.keys()
    for key in ka:
        np.testing.assert_array_equal(ka[key], kb[key], err_msg=key)
    assert [(c.x, c.y, c.n_neurons, c.n_axons) for c in a.cores] == [(c.x, c.y, c.n_neurons, c.n_axons)
                                                                     for c in b.cores]


def rewrite(path, edit_header=None, edit_arrays=None):
    """Rewrite a saved image, changing its header or arrays but keeping the stored checksum."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays.pop("__header__").tobytes().decode())
    if edit_header:
        edit_header(header)
    if edit_arrays:
        edit_arrays(arrays)
    buf = io.BytesIO()
    np.savez_compressed(buf, __header__=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    path.write_bytes(buf.getvalue())


# -- save and load -------------------------------------------------------------------------------------------------


def test_save_load_round_trip(image, tmp_path):
    path = tmp_path / "chip.npz"
    image.save(path)
    loaded = nt.ChipImage.load(path)
    assert_images_equal(image, loaded)
    assert loaded.checksum() == image.checksum()
    loaded.validate()
    for c in range(image.arch.n_cores):
        for table in CORE_TABLES:
            np.testing.assert_array_equal(loaded.words(c, table), image.words(c, table))


def test_empty_image_round_trip(tmp_path):
    """An image of the smallest network (one neuron, nothing else) survives saving too."""
    net = nt.Network("tiny")
    net.population(1, nt.LIF(), name="h")
    image = nt.compile(net)
    image.save(tmp_path / "tiny.npz")
    assert_images_equal(image, nt.ChipImage.load(tmp_path / "tiny.npz"))


def test_checksum_changes_with_any_table_value(image):
    before = image.checksum()
    image.cores[0].tables["synapse"]["weight"] = image.cores[0].tables["synapse"]["weight"].copy()
    image.cores[0].tables["synapse"]["weight"][0] += 1
    assert image.checksum() != before


def test_modified_file_fails_its_checksum(image, tmp_path):
    path = tmp_path / "chip.npz"
    image.save(path)

    def bump(arrays):
        arrays["core0/synapse/weight"] = arrays["core0/synapse/weight"].copy()
        arrays["core0/synapse/weight"][0] ^= 1
    rewrite(path, edit_arrays=bump)
    with pytest.raises(nt.ImageError, match=r"chip\.npz' fails its checksum: the file was changed or corrupted$"):
        nt.ChipImage.load(path)


def test_modified_meta_fails_its_checksum(image, tmp_path):
    path = tmp_path / "chip.npz"
    image.save(path)
    rewrite(path, edit_header=lambda h: h["meta"].update(network="other"))
    with pytest.raises(nt.ImageError, match="fails its checksum"):
        nt.ChipImage.load(path)


def test_version_mismatch_is_refused(image, tmp_path):
    path = tmp_path / "chip.npz"
    image.save(path)
    rewrite(path, edit_header=lambda h: h.update(version=FORMAT_VERSION + 1))
    with pytest.raises(nt.ImageError, match=rf"has format version {FORMAT_VERSION + 1}; this neurotile reads "
                                            rf"version {FORMAT_VERSION}: recompile the network$"):
        nt.ChipImage.load(path)
    image.version = FORMAT_VERSION + 1
    with pytest.raises(nt.ImageError, match=rf"^chip image format version {FORMAT_VERSION + 1} is not supported"):
        image.validate()


def test_missing_array_is_reported(image, tmp_path):
    path = tmp_path / "chip.npz"
    image.save(path)
    rewrite(path, edit_arrays=lambda arrays: arrays.pop("outputs/pop"))
    with pytest.raises(nt.ImageError, match=r"is missing array 'outputs/pop': the file is truncated or corrupted$"):
        nt.ChipImage.load(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(nt.ImageError, match=r"^no chip image at '.*nothing\.npz'$"):
        nt.ChipImage.load(tmp_path / "nothing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(nt.ImageError, match=r"junk\.npz' is not a readable chip image"):
        nt.ChipImage.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(nt.ImageError, match=r"other\.npz' has no chip-image header$"):
        nt.ChipImage.load(other)


def test_foreign_format_is_refused(image, tmp_path):
    path = tmp_path / "chip.npz"
    image.save(path)
    rewrite(path, edit_header=lambda h: h.update(format="something-else"))
    with pytest.raises(nt.ImageError, match=r"chip\.npz' is not a neurotile chip image$"):
        nt.ChipImage.load(path)


# -- validation ----------------------------------------------------------------------------------------------------


def used_core(image):
    return next(c for c in image.cores if c.n_synapses)


def test_validate_accepts_compiled_images(image):
    image.validate()


def test_arch_must_be_an_arch():
    with pytest.raises(nt.NeurotileTypeError, match=r"^ChipImage\.arch must be an nt\.Arch, not dict$"):
        nt.ChipImage({}, [], {}, {}, {})


def test_validate_refuses_a_synapse_target_past_the_neurons(image):
    """46 neurons on 16-neuron cores leave one core at 14: a target of 14 fits the field but names no neuron."""
    core = next(c for c in image.cores if 0 < c.n_neurons < image.arch.neurons_per_core)
    core.tables["synapse"]["target"] = core.tables["synapse"]["target"].copy()
    core.tables["synapse"]["target"][0] = core.n_neurons
    with pytest.raises(nt.ImageError, match=rf"core \({core.x}, {core.y}\): a synapse targets neuron "
                                            rf"{core.n_neurons} but the core uses {core.n_neurons}$"):
        image.validate()


def test_validate_refuses_a_weight_outside_its_field(image):
    core = used_core(image)
    core.tables["synapse"]["weight"] = core.tables["synapse"]["weight"].copy()
    core.tables["synapse"]["weight"][0] = 300
    with pytest.raises(nt.ImageError, match=r"field 'weight' holds 300, outside its 8-bit signed range"):
        image.validate()


def test_validate_refuses_an_axon_fed_twice(image):
    """Pointing input channel 1's first packet at the axon channel 0 already feeds gives that axon two sources."""
    pk = image.inputs["x"]["packets"]
    for f in pk:
        pk[f] = pk[f].copy()
    first = image.inputs["x"]["base"][1]
    for f in ("x", "y", "index"):
        pk[f][first] = pk[f][0]
    with pytest.raises(nt.ImageError, match=r"is fed by 2 sources; each axon must have one"):
        image.validate()


def test_validate_refuses_a_wrong_core_count(image):
    image.cores.append(CoreImage.empty(image.arch, 0, 0))
    with pytest.raises(nt.ImageError, match=r"^chip image has 7 cores but its 3x2 mesh has 6$"):
        image.validate()


# -- report --------------------------------------------------------------------------------------------------------


def test_report_usage_matches_the_cores(image):
    rep = image.report()
    assert isinstance(rep, Report)
    used = [c for c in image.cores if c.n_neurons or c.n_axons]
    assert len(rep.usage) == len(used)
    for u, core in zip(rep.usage, used):
        assert (u["x"], u["y"]) == (core.x, core.y)
        assert (u["neurons"], u["axons"], u["synapses"], u["fanout"]) == (core.n_neurons, core.n_axons,
                                                                          core.n_synapses, core.n_fanout)
    totals = rep.totals()
    assert totals["neurons"] == 46
    assert totals["synapses"] == sum(p.n_synapses for p in make_network().projections)
    assert rep.capacity == {name: getattr(image.arch, field) for name, field in MEMORIES}


def test_report_traffic_figures(image):
    """Every source firing once sends each fan-out entry and each input packet once; rates scale that linearly."""
    rep = image_report(image, rates=[0.5])
    t = rep.traffic
    assert t["host_out"] == 6                                   # one host entry per output neuron
    assert t["host_in"] == sum(c.size for c in [image.inputs["x"]["packets"]["index"]])
    assert t["core_packets"] + t["host_out"] == sum(c.n_fanout for c in image.cores)
    assert rep.rates == [(0.5, {k: v / 2 for k, v in t.items()})]
    # the hop count recomputed from the tables is the placer's own figure
    assert rep.placement["hops_measured"] == image.meta["placement"]["hops_weighted"] == t["hops"]


def test_report_mesh_map_and_text(image):
    rep = image.report()
    a = image.arch
    assert len(rep.mesh) == a.mesh_h and all(len(row) == a.mesh_w for row in rep.mesh)
    cells = {cell for row in rep.mesh for cell in row}
    assert cells <= {".", "h", "o", "h+o"}
    for name, where in image.populations.items():
        for c in np.unique(where["core"]):
            assert name in rep.mesh[c // a.mesh_w][c % a.mesh_w].split("+")
    text = str(rep)
    for needle in ("chip image of network 'img'", "memory use", "per core", "mesh map", "packets per step",
                   "at rate 0.07", "traffic-weighted hops", "naive"):
        assert needle in text
    assert repr(rep).startswith("<Report chip image")


def test_report_argument_errors(image):
    with pytest.raises(nt.NeurotileValueError, match=r"^rates must be between 0 and 1 .*, not 2$"):
        image.report(rates=[2])
    with pytest.raises(nt.NeurotileTypeError, match=r"^rates must be numbers, not 'a'$"):
        image.report(rates=["a"])
    with pytest.raises(nt.NeurotileTypeError, match=r"^image must be an nt\.ChipImage, not int$"):
        image_report(3)
    assert image_report(image, rates=0.2).rates[0][0] == 0.2
