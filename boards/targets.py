"""The FPGA boards neurotile builds for: one registry, :data:`TARGETS`.

Each :class:`Target` names the amaranth-boards platform, the architecture profile
(:data:`neurotile.PROFILES`) its cores use, the device's capacity, the board resources the
:class:`~neurotile.boards.top.BoardTop` uses (USB-serial UART, LEDs, reset button) and the flow
that turns the design into a bitstream:

================  ==================  ===========  ==============================================
target            device              flow         bitstream
================  ==================  ===========  ==============================================
``icebreaker``    iCE40UP5K-SG48      ``ice40``    yosys + nextpnr-ice40 + icepack (YoWASP): .bin
``ulx3s-85f``     LFE5U-85F-6BG381    ``ecp5``     yosys + nextpnr-ecp5 + ecppack (YoWASP): .bit
``arty-a7-35``    XC7A35T-1LCSG324    ``vivado``   RTL + XDC + Tcl only: needs AMD Vivado
``tang-nano-9k``  GW1NR-LV9QN88PC6/I5 ``gowin``    RTL + CST + SDC only: needs Gowin EDA (gw_sh)
================  ==================  ===========  ==============================================

Resource estimates
------------------
:func:`estimate` predicts the block RAMs and logic of a chip on a target before any tool runs,
so the build can start its mesh search at a size that might fit. Block RAMs are counted from the
memories of the elaborated design itself (every ``Memory`` with its depth, width and ports), each
mapped onto the target's block RAM shapes the way yosys' ``memory_libmap`` does for a 1R1W
memory: the cheapest aspect ratio, ``ceil(depth / d) * ceil(width / w)`` blocks. Memories with
asynchronous reads (the FIFOs), the target's ``distributed`` ones and memories of at most
``lutram_bits`` bits (unless the target lists them in ``block``) stay out of block RAM. On a
target with SPRAMs (``capacity["spram"]``) and
an Arch with ``synapse_ram="spram"`` each core's synapse memory is counted in SPRAM blocks
(:func:`~neurotile.hdl.spram.spram_blocks`) instead. Logic is a linear model, ``logic_fixed +
logic_per_core * cores``, calibrated from measured builds (docs/boards.md).
"""

import dataclasses
import importlib
import math

from ..compiler.arch import Arch, PROFILES
from ..compiler.errors import NeurotileTypeError, NeurotileValueError

__all__ = ["Target", "TARGETS", "get_target", "target_names", "Estimate", "estimate",
           "design_memories", "blocks_for", "FLOWS", "BoardError"]


class BoardError(NeurotileValueError):
    """A board build that cannot be done: unknown board, mesh too big, missed timing, no tool."""


#: Flows: those with ``bitstream=True`` run here with the YoWASP tools from PyPI; the others
#: write the RTL and constraints for a vendor tool.
FLOWS = {
    "ice40": dict(bitstream=True, tool="yosys, nextpnr-ice40 and icepack (YoWASP)"),
    "ecp5": dict(bitstream=True, tool="yosys, nextpnr-ecp5 and ecppack (YoWASP)"),
    "vivado": dict(bitstream=False, tool="AMD Vivado (vivado on PATH, or AMARANTH_ENV_VIVADO "
                                         "naming its settings script)"),
    "gowin": dict(bitstream=False, tool="Gowin EDA (gw_sh on PATH, or AMARANTH_ENV_GOWIN naming "
                                        "its settings script)"),
}


@dataclasses.dataclass(frozen=True)
class Target:
    """One board neurotile can be built for.

    Members
    -------
    name : str
        Registry key and ``--board`` value, e.g. ``"ulx3s-85f"``.
    title : str
        Board name for people.
    platform : str
        ``"module:Class"`` of the amaranth-boards platform (imported on use).
    device : str
        FPGA part, for reports.
    family : str
        ``"ice40"``, ``"ecp5"``, ``"xilinx7"`` or ``"gowin"``.
    flow : str
        A key of :data:`FLOWS`.
    profile : str
        Architecture profile of :data:`neurotile.PROFILES` the cores use.
    capacity : dict
        Device resources: ``lut`` (logic cells / LUTs), ``ff``, ``bram`` (blocks), ``dsp``, and
        ``spram`` (iCE40 UltraPlus single-port RAMs) where the device has them.
    lut_kind, bram_kind : str
        What one ``lut`` and one ``bram`` is on this device, for reports.
    bram_shapes : tuple of (depth, width)
        Aspect ratios of one block RAM (simple dual port).
    lutram_bits : int
        Largest memory (bits) expected in distributed RAM or logic instead of block RAM.
    logic_fixed, logic_per_core : int
        Logic model of :func:`estimate` (LUTs), calibrated from builds.
    synth_opts : str
        Options the build gives ``synth_<family>``.
    nextpnr_opts : str
        Options the build gives nextpnr (before the user's own).
    distributed : tuple of str
        Memories (by name in the design, e.g. ``"mem_neuron_state"``) the build places in
        distributed (LUT) RAM rather than block RAM, with yosys' ``ram_style`` attribute.
    block : tuple of str
        Memories the build places in block RAM although they are small enough for logic
        (``ram_style = "block"``).
    registers : tuple of str
        Memories the build keeps in flip-flops (``ram_style = "logic"``), e.g. ``"storage"``,
        the FIFOs, to leave the LUT RAM to the larger memories.
    uart : (str, int)
        Resource of the USB-serial UART.
    leds : ((str, int), (str, int))
        Heartbeat and error LEDs.
    reset_button : (str, int) or None
        Button that resets the chip; ``None`` where the platform's default reset (``default_rst``)
        already does it.
    baud : int
        Default UART baud rate.
    toolchain : str or None
        ``toolchain=`` argument of the platform, if not its default.
    registered_bus : bool
        Register the chip's host bus at the chip and at every core (``registered_bus`` of
        :class:`~neurotile.hdl.chip.Chip`): off only where the device is too small for the
        extra flip-flops.
    notes : str
        Board facts worth knowing (printed by ``neurotile build``).
    """

    name: str
    title: str
    platform: str
    device: str
    family: str
    flow: str
    profile: str
    capacity: dict
    lut_kind: str
    bram_kind: str
    bram_shapes: tuple
    lutram_bits: int
    logic_fixed: int
    logic_per_core: int
    synth_opts: str = ""
    nextpnr_opts: str = ""
    distributed: tuple = ()
    block: tuple = ()
    registers: tuple = ()
    uart: tuple = ("uart", 0)
    leds: tuple = (("led", 0), ("led", 1))
    reset_button: tuple = ("button", 0)
    baud: int = 115200
    toolchain: str = None
    registered_bus: bool = True
    notes: str = ""

    def __post_init__(self):
        if self.flow not in FLOWS:
            raise NeurotileValueError(f"Target.flow must be one of {', '.join(FLOWS)}, "
                                      f"not {self.flow!r}")
        if self.profile not in PROFILES:
            raise NeurotileValueError(f"Target.profile must be one of {', '.join(PROFILES)}, "
                                      f"not {self.profile!r}")

    @property
    def bitstream(self):
        """Whether this machine can make the bitstream (YoWASP flows)."""
        return FLOWS[self.flow]["bitstream"]

    @property
    def tool(self):
        return FLOWS[self.flow]["tool"]

    def arch(self, mesh=None):
        """The target's architecture profile, on ``mesh`` = (w, h) if given."""
        arch = Arch.profile(self.profile)
        return arch if mesh is None else arch.with_mesh(*mesh)

    def platform_class(self):
        """The amaranth-boards platform class (imports amaranth-boards)."""
        module, _, cls = self.platform.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except ImportError as error:
            raise BoardError(f"board {self.name!r} needs amaranth-boards ({error}); "
                             f"pip install 'neurotile[boards]'") from None

    def make_platform(self):
        """A new instance of the board's platform."""
        cls = self.platform_class()
        return cls() if self.toolchain is None else cls(toolchain=self.toolchain)

    @property
    def clk_hz(self):
        """Frequency of the board oscillator the design runs from (no PLL)."""
        return float(self.make_platform().default_clk_frequency)


_ECP5_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))

#: Every board, by name.
TARGETS = {t.name: t for t in [
    Target(
        name="icebreaker", title="1BitSquared iCEBreaker",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
        device="iCE40UP5K-SG48", family="ice40", flow="ice40", profile="ice40up5k",
        capacity={"lut": 5280, "ff": 5280, "bram": 30, "dsp": 8, "spram": 4},
        lut_kind="logic cells (LUT4 + FF)", bram_kind="EBR (4 kbit)",
        # No distributed RAM: only tiny memories (at most 240 bits) would end in logic; the
        # 128 x 2 neuron_cfg (256 bits) takes an EBR, and so does the 4 x 57-bit profile table
        # (`block`). The synapse memory is in SPRAM (Arch.synapse_ram, capacity "spram").
        bram_shapes=((2048, 2), (1024, 4), (512, 8), (256, 16)), lutram_bits=240,
        # Measured (yosys + nextpnr packing): the 1x1 board design needed 5114 logic cells (also
        # after place and route; 5009 at 1655569), the 2x1 7507, so a core with
        # its router costs about 2390.
        logic_fixed=2720, logic_per_core=2390,
        # The neuron datapath's two multipliers (loihi decay, 4 SB_MAC16) and the host port's go
        # to the UP5K's 8 SB_MAC16s: 1564 fewer LUTs for the 1x1 chip (measured).
        synth_opts="-dsp",
        # The 4 x 57-bit profile table in 4 EBRs rather than 228 flip-flops and their read mux.
        block=("mem_profile",),
        # The registered host bus costs a few hundred flip-flops (2x2 ECP5: about 670); the 1x1
        # leaves 246 cells free, and its one core is close to the host port anyway.
        registered_bus=False,
        leds=(("led_g", 0), ("led_r", 0)), reset_button=("button", 0),
        notes="12 MHz oscillator; FTDI FT2232H channel B is the UART (pins 6/9); user button "
              "resets the chip; green LED heartbeat, red LED error. Each core's synapse memory "
              "is 2 of the UP5K's 4 SPRAMs, which have no initial contents: the host loads "
              "images over the UART (no --image)."),
    Target(
        name="ulx3s-85f", title="Radiona ULX3S (LFE5U-85F)",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        device="LFE5U-85F-6BG381C", family="ecp5", flow="ecp5", profile="ecp5-85f",
        capacity={"lut": 83640, "ff": 83640, "bram": 208, "dsp": 156},
        lut_kind="LUT4", bram_kind="DP16KD (18 kbit)",
        # neuron_cfg (384 bits) and the spike queue (896) go to LUT RAM (measured: 17 DP16KD for
        # 1x1, the estimate's count).
        bram_shapes=_ECP5_SHAPES, lutram_bits=1024,
        # Measured TRELLIS_COMB: 5541 (1x1) and 14358 (2x2) with every memory in block RAM, so
        # 2939 per core; neuron_state in LUT RAM adds 1163 per core (1x1: 6704).
        logic_fixed=2602, logic_per_core=4102,
        # neuron_state (128 x 48) in LUT RAM frees 2 of a core's 13 DP16KD, so 16 cores take
        # 16 x 11 + 3 = 179 of 208 (in block RAM: 211).
        distributed=("mem_neuron_state",),
        # The 2-entry FIFOs of routers and cores in flip-flops, not in 16-entry LUT RAM: that
        # leaves the LUT RAM to the memories it suits (the 4x4 used 94 % of it).
        registers=("storage",),
        # The 4x4 (72 % of the LUTs, 86 % of the block RAMs) routes in about 20 minutes with
        # router2 when it converges (on some placements its overuse grows again: docs/boards.md);
        # router1 had routed a quarter of its arcs after 10 minutes, half after 28.
        nextpnr_opts="--router router2",
        leds=(("led", 0), ("led", 7)), reset_button=("button_fire", 0),
        notes="25 MHz oscillator; FTDI FT231X is the UART (M1/L4); FIRE1 resets the chip; LED 0 "
              "heartbeat, LED 7 error. Programming: openFPGALoader -b ulx3s top.bit."),
    Target(
        name="arty-a7-35", title="Digilent Arty A7-35T",
        platform="amaranth_boards.arty_a7:ArtyA7_35Platform",
        device="XC7A35TICSG324-1L", family="xilinx7", flow="vivado", profile="ecp5-85f",
        capacity={"lut": 20800, "ff": 41600, "bram": 100, "dsp": 90},
        lut_kind="LUT6", bram_kind="RAMB18 (18 kbit)",
        bram_shapes=_ECP5_SHAPES, lutram_bits=1024,
        # Not measured (no Vivado here): the ECP5 figures with memories in block RAM, scaled by
        # 0.7 for 6-input LUTs.
        logic_fixed=1800, logic_per_core=2050,
        leds=(("led", 0), ("led", 3)), reset_button=None,
        notes="100 MHz oscillator; FTDI FT2232HQ channel B is the UART (A9/D10); the red RESET "
              "button is the platform's default reset; LD4 heartbeat, LD7 error."),
    Target(
        name="tang-nano-9k", title="Sipeed Tang Nano 9K",
        platform="amaranth_boards.tang_nano_9k:TangNano9kPlatform",
        device="GW1NR-LV9QN88PC6/I5", family="gowin", flow="gowin", profile="ecp5-85f",
        capacity={"lut": 8640, "ff": 6480, "bram": 26, "dsp": 20},
        lut_kind="LUT4", bram_kind="BSRAM (18 kbit)",
        bram_shapes=_ECP5_SHAPES, lutram_bits=1024,
        # Not measured (no Gowin EDA here): the ECP5 LUT4 figures, memories in block RAM.
        logic_fixed=2602, logic_per_core=2939,
        leds=(("led", 0), ("led", 5)), reset_button=("button", 0), toolchain="Gowin",
        notes="27 MHz oscillator; the BL702 USB bridge is the UART (pins 18/17); S1 resets the "
              "chip; LED 0 heartbeat, LED 5 error."),
]}


def target_names():
    return sorted(TARGETS)


def get_target(name):
    """The :class:`Target` called ``name`` (a Target is returned as is).

    Raises
    ------
    BoardError
        No such board; the message lists the known ones.
    """
    if isinstance(name, Target):
        return name
    if not isinstance(name, str):
        raise NeurotileTypeError(f"board must be a board name or a Target, not {name!r}")
    try:
        return TARGETS[name]
    except KeyError:
        raise BoardError(f"unknown board {name!r}; known boards: {', '.join(target_names())}") \
            from None


# -- resource estimate -----------------------------------------------------------------------------

def design_memories(elaboratable):
    """Every memory of an elaborated design: ``(path, depth, width, sync_reads, ports)``.

    The design is elaborated without a platform, so the figures are those of the RTL that
    synthesis will see (the estimate never keeps a second list of the chip's memories).
    """
    from amaranth.hdl import Fragment, Shape
    from amaranth.hdl._mem import MemoryInstance         # amaranth 0.5: the elaborated Memory

    out = []

    def walk(frag, path):
        if isinstance(frag, MemoryInstance):
            data = frag._data
            sync = all(p._domain != "comb" for p in frag._read_ports)
            ports = len(frag._read_ports) + len(frag._write_ports)
            out.append((path, data.depth, Shape.cast(data.shape).width, sync, ports))
        for sub, name, _ in frag.subfragments:
            walk(sub, f"{path}/{name}" if path else str(name))

    walk(Fragment.get(elaboratable, None), "")
    return out


def _memory_name(path):
    """A memory's name: its submodule name, or that of the
    :class:`~neurotile.hdl.spram.SinglePortMemory` around it (whose ``Memory`` is ``memory``)."""
    parts = path.split("/")
    return parts[-2] if parts[-1] == "memory" and len(parts) > 1 else parts[-1]


def blocks_for(depth, width, shapes):
    """Block RAMs for one 1R1W memory: the best of ``ceil(depth/d) * ceil(width/w)``.

    >>> blocks_for(2048, 20, ((2048, 2), (1024, 4), (512, 8), (256, 16)))
    10
    """
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in shapes)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Predicted use of a target by a chip (:func:`estimate`).

    Members
    -------
    mesh : (int, int)
    bram, lut : int
        Predicted block RAMs and logic (the target's ``bram_kind`` / ``lut_kind``).
    bram_detail : dict
        Block RAMs per memory name (summed over cores).
    spram : int
        SPRAM blocks (iCE40 UltraPlus) of the memories placed there (``Arch.synapse_ram``).
    """

    mesh: tuple
    bram: int
    lut: int
    bram_detail: dict
    spram: int = 0

    def fits(self, target, logic_margin=1.0):
        """Block RAMs and SPRAMs within the target's, logic within ``logic_margin`` times its
        capacity."""
        cap = target.capacity
        return (self.bram <= cap["bram"] and self.spram <= cap.get("spram", 0)
                and self.lut <= cap["lut"] * logic_margin)


def estimate(target, arch, *, max_payload=None):
    """Predict the block RAMs and logic of a chip of ``arch`` on ``target`` (module docstring)."""
    from ..hdl.chip import Chip

    from ..hdl.spram import spram_blocks

    target = get_target(target)
    kwargs = {} if max_payload is None else {"max_payload": max_payload}
    in_spram = ("mem_synapse",) if (arch.synapse_ram == "spram"
                                    and target.capacity.get("spram", 0)) else ()
    detail = {}
    spram = 0
    for path, depth, width, sync, _ in design_memories(Chip(arch, **kwargs)):
        name = _memory_name(path)
        if name in in_spram:
            spram += spram_blocks(depth, width)
            continue
        if name in target.distributed or not sync or (depth * width <= target.lutram_bits
                                                      and name not in target.block):
            continue
        detail[name] = detail.get(name, 0) + blocks_for(depth, width, target.bram_shapes)
    lut = target.logic_fixed + target.logic_per_core * arch.n_cores
    return Estimate((arch.mesh_w, arch.mesh_h), sum(detail.values()), lut, detail, spram)
