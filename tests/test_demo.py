"""Tests of the end-to-end demo (``neurotile demo``, :mod:`neurotile.emulator.demo`) and its shipped model.

The shipped model is ``emulator/data/digits_snn.nir``, written by ``examples/train_digits.py`` (seed 0):
on the whole held-out split (360 digits) its float model classifies 98.3 % correctly, the integer chip
98.6 %, and both pick the same class for 99.2 % of the digits.
"""

import importlib.resources
import time

import numpy as np
import pytest
from click.testing import CliRunner

import neurotile as nt
import neurotile.__main__ as cli
from neurotile.emulator import RunResult, demo

pytest.importorskip("nir")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

#: Test digits of the accuracy checks: the first 60 of the held-out split (6 of each class on average).
N_SUBSET = 60
#: The float model must classify at least this fraction of them. The shipped model reaches 98.3 % on the
#: whole split (and 97.5 % on these 60); 90 % allows six mistakes in 60, so the bound fails for a broken
#: import, encoding or split, not for a retrained model that is a digit or two worse. It is above the 85 %
#: the demo promises.
MIN_FLOAT_ACCURACY = 0.90
#: The chip must pick the float model's class for at least this fraction. Quantization rounds weights to
#: 1/127 of the largest and decays to 1/4096 (docs/nir.md), so a neuron near its threshold fires a step
#: early or late; that flips the class only when the two leading output counts are within a spike or two.
#: Measured: 100 % on these 60, 99.2 % on the whole split; 95 % allows three flips in 60.
MIN_AGREEMENT = 0.95

SUMMARY_LINES = ("test digits", "float model accuracy", "chip accuracy", "chip = float class",
                 "spikes per inference", "synops per inference", "cycles per inference",
                 "energy per inference", "RTL co-simulation", "plots", "demo time")


@pytest.fixture(scope="module")
def model():
    return demo.load_model()


@pytest.fixture(scope="module")
def subset(model):
    net, spec = model
    pixels, labels, _ = demo.load_test_set(spec, N_SUBSET)
    return demo.encode_digits(pixels, spec.steps), labels


# -- the shipped model ----------------------------------------------------------------------------------------------

def test_shipped_model_is_package_data_and_imports_with_from_nir():
    resource = importlib.resources.files("neurotile.emulator").joinpath(demo.MODEL_RESOURCE)
    assert resource.is_file()
    with importlib.resources.as_file(resource) as path:
        net = nt.from_nir(path, dt=1e-3, arch=demo.demo_arch())
    assert isinstance(net, nt.Network)
    assert [(g.name, g.n) for g in net.inputs] == [("pixels", 64)]
    assert [(p.name, p.n) for p in net.populations] == [("hidden", 96), ("digits", 10)]
    assert [p.name for p in net.outputs] == ["digits"]
    assert net.float_model.populations["hidden"].kind == "LIF"
    assert net.arch == demo.demo_arch()


def test_model_metadata_names_the_split_and_the_encoding(model):
    net, spec = model
    assert spec.dt == 1e-3
    assert spec.steps == 25
    assert spec.test_indices.shape == (360,)
    assert np.unique(spec.test_indices).size == 360
    assert spec.test_indices.min() >= 0 and spec.test_indices.max() < 1797
    assert "floor((t + 1) * x / 16)" in spec.encoding
    assert spec.training["float_test_accuracy"] >= 0.85


def test_encoding_is_the_stored_rule():
    x = np.arange(17)
    spikes = demo.encode_digits(x, 32)
    assert spikes.shape == (32, 17)
    assert np.array_equal(spikes.sum(0), 2 * x)                     # x/16 spikes per step
    t = np.arange(32)[:, None]
    assert np.array_equal(spikes, (t + 1) * x // 16 > t * x // 16)
    batch = demo.encode_digits(np.stack([x, x[::-1]]), 5)
    assert batch.shape == (2, 5, 17)
    assert np.array_equal(batch[1], demo.encode_digits(x[::-1], 5))
    with pytest.raises(nt.NeurotileValueError, match="0..16"):
        demo.encode_digits([17], 4)
    with pytest.raises(nt.NeurotileValueError, match="whole numbers"):
        demo.encode_digits([0.5], 4)


def test_float_accuracy_and_chip_agreement_on_a_test_subset(model, subset):
    net, spec = model
    spikes_in, labels = subset
    fcounts, _ = demo.float_counts(net, spec, spikes_in, progress=False)
    runner = demo.ChipRunner(net, net.compile(), spec)
    ccounts = np.array([runner.run(s)[1][spec.output].sum(0) for s in spikes_in])
    fpred, cpred = demo.classify(fcounts), demo.classify(ccounts)
    assert np.mean(fpred == labels) >= MIN_FLOAT_ACCURACY
    assert np.mean(cpred == fpred) >= MIN_AGREEMENT


def test_chip_runner_matches_run_chip(model, subset):
    # Reusing one emulator (reset per digit) gives what NIRNetwork.run_chip gives from scratch.
    net, spec = model
    spikes_in, _ = subset
    runner = demo.ChipRunner(net, net.compile(), spec)
    runner.run(spikes_in[1])                                       # leave state behind
    _, aligned = runner.run(spikes_in[0])
    ref = net.run_chip({spec.input: spikes_in[0]}, spec.steps)
    for pop in ("hidden", "digits"):
        assert np.array_equal(aligned[pop], ref.spikes[pop])


# -- the command ----------------------------------------------------------------------------------------------------

def _run(args):
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli.main, ["demo", *args], catch_exceptions=False)
    return result, time.perf_counter() - t0


def test_demo_runs_end_to_end_without_cosim(tmp_path):
    out = tmp_path / "plots"
    result, seconds = _run(["--no-cosim", "--n-test", "30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    for step in ("1. import NIR", "2. quantize", "Quantization report", "3. compile", "chip image of network",
                 "4. emulate 30 test digits", "5. RTL co-simulation", "6. plots", "summary"):
        assert step in text
    summary = text.split("== summary")[1].splitlines()
    for label in SUMMARY_LINES:
        assert any(line.startswith(label) for line in summary), label
    assert "RTL co-simulation      skipped" in text
    for name in demo.PLOTS.values():
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
    assert seconds < 60


def test_demo_says_clearly_when_verilator_is_missing(tmp_path, monkeypatch):
    from neurotile import sim
    monkeypatch.setattr(sim, "simulator_available", lambda simulator="verilator": "verilator is not installed",
                        raising=False)
    result, _ = _run(["--n-test", "5", "--cosim-digits", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "NOT RUN: Verilator cannot run here: verilator is not installed" in result.output
    assert "RTL co-simulation      unavailable" in result.output


def test_demo_fails_when_the_rtl_differs(tmp_path, monkeypatch):
    from neurotile import sim

    class Mismatch:
        exact = False
        rtl = RunResult(mode="rtl", steps=1, start_step=0, spikes={})

        def __str__(self):
            return "RTL diverges from the emulator at step 3"

    monkeypatch.setattr(sim, "simulator_available", lambda simulator="verilator": None, raising=False)
    monkeypatch.setattr(sim, "compare_with_emulator", lambda *a, **k: Mismatch(), raising=False)
    result, _ = _run(["--n-test", "5", "--cosim-digits", "1", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "MISMATCH: digit 0: RTL diverges from the emulator at step 3" in result.output
    assert "the RTL differs from the emulator" in result.output


def test_demo_rejects_bad_options(tmp_path):
    result, _ = _run(["--n-test", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--n-test" in result.output


def test_demo_cosimulates_a_digit_bit_exactly(tmp_path):
    # The real thing: the demo's chip (its own Arch) built for Verilator, one digit through the host port.
    # The first build of this design takes about a minute; later runs find it in the cache.
    from neurotile import sim
    reason = sim.simulator_available("verilator")
    if reason is not None:
        pytest.skip(f"Verilator cannot run here: {reason}")
    lines = []
    result = demo.run_demo(tmp_path, n_test=1, cosim_digits=1, progress=False, echo=lines.append)
    assert result.cosim == "bit-exact", "\n".join(lines)
    assert any(line.startswith("  digit 0: bit-exact over 27 steps") for line in lines)
