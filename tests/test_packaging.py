"""A normal (non-editable) install holds only the Python files and what package-data lists: the
files the package opens at run time must be listed there."""
import fnmatch
import importlib.resources
from pathlib import Path

import pytest

from neurotile.boards import cosim as board_cosim
from neurotile.sim import build as sim_build


def test_package_data_lists_the_cosimulation_benches():
    tomllib = pytest.importorskip("tomllib")
    root = Path(str(importlib.resources.files("neurotile")))
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    needed = [sim_build.BENCH, sim_build.BENCH_VLT, sim_build.FRAME_COLLECTOR, board_cosim.BENCH]
    for path in needed:
        assert path.is_file(), path
        package = "neurotile." + path.parent.relative_to(root).as_posix().replace("/", ".")
        patterns = package_data.get(package, [])
        assert any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns), \
            f"{path.name} is not in package-data for {package}: {patterns}"
