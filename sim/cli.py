"""``neurotile cosim``: run a chip image on the simulated chip and on the emulator, and compare them.

Registered in ``__main__.COMMANDS``.
"""

import click

from ..compiler.errors import NeurotileError

__all__ = ["cosim_cmd", "load_inputs"]


def load_inputs(path):
    """The input spikes stored in an ``.npz`` file: one array ``[steps, n]`` per input group name.

    Raises
    ------
    click.BadParameter
        The file is not a readable ``.npz`` archive.
    """
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in data.files}
    except (OSError, ValueError) as error:
        raise click.BadParameter(f"{path!r} is not a readable .npz file of input arrays ({error})",
                                 param_hint="'--inputs'") from None


@click.command("cosim")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--inputs", "inputs_path", type=click.Path(exists=True, dir_okay=False),
              default=None, metavar="FILE",
              help="Input spikes: an .npz file with one bool (or 0/1) array [steps, n] per input "
                   "group, named as the image's inputs (numpy.savez('in.npz', in=spikes)). "
                   "Groups left out are silent.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Steps to run (default: the length of the input arrays).")
@click.option("--waveform", type=click.Path(dir_okay=False, writable=True), default=None,
              help="On a divergence, simulate again and write the steps around it to this file "
                   "(FST; VCD if it ends in .vcd).")
@click.option("--window", type=click.IntRange(min=0), default=2, show_default=True,
              help="Steps recorded on each side of the divergent one.")
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator",
              show_default=True)
@click.option("--build-dir", type=click.Path(file_okay=False), default=None,
              help="Cache of simulator builds (default ~/.cache/neurotile/verilator).")
def cosim_cmd(image, inputs_path, steps, waveform, window, simulator, build_dir):
    """Check the generated chip against the emulator, bit for bit and cycle for cycle.

    Builds the chip for IMAGE's architecture (cached), loads IMAGE through the host port, runs
    the inputs one step at a time and compares the output spikes, every counter of every step
    (cycles included) and the sticky flags with the emulator's cycle mode. Prints
    "bit-exact over N steps, M spikes, C cycles", or the first divergence (exit status 1).
    """
    from .cosim import compare_with_emulator

    inputs = load_inputs(inputs_path) if inputs_path is not None else None
    try:
        result = compare_with_emulator(image, inputs, steps, waveform=waveform, window=window,
                                       simulator=simulator, build_dir=build_dir)
    except NeurotileError as error:
        raise click.ClickException(str(error)) from None
    click.echo(str(result))
    if not result.exact:
        raise SystemExit(1)
