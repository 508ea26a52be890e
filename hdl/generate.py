"""Write a chip as Verilog, with the memory map and host protocol a host or test bench needs.

:func:`generate` is what ``neurotile rtl`` runs: it builds :class:`~neurotile.hdl.chip.Chip` for an
architecture (empty memories, loaded later through the host port) or for a chip image (memories
initialised from it), converts it with :func:`amaranth.back.verilog.convert`, and writes

``chip.v``
    The whole design in one file, top module ``chip`` (see :func:`top_ports` for its ports).
``memory_map.json``
    :func:`memory_map`: the architecture, the top-level ports, every memory of a core (depth,
    word width, fields from ``arch.layouts.table()``), the host buffers, the counter map and the
    host protocol (:func:`neurotile.hdl.protocol.protocol_description`).
"""

import contextlib
import dataclasses
import json
import os
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

from ..compiler.arch import PROFILES, Arch
from ..compiler.errors import NeurotileTypeError, NeurotileValueError
from ..compiler.image import ChipImage
from . import protocol as P
from .chip import Chip
from .core import memory_depths
from .hostport import DEFAULT_FRAME_TIMEOUT

__all__ = ["generate", "resolve_target", "memory_map", "top_ports", "core_memory_bits",
           "Generated", "MAP_FORMAT", "MAP_VERSION", "CLOCK", "RESET"]

#: ``format`` and ``version`` of ``memory_map.json``.
MAP_FORMAT = "neurotile-memory-map"
MAP_VERSION = 1
#: Names Amaranth gives the clock and the (synchronous, active-high) reset of the ``sync`` domain.
CLOCK, RESET = "clk", "rst"


def resolve_target(target, mesh=None):
    """The ``(arch, image)`` to build: ``image`` is None for a bare architecture.

    Parameters
    ----------
    target : ChipImage, Arch, str or path
        A chip image, an architecture, the path of a saved chip image (:meth:`ChipImage.save`), or
        the name of an architecture profile (:data:`~neurotile.compiler.arch.PROFILES`, or
        ``"default"`` for ``nt.Arch()``).
    mesh : (int, int), optional
        Mesh size ``(w, h)`` replacing the architecture's; not allowed with an image (an image is
        placed on its own mesh).

    Raises
    ------
    NeurotileTypeError
        ``target`` is of another kind.
    NeurotileValueError
        ``mesh`` with an image; ``target`` neither a file nor a profile name.
    ImageError, ArchError
        An unreadable image file; a bad mesh size.
    """
    image = None
    if isinstance(target, ChipImage):
        image = target
    elif isinstance(target, Arch):
        arch = target
    elif isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if Path(text).is_file():
            image = ChipImage.load(text)
        elif text == "default":
            arch = Arch(name="default")
        elif text in PROFILES:
            arch = Arch.profile(text)
        else:
            known = ", ".join(sorted([*PROFILES, "default"]))
            raise NeurotileValueError(f"{text!r} is neither a chip image file nor an architecture "
                                      f"profile; profiles: {known}")
    else:
        raise NeurotileTypeError(f"target must be a ChipImage, an Arch, an image path or a profile "
                                 f"name, not {target!r}")
    if image is not None:
        if mesh is not None and tuple(mesh) != (image.arch.mesh_w, image.arch.mesh_h):
            raise NeurotileValueError(f"the image is placed on a {image.arch.mesh_w}x"
                                      f"{image.arch.mesh_h} mesh; recompile the network for "
                                      f"another mesh instead of passing a mesh size")
        return image.arch, image
    if mesh is not None:
        arch = arch.with_mesh(*mesh)
    return arch, None


def top_ports(chip):
    """The top-level ports of ``chip`` as Verilog sees them: a list of (name, direction, width).

    Amaranth names a port after its path in the signature joined with ``__`` (``rx__valid``); the
    ``sync`` domain adds the clock and reset first.
    """
    ports = [(CLOCK, "input", 1), (RESET, "input", 1)]
    for path, member, value in chip.signature.flatten(chip):
        direction = "input" if member.flow == wiring.In else "output"
        ports.append(("__".join(str(p) for p in path), direction, len(value)))
    return ports


def memory_map(arch, ports=None, *, max_payload=P.DEFAULT_MAX_PAYLOAD,
               frame_timeout=DEFAULT_FRAME_TIMEOUT):
    """Everything about the generated chip's memories and host interface, as JSON-ready data.

    ``ports`` (from :func:`top_ports`) and the host port's ``max_payload`` and ``frame_timeout``
    are recorded as given.
    """
    if not isinstance(arch, Arch):
        raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
    lay = arch.layouts
    depths = memory_depths(arch)
    fields = {}
    for name, field, lsb, width, signed in lay.table():
        fields.setdefault(name, []).append(
            {"name": field, "lsb": lsb, "width": width, "signed": bool(signed)})
    memories = {name: {"id": P.MEMORIES.index(name), "depth": depths[name],
                       "width": lay[name].size, "fields": fields[name]}
                for name in P.MEMORIES}
    info = P.target_info(arch)
    packet = {"width": lay.packet.size, "fields": fields["packet"]}
    return {
        "format": MAP_FORMAT,
        "version": MAP_VERSION,
        "arch": arch.to_dict(),
        "top": {
            "module": "chip",
            "clock": CLOCK,
            "reset": f"{RESET} (synchronous, active high)",
            "ports": [{"name": n, "direction": d, "width": w} for n, d, w in (ports or [])],
        },
        "packet": packet,
        "core_memories": memories,
        "core_registers": [{"name": r.name, "addr": r.addr, "writable": r.writable}
                           for r in P.CORE_REGISTERS],
        "host_buffers": {
            "inject": {"depth": arch.host_in_depth, "width": lay.packet.size},
            "output": {"depth": arch.host_out_depth,
                       "width": info["output"].mask.bit_length(),
                       "entry": f"packet | step_offset << {8 * info['inject'].nbytes}"},
        },
        "chip_registers": [{"name": r.name, "addr": r.addr, "writable": r.writable}
                           for r in P.CHIP_REGISTERS],
        "counters": P.counter_map(arch),
        "protocol": P.protocol_description(arch, max_payload=max_payload,
                                           frame_timeout=frame_timeout),
    }


@dataclasses.dataclass
class Generated:
    """What :func:`generate` wrote.

    Members
    -------
    arch : Arch
    image : ChipImage or None
    verilog : Path
    memory_map : Path
    ports : list of (str, str, int)
    lines : int
        Lines of Verilog.
    max_payload : int
        The host port's payload buffer in bytes.
    """

    arch: Arch
    image: object
    verilog: Path
    memory_map: Path
    ports: list
    lines: int
    max_payload: int

    def summary(self):
        """A few lines for the terminal."""
        a = self.arch
        bits = sum(core_memory_bits(a).values())
        source = "memories from the chip image" if self.image is not None else \
            "empty memories (load an image through the host port)"
        ports = ", ".join(f"{n}[{w}]" if w > 1 else n for n, _, w in self.ports)
        cores = "1 core" if a.n_cores == 1 else f"{a.n_cores} cores"
        return "\n".join([
            f"chip for Arch {a.name!r}: {a.mesh_w}x{a.mesh_h} mesh, {cores} of "
            f"{a.neurons_per_core} neurons, {source}",
            f"memory per core: {bits} bits ({bits / 8192:.1f} KiB); host buffers "
            f"{a.host_in_depth} in / {a.host_out_depth} out packets",
            f"top module chip, ports: {ports}",
            f"host protocol v{P.PROTOCOL_VERSION}, max payload {self.max_payload} bytes",
            f"wrote {self.verilog} ({self.lines} lines) and {self.memory_map}",
        ])


def core_memory_bits(arch):
    """Bits of each memory of one core."""
    lay = arch.layouts
    return {name: depth * lay[name].size for name, depth in memory_depths(arch).items()}


@contextlib.contextmanager
def _builtin_yosys():
    # Amaranth's Verilog must come from the bundled yosys, not whichever one is on PATH.
    old = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        yield
    finally:
        if old is None:
            del os.environ["AMARANTH_USE_YOSYS"]
        else:
            os.environ["AMARANTH_USE_YOSYS"] = old


def generate(target, outdir, *, mesh=None, max_payload=P.DEFAULT_MAX_PAYLOAD,
             frame_timeout=DEFAULT_FRAME_TIMEOUT):
    """Write ``chip.v`` and ``memory_map.json`` for ``target`` into ``outdir`` (created if needed).

    Parameters
    ----------
    target
        See :func:`resolve_target`.
    outdir : str or path
    mesh : (int, int), optional
        See :func:`resolve_target`.
    max_payload, frame_timeout : int
        The host port's payload buffer and partial-frame timeout (:class:`~.chip.Chip`).

    Returns
    -------
    Generated
    """
    arch, image = resolve_target(target, mesh)
    chip = Chip(arch, image, max_payload=max_payload, frame_timeout=frame_timeout)
    ports = top_ports(chip)
    with _builtin_yosys():
        text = verilog.convert(chip, name="chip")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    vpath = out / "chip.v"
    vpath.write_text(text)
    mpath = out / "memory_map.json"
    mpath.write_text(json.dumps(memory_map(arch, ports, max_payload=max_payload,
                                           frame_timeout=frame_timeout), indent=2) + "\n")
    return Generated(arch, image, vpath, mpath, ports, text.count("\n"), max_payload)
