"""Command-line commands of the compiler: inspecting chip images."""

import click

__all__ = ["report_cmd"]


@click.command("report")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--rate", "rates", type=float, multiple=True, metavar="R",
              help="Firing rate (spikes per neuron per step) to estimate traffic at; repeatable. "
                   "Default: 0.01, 0.07 and 0.1.")
def report_cmd(image, rates):
    """Print what a saved chip IMAGE uses: memories per core against capacity, the mesh map of
    where each population sits, estimated packets and hops per step, and the placement's
    traffic-weighted hop count next to a naive placement's.

    IMAGE is a file written by ChipImage.save() (nt.compile(...).save("net.ntimg")).
    """
    from .errors import NeurotileError
    from .image import ChipImage

    try:
        img = ChipImage.load(image)
        click.echo(str(img.report(rates=rates) if rates else img.report()))
    except NeurotileError as e:
        raise click.ClickException(str(e)) from None
