"""``neurotile build``: the chip for an FPGA board (registered in ``__main__.COMMANDS``)."""

import click

from ..compiler.errors import NeurotileError
from ..hdl.cli import parse_mesh
from .targets import TARGETS, target_names

__all__ = ["build_cmd"]


def _board_table():
    rows = []
    for name in target_names():
        t = TARGETS[name]
        how = "bitstream here (YoWASP)" if t.bitstream else f"RTL + constraints ({t.tool})"
        rows.append(f"  {name:<14} {t.device:<22} profile {t.profile:<10} {how}")
    return "\n".join(rows)


@click.command("build", epilog="Boards: " + ", ".join(target_names()) + ".")
@click.option("--board", metavar="NAME", default=None,
              help="Target board (see --list).")
@click.option("--mesh", metavar="WxH", default=None,
              help="Mesh size; default: the largest that fits and meets timing.")
@click.option("--image", "image", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A saved chip image (.ntimg) to build into the bitstream's memories.")
@click.option("-o", "--output", "outdir", default="build", show_default=True,
              type=click.Path(file_okay=False, writable=True),
              help="Build folder (one subfolder per mesh tried, report.json, report.txt).")
@click.option("--baud", type=int, default=None, help="UART baud rate (default 115200).")
@click.option("--timeout", type=float, default=None,
              help="Seconds each tool (yosys, nextpnr, packer) may run.")
@click.option("--list", "list_boards", is_flag=True, help="List the boards and exit.")
def build_cmd(board, mesh, image, outdir, baud, timeout, list_boards):
    """Build the chip for an FPGA board and print its resource and timing report.

    For the iCEBreaker (iCE40UP5K) and the ULX3S (ECP5-85F) this synthesises, places, routes
    and packs a bitstream with the YoWASP tools from PyPI; for the other boards it writes the
    Verilog and constraints for the vendor tool. Without --mesh it searches for the largest mesh
    that fits the FPGA and meets timing at the board clock, and says why it stopped.
    """
    if list_boards:
        click.echo(_board_table())
        return
    if board is None:
        raise click.UsageError("--board is required; boards: " + ", ".join(target_names()))
    from .build import build
    from .targets import get_target

    size = parse_mesh(mesh) if mesh is not None else None
    try:
        target = get_target(board)
        loaded = None
        if image is not None:
            from ..compiler.image import ChipImage
            loaded = ChipImage.load(image)
        report = build(target, size, loaded, outdir, baud=baud, timeout=timeout,
                       log=lambda line: click.echo(line, err=True))
    except NeurotileError as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.summary())
