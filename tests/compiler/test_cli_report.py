"""`neurotile report`: the image report from the command line."""

import re

from click.testing import CliRunner

import neurotile as nt
from neurotile.__main__ import main
from neurotile.emulator.testing import random_network


def test_report_prints_memory_use_and_mesh_map(tmp_path):
    image = nt.compile(random_network(1), nt.Arch(mesh_w=2, mesh_h=1))
    path = tmp_path / "net.ntimg"
    image.save(path)
    out = CliRunner().invoke(main, ["report", str(path), "--rate", "0.05"])
    assert out.exit_code == 0, out.output
    # The synapse total is the network's (every synapse is stored exactly once), against one
    # core's capacity of the default Arch (65536).
    used, capacity = re.search(r"synapses\s+(\d+) of\s+(\d+)", out.output).groups()
    assert (int(used), int(capacity)) == (random_network(1).n_synapses, 65536)
    assert "mesh map" in out.output and "at rate 0.05" in out.output


def test_report_of_a_missing_file_is_a_clear_error(tmp_path):
    out = CliRunner().invoke(main, ["report", str(tmp_path / "nope.ntimg")])
    assert out.exit_code == 1
    assert "no chip image at" in out.output
