"""A normal (non-editable) install holds only the Python files and what package-data lists: the
files the package opens at run time must be listed there."""
import fnmatch
import importlib.resources
from pathlib import Path

import pytest

from neurotile.boards import cosim as board_cosim
from neurotile.emulator import demo
from neurotile.sim import build as sim_build


def test_package_data_lists_every_file_the_package_opens():
    tomllib = pytest.importorskip("tomllib")
    root = Path(str(importlib.resources.files("neurotile")))
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    # The demo's shipped model and the co-simulation benches.
    needed = [root / "emulator" / demo.MODEL_RESOURCE, sim_build.BENCH, sim_build.BENCH_VLT,
              sim_build.FRAME_COLLECTOR, board_cosim.BENCH]
    for path in needed:
        assert path.is_file(), path
        package_dir = next(parent for parent in path.parents
                           if (parent / "__init__.py").is_file())
        package = ".".join(["neurotile", *package_dir.relative_to(root).parts])
        name = path.relative_to(package_dir).as_posix()
        patterns = package_data.get(package, [])
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), \
            f"{name} is not in package-data for {package}: {patterns}"
