"""The mesh: ``mesh_w x mesh_h`` neuron cores, each behind a five-port router, wired N/E/S/W.

The mesh is everything of docs/architecture.md sections 3 to 6 that is replicated per core; the
step controller, the host injector, the host buffers and the counters of section 7 and 8 live in
:mod:`neurotile.hdl.chip`. The host link is the W port of router (0, 0): ``host_in`` feeds its W
input FIFO, ``host_out`` is its W output (the host exit), which the chip keeps always ready.

Wiring (router ``r = y * mesh_w + x``; ports 0 = N, 1 = E, 2 = S, 3 = W, 4 = L)::

    router(x, y).outputs[E] -> router(x + 1, y).inputs[W]      router(x + 1, y).outputs[W] -> router(x, y).inputs[E]
    router(x, y).outputs[S] -> router(x, y + 1).inputs[N]      router(x, y + 1).outputs[N] -> router(x, y).inputs[S]
    core(x, y).spikes_out   -> router(x, y).inputs[L]          router(x, y).outputs[L]     -> core(x, y).packets_in
    host_in                 -> router(0, 0).inputs[W]          router(0, 0).outputs[W]     -> host_out

Ports at the mesh edge stay unconnected (a router's missing ports are never ready, never valid).
"""

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..compiler.arch import Arch
from ..compiler.errors import ImageError, NeurotileTypeError
from ..compiler.image import ChipImage
from .bitwise import all_of, any_of
from .core import FLAG_LAYOUT, ConfigSignature, NeuronCore, counter_layout
from .router import Router
from .router_model import E, L, N, NUM_PORTS, S, W

__all__ = ["Mesh", "check_image"]


def check_image(arch, image):
    """Check that ``image`` (a :class:`ChipImage` or None) was compiled for ``arch``; return it.

    The architectures must agree in every field except ``name`` (a profile's label).

    Raises
    ------
    NeurotileTypeError
        ``arch`` is not an Arch, or ``image`` is neither None nor a ChipImage.
    ImageError
        The image was compiled for another architecture (the message names the first difference).
    """
    if not isinstance(arch, Arch):
        raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
    if image is None:
        return None
    if not isinstance(image, ChipImage):
        raise NeurotileTypeError(f"image must be an nt.ChipImage or None, not "
                                 f"{type(image).__name__}")
    mine, theirs = arch.to_dict(), image.arch.to_dict()
    for field in mine:
        if field != "name" and mine[field] != theirs[field]:
            raise ImageError(f"the image was compiled for an Arch with {field}="
                             f"{theirs[field]!r}, but this chip has {field}={mine[field]!r}; "
                             f"build the chip from image.arch or recompile the network")
    return image


def _popcount(bits):
    """The number of set bits among ``bits`` (1-bit values), as a balanced adder tree."""
    values = list(bits)
    if not values:
        return 0
    while len(values) > 1:
        values = [values[k] + values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


class Mesh(wiring.Component):
    """``mesh_w x mesh_h`` :class:`~.core.NeuronCore` s and :class:`~.router.Router` s (section 6).

    Parameters
    ----------
    arch : Arch
    image : ChipImage, optional
        Initial contents of every core's memories and registers (``image.core(x, y)``); zeros (no
        neurons, no axons) if omitted. Must be compiled for ``arch`` (see :func:`check_image`).

    Members
    -------
    host_in : ``In(stream.Signature(arch.layouts.packet))``
        Packets the host injects: the W input of router (0, 0) (``ready`` is its FIFO's room).
    host_out : ``Out(stream.Signature(arch.layouts.packet))``
        Host-bound packets: the W output of router (0, 0), the host exit. Its downstream must be
        always ready (section 7); the chip's output buffer is.
    cfg : ``In(ConfigSignature(arch)).array(n_cores)``
        The host configuration port of each core, index ``y * mesh_w + x``.
    step : ``In(arch.delay_bits)``
        The step number t (low bits), sampled by every core with ``start_update``.
    start_update, start_spike : ``In(n_cores)``
        Phase pulses (see :mod:`neurotile.hdl.core`), bit ``c`` to core ``c``. The controller
        sets every bit alike; one line per core lets each come from a flip-flop of its own.
    arb_reset : ``In(n_cores)``
        Bit ``c`` to router ``c``: round-robin pointers back to 4 (L).
    clear_routes : ``In(1)``
        Resets every router (its sticky ``bad_route``; its FIFOs, which are empty between steps,
        and its pointers, which ``arb_reset`` sets again before the next SPIKE phase). Only
        between steps.
    idle : ``Out(1)``
        Every core's ``idle`` and every router's ``idle`` (the mesh part of the barrier).
    bad_route : ``Out(1)``
        Some router's sticky ``bad_route``.
    transfers : ``Out(5).array(n_cores)``
        Per router, bit ``o`` is set in the cycle after a packet left through output ``o``
        (N, E, S, W, L): a register next to each router, so that the chip's link counters count
        from registers, not from a router's arbiters across the die.
    hop_count : ``Out(range(4 * n_cores + 1))``
        Transfers on N, E, S and W outputs, except the host exit of router (0, 0) (section 8
        ``hops``), in the previous cycle: each router's are counted into a register of its own,
        so the sum over the mesh starts from registers.
    counters : ``Out(counter_layout(arch)).array(n_cores)``
        Each core's per-step counters.
    flags : ``Out(FLAG_LAYOUT).array(n_cores)``
        Each core's sticky ``bad_axon`` and ``acc_sat``.
    cores, routers : list
        The submodules, index ``y * mesh_w + x``.

    Raises
    ------
    NeurotileTypeError
        ``arch`` is not an Arch or ``image`` not a ChipImage.
    ImageError
        ``image`` belongs to another architecture, or a core's tables do not fit.
    """

    def __init__(self, arch, image=None):
        try:
            self.image = check_image(arch, image)
        except Exception:
            self._MustUse__silence = True
            raise
        self.arch = arch
        a = arch
        w, h = a.mesh_w, a.mesh_h
        packet = a.layouts.packet
        self.cores, self.routers = [], []
        try:
            for c in range(a.n_cores):
                x, y = c % w, c // w
                self.cores.append(NeuronCore(a, None if image is None else image.core(x, y)))
                self.routers.append(Router(x=x, y=y, mesh_w=w, mesh_h=h, packet_layout=packet,
                                           fifo_depth=a.fifo_depth))
        except Exception:
            self._MustUse__silence = True
            raise
        n = a.n_cores
        super().__init__({
            "host_in": In(stream.Signature(packet)),
            "host_out": Out(stream.Signature(packet)),
            "cfg": In(ConfigSignature(a)).array(n),
            "step": In(a.delay_bits),
            "start_update": In(n),
            "start_spike": In(n),
            "arb_reset": In(n),
            "clear_routes": In(1),
            "idle": Out(1),
            "bad_route": Out(1),
            "transfers": Out(NUM_PORTS).array(n),
            "hop_count": Out(range(4 * n + 1)),
            "counters": Out(counter_layout(a)).array(n),
            "flags": Out(FLAG_LAYOUT).array(n),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        w, h = a.mesh_w, a.mesh_h
        cores, routers = self.cores, self.routers
        for c, (core, router) in enumerate(zip(cores, routers)):
            m.submodules[f"core_{c}"] = core
            # Reset only by `clear_routes` (and the domain reset): see the member description.
            m.submodules[f"router_{c}"] = ResetInserter(self.clear_routes)(router)
            wiring.connect(m, core.spikes_out, router.inputs[L])
            wiring.connect(m, router.outputs[L], core.packets_in)
            wiring.connect(m, wiring.flipped(self.cfg[c]), core.cfg)
            m.d.comb += [
                core.step.eq(self.step),
                core.start_update.eq(self.start_update[c]),
                core.start_spike.eq(self.start_spike[c]),
                router.arb_reset.eq(self.arb_reset[c]),
                self.counters[c].eq(core.counters),
                self.flags[c].eq(core.flags),
            ]
        for y in range(h):
            for x in range(w):
                here = routers[y * w + x]
                if x + 1 < w:
                    east = routers[y * w + x + 1]
                    wiring.connect(m, here.outputs[E], east.inputs[W])
                    wiring.connect(m, east.outputs[W], here.inputs[E])
                if y + 1 < h:
                    south = routers[(y + 1) * w + x]
                    wiring.connect(m, here.outputs[S], south.inputs[N])
                    wiring.connect(m, south.outputs[N], here.inputs[S])
        wiring.connect(m, wiring.flipped(self.host_in), routers[0].inputs[W])
        wiring.connect(m, routers[0].outputs[W], wiring.flipped(self.host_out))

        m.d.comb += [
            self.idle.eq(all_of(u.idle for u in cores + routers)),
            self.bad_route.eq(any_of(r.bad_route for r in routers)),
        ]
        hops = []
        for c, r in enumerate(routers):
            count = Signal(range(5), name=f"hops_{c}")
            m.d.sync += count.eq(_popcount(r.transfers[o] for o in (N, E, S, W)
                                           if not (c == 0 and o == W)))
            hops.append(count)
            m.d.sync += self.transfers[c].eq(r.transfers)
        m.d.comb += self.hop_count.eq(sum(hops))
        return m
