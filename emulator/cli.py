"""Command-line commands of the emulator: ``neurotile demo`` (registered in ``__main__.COMMANDS``)."""

import click

__all__ = ["demo_cmd"]


@click.command("demo")
@click.option("--out", "out", default="neurotile-demo", show_default=True,
              type=click.Path(file_okay=False, writable=True),
              help="Folder for the plots (created if needed).")
@click.option("--n-test", type=click.IntRange(min=1), default=None, metavar="N",
              help="Test digits to emulate. Default: the whole held-out split (360).")
@click.option("--cosim-digits", type=click.IntRange(min=0), default=3, show_default=True, metavar="K",
              help="Test digits to co-simulate on the RTL in Verilator.")
@click.option("--no-cosim", is_flag=True, help="Skip the RTL co-simulation.")
@click.option("--model", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A NIR file written by examples/train_digits.py instead of the shipped model.")
def demo_cmd(out, n_test, cosim_digits, no_cosim, model):
    """Run the whole flow on a spiking digit classifier, in one command.

    Imports the shipped NIR model (a 64-96-10 LIF network trained on scikit-learn's 8x8
    digits), quantizes it and prints the quantization report, compiles it for a 2x2 mesh and
    prints the resource report, emulates the held-out test digits (float model vs integer
    chip accuracy, spikes, cycles and energy per inference), co-simulates a few digits on the
    generated RTL in Verilator to confirm it is bit-exact, and writes a spike raster, a map of
    synaptic operations per core and an accuracy chart into --out.

    Exits with status 1 if the co-simulated RTL differs from the emulator; a missing simulator
    is reported and skipped.
    """
    from ..compiler.errors import NeurotileError
    from .demo import run_demo

    try:
        result = run_demo(out, n_test=n_test, cosim_digits=cosim_digits, cosim=not no_cosim, model=model,
                          echo=click.echo)
    except NeurotileError as error:
        raise click.ClickException(str(error)) from None
    if not result.ok:
        raise click.ClickException(f"the RTL differs from the emulator: {result.cosim_detail}")
