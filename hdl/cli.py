"""``neurotile rtl``: write the chip's Verilog and memory map (registered in ``__main__.COMMANDS``)."""

import re

import click

from ..compiler.arch import PROFILES
from ..compiler.errors import NeurotileError

__all__ = ["rtl_cmd", "parse_mesh"]


def parse_mesh(text):
    """``"WxH"`` -> ``(W, H)``.

    Raises
    ------
    click.BadParameter
        Not of the form ``WxH`` with positive integers.
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise click.BadParameter(f"must be WIDTHxHEIGHT such as 4x4, not {text!r}",
                                 param_hint="'--mesh'")
    return int(match.group(1)), int(match.group(2))


@click.command("rtl", epilog="Profiles: " + ", ".join(sorted([*PROFILES, "default"])) + ".")
@click.argument("source", metavar="IMAGE_OR_ARCH")
@click.option("-o", "--output", "outdir", default="out", show_default=True,
              type=click.Path(file_okay=False, writable=True),
              help="Folder for chip.v and memory_map.json (created if needed).")
@click.option("--mesh", metavar="WxH", default=None,
              help="Mesh size replacing the profile's, e.g. 2x2 (architecture profiles only).")
@click.option("--max-payload", type=int, default=None,
              help="Host port payload buffer in bytes (default 256).")
def rtl_cmd(source, outdir, mesh, max_payload):
    """Generate the chip as Verilog.

    IMAGE_OR_ARCH is a saved chip image (.ntimg, from ChipImage.save), whose memories become the
    Verilog's initial contents, or an architecture profile name for an empty chip that a host
    loads through the host port.

    Writes chip.v (top module `chip`: clk, rst and the host byte streams rx/tx) and
    memory_map.json (every memory's depth, width and fields, the counter map and the host
    protocol) into the --output folder, then prints a short summary.
    """
    from .generate import generate

    size = parse_mesh(mesh) if mesh is not None else None
    kwargs = {} if max_payload is None else {"max_payload": max_payload}
    try:
        result = generate(source, outdir, mesh=size, **kwargs)
    except NeurotileError as error:
        raise click.ClickException(str(error)) from None
    click.echo(result.summary())
