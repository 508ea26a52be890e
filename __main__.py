"""Command line interface: ``neurotile`` (console script) or ``python -m neurotile``.

Subcommands are registered in :data:`COMMANDS` as ``"module:attr"`` strings and imported only when the command line
runs, so a subpackage whose optional dependencies are missing drops its commands instead of breaking
``neurotile --help``.
"""

from __future__ import annotations

import importlib
import sys

import click

from neurotile.sim import toolchain

__all__ = ["COMMANDS", "main", "doctor"]

#: Subcommands, as ``"module:attr"`` strings naming a :class:`click.Command`. To add one, append e.g.
#: ``"neurotile.compiler.cli:compile_cmd"``; the command's own name is used on the command line.
COMMANDS = [
    "neurotile.__main__:doctor",
    "neurotile.compiler.cli:report_cmd",
    "neurotile.hdl.cli:rtl_cmd",
    "neurotile.emulator.cli:demo_cmd",
    "neurotile.boards.cli:build_cmd",
    "neurotile.sim.cli:cosim_cmd",
]


def _resolve(spec: str) -> click.Command:
    module_name, _, attr = spec.partition(":")
    if __spec__ is not None and module_name == __spec__.name:
        # Under `python -m neurotile` this file runs as `__main__`: use it rather than importing it a second time.
        module = sys.modules[__name__]
    else:
        module = importlib.import_module(module_name)
    return getattr(module, attr)


class _RegistryGroup(click.Group):
    """A :class:`click.Group` whose subcommands come from :data:`COMMANDS`."""

    def _registry(self) -> tuple[dict[str, click.Command], dict[str, ImportError]]:
        commands, unavailable = dict(self.commands), {}
        for spec in COMMANDS:
            try:
                command = _resolve(spec)
            except ImportError as error:
                unavailable[spec] = error
                continue
            commands[command.name] = command
        return commands, unavailable

    def list_commands(self, ctx):
        return sorted(self._registry()[0])

    def get_command(self, ctx, cmd_name):
        commands, unavailable = self._registry()
        if cmd_name not in commands:
            for spec, error in unavailable.items():
                click.echo(f"note: commands from {spec} are unavailable ({error}); "
                           f"run `neurotile doctor`", err=True)
        return commands.get(cmd_name)


@click.group(cls=_RegistryGroup)
@click.version_option(package_name="neurotile")
def main():
    """neurotile: a toolchain for a tiled neuromorphic chip.

    It compiles spiking networks onto a mesh of neuron cores, runs the result in a
    bit-exact emulator, and generates the chip as Amaranth RTL for Verilator and
    iCE40/ECP5 FPGAs. Run `neurotile doctor` to check the installed tools.
    """


def _status_text(tool: toolchain.ToolStatus) -> str:
    if tool.ok:
        return "ok"
    text = "MISSING" if tool.version is None else "TOO OLD"
    return text if tool.required else f"{text.lower()} (optional)"


@click.command()
@click.pass_context
def doctor(ctx):
    """Check the installed tools and say how to fix them.

    Lists Python, the Python packages, Verilator and the YoWASP FPGA tools with the versions found, and prints an
    install command for each one that is missing or too old. Exits with status 1 when a required tool is not usable;
    optional tools (numba, nir, iverilog) never fail it.
    """
    report = toolchain.tool_report()
    header = ("tool", "found", "minimum", "status")
    rows = [(tool.name, tool.version or "-", tool.minimum or "any", _status_text(tool)) for tool in report]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())

    broken = [tool for tool in report if not tool.ok]
    if broken:
        click.echo("\nTo fix:")
        name_width = max(len(tool.name) for tool in broken)
        for tool in broken:
            click.echo(f"  {tool.name.ljust(name_width)}  {tool.hint}")
    failed = [tool for tool in broken if tool.required]
    if failed:
        click.echo("\nFrom a source checkout, `pip install -e '.[dev]'` installs every Python tool at once.")
        ctx.exit(1)


if __name__ == "__main__":
    main()
