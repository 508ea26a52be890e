"""Build the chip for a board: bitstream, resource and timing report (``neurotile build``).

:func:`build` elaborates :class:`~neurotile.boards.top.BoardTop` for a target of
:data:`~neurotile.boards.targets.TARGETS` through amaranth's ``platform.build`` (the platform's
own build plan: RTLIL, yosys script, pin constraints and tool command lines) and, for the
``ice40`` and ``ecp5`` flows, runs the plan's three commands one at a time with the YoWASP tools
(:func:`neurotile.sim.toolchain.prepare_environment` names them):

1. yosys (``synth_ice40`` / ``synth_ecp5``), log ``top.rpt``: its closing ``stat`` gives the cell
   counts (:func:`parse_yosys_stat`). A design whose block RAMs or LUTs already exceed the device
   stops here.
2. nextpnr, log ``top.tim`` (``--timing-allow-fail``, so a slow design still reports its Fmax):
   device utilisation and the Fmax of the clock (:func:`parse_nextpnr_log`).
3. icepack / ecppack: the bitstream, ``top.bin`` (iCE40) or ``top.bit`` (ECP5).

For the vendor flows (``vivado``, ``gowin``) the plan is written out (Verilog, constraints, the
vendor's script and ``build_top.sh``) and the report says which tool makes the bitstream; its
resource figures are then the estimate of :func:`~neurotile.boards.targets.estimate`.

Mesh search
-----------
With no mesh (and no image, whose Arch fixes it) the build looks for the largest mesh that fits
and meets timing at the board clock: candidate meshes (``w >= h``, at most 2:1, largest first,
squarer first among equals) whose :func:`~neurotile.boards.targets.estimate` exceeds the
device are skipped without running a tool; the others are built in turn until one fits and
meets timing. The report's ``search`` lists every candidate and why it was rejected, and says
why the search stopped.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileTypeError, ToolchainError
from ..compiler.image import ChipImage
from ..hdl import protocol as P
from ..hdl.chip import REPLICA
from .targets import BoardError, estimate, get_target

__all__ = ["BuildReport", "build", "build_one", "build_plan", "parse_yosys_stat",
           "parse_nextpnr_log", "candidate_meshes", "BuildFailure", "DoesNotFit", "MissesTiming",
           "UTILISATION_CELLS"]

#: nextpnr's cell types behind the report's resource names, per family (yosys cell types for
#: figures nextpnr does not print: iCE40 flip-flops are inside its logic cells).
UTILISATION_CELLS = {
    "ice40": {"lut": ("nextpnr", "ICESTORM_LC"), "ff": ("yosys", "SB_DFF"),
              "bram": ("nextpnr", "ICESTORM_RAM"), "dsp": ("nextpnr", "ICESTORM_DSP"),
              "spram": ("nextpnr", "ICESTORM_SPRAM")},
    "ecp5": {"lut": ("nextpnr", "TRELLIS_COMB"), "ff": ("nextpnr", "TRELLIS_FF"),
             "bram": ("nextpnr", "DP16KD"), "dsp": ("nextpnr", "MULT18X18D")},
}
#: yosys cells that are one block RAM / one LUT, for the check between synthesis and nextpnr.
_YOSYS_BRAM = {"ice40": ("SB_RAM40_4K",), "ecp5": ("DP16KD",)}
_YOSYS_LUT = {"ice40": ("SB_LUT4",), "ecp5": ("LUT4",)}
#: yosys command (after reading the design) that marks ``keep`` every flip-flop whose output
#: carries the chip's :data:`~neurotile.hdl.chip.REPLICA` attribute: the per-core copies of one
#: value, which ``opt_merge`` would otherwise merge into one flip-flop driving every core.
KEEP_REPLICAS = ("setattr -set keep 1 a:{0} %ci1:+[Q] a:{0} %d"
                 .format(next(iter(REPLICA))))
#: Vivado's ``synth_design`` option that does the same for the Vivado flow: Vivado merges
#: equivalent registers by default (UG901), which would undo the per-core copies too.
VIVADO_KEEP_REPLICAS = "-keep_equivalent_registers"
_BITSTREAM = {"ice40": "top.bin", "ecp5": "top.bit"}
#: Files a build writes and later reads back.
_PRODUCTS = ("top.rpt", "top.tim", "top.bin", "top.bit", "build.log")
#: Environment variables naming each flow's tools (amaranth's build scripts read them).
_TOOL_VARIABLES = {"ice40": ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"),
                   "ecp5": ("YOSYS", "NEXTPNR_ECP5", "ECPPACK")}
_STAGES = ("synth", "pnr", "pack")
#: The search skips a mesh whose estimated logic exceeds the device by more than this factor (the
#: logic estimate is a model; block RAMs are counted exactly and must fit).
LOGIC_MARGIN = 1.1


class BuildFailure(BoardError):
    """A build that ran but cannot be used; ``report`` holds what was measured up to the failure."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


class DoesNotFit(BuildFailure):
    """The design needs more of a resource than the device has (the message says how much)."""


class MissesTiming(BuildFailure):
    """The design's Fmax is below the board clock (the message says by how much)."""


# -- log parsers -------------------------------------------------------------------------------

_STAT_CELL = re.compile(r"^\s*(\d+)\s+(\S+)\s*$")


def parse_yosys_stat(text):
    """Cell counts of the last ``stat`` in a yosys log: ``{cell type: count}``.

    Reads the last "Printing statistics" section's top-level block (the design is flattened by
    ``synth_ice40`` / ``synth_ecp5``): the indented ``count type`` lines after ``cells``. Both the
    old layout (``Number of cells: N`` then ``TYPE N``) and the tabular one of yosys >= 0.45
    (``N cells`` then ``N   TYPE``) are read.

    Raises
    ------
    ToolchainError
        The log has no statistics (yosys failed before its ``stat``).
    """
    start = text.rfind("Printing statistics.")
    if start < 0:
        raise ToolchainError("the yosys log has no statistics: synthesis did not finish")
    section = text[start:]
    end = section.find("=== design hierarchy ===")
    block = section if end < 0 else section[:end]
    cells = {}
    in_cells = False
    for line in block.splitlines():
        old = re.match(r"^\s*Number of cells:\s*(\d+)", line)
        if old or re.match(r"^\s*\d+\s+cells\s*$", line):
            in_cells = True
            continue
        if not in_cells:
            continue
        m = _STAT_CELL.match(line) or re.match(r"^\s*(\S+)\s+(\d+)\s*$", line)
        if m is None:
            if line.strip():
                in_cells = False
            continue
        a, b = m.groups()
        count, name = (int(a), b) if a.isdigit() else (int(b), a)
        if name in ("submodules", "cells") or name.startswith("$scopeinfo"):
            continue
        cells[name] = count
    return cells


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")
_ERROR = re.compile(r"^ERROR: (.*)$", re.M)


def parse_nextpnr_log(text):
    """Utilisation, Fmax and errors from a nextpnr log.

    Returns
    -------
    dict
        ``utilisation``: ``{bel type: (used, available)}`` from the last "Device utilisation"
        table; ``fmax``: ``{clock: (achieved MHz, constrained MHz, passed)}`` from the last
        report of each clock (after routing); ``errors``: the ``ERROR:`` lines.
    """
    util = {}
    last = text.rfind("Device utilisation:")
    if last >= 0:
        tail = text[last:]
        stop = tail.find("\n\n")
        for name, used, avail, _ in _UTIL.findall(tail if stop < 0 else tail[:stop]):
            util[name] = (int(used), int(avail))
    fmax = {}
    for clock, mhz, verdict, target in _FMAX.findall(text):
        fmax[clock] = (float(mhz), float(target), verdict == "PASS")
    return {"utilisation": util, "fmax": fmax, "errors": _ERROR.findall(text)}


# -- the report --------------------------------------------------------------------------------

@dataclasses.dataclass
class BuildReport:
    """What :func:`build` made and measured.

    Members
    -------
    target : str
    title, device : str
    mesh : (int, int)
    arch : Arch
    clk_hz : float
        The board clock the design runs at (no PLL).
    baud : float
        The UART's actual baud rate.
    flow : str
    utilisation : dict
        ``{"lut" | "ff" | "bram" | "dsp": (used, capacity)}`` (and ``"spram"`` on iCE40
        UltraPlus); measured after place and route, or estimated for vendor flows (``measured``
        False).
    measured : bool
    fmax_hz : float or None
        nextpnr's Fmax of the clock (None where no tool ran).
    bitstream : Path or None
    out : Path
        The build folder (logs, constraints, Verilog).
    seconds : dict
        Wall-clock seconds per stage (``synth``, ``pnr``, ``pack``, ``total``).
    search : list of str
        The mesh search: one line per candidate, then why it stopped.
    cells : dict
        yosys' cell counts after synthesis.
    message : str
        For vendor flows: what to run to make the bitstream.
    """

    target: str
    title: str
    device: str
    mesh: tuple
    arch: Arch
    clk_hz: float
    baud: float
    flow: str
    utilisation: dict
    measured: bool
    fmax_hz: float = None
    bitstream: Path = None
    out: Path = None
    seconds: dict = dataclasses.field(default_factory=dict)
    search: list = dataclasses.field(default_factory=list)
    message: str = ""
    lut_kind: str = ""
    bram_kind: str = ""
    cells: dict = dataclasses.field(default_factory=dict)

    @property
    def cores(self):
        return self.arch.n_cores

    @property
    def neurons(self):
        return self.arch.n_cores * self.arch.neurons_per_core

    @property
    def synapses(self):
        return self.arch.n_cores * self.arch.synapses_per_core

    @property
    def timing_met(self):
        return None if self.fmax_hz is None else self.fmax_hz >= self.clk_hz

    def synops_per_second(self, clock_hz=None):
        """Peak synaptic operations per second: one synapse per clock per core."""
        return self.cores * (self.clk_hz if clock_hz is None else clock_hz)

    def summary(self):
        """The report as text (what ``neurotile build`` prints)."""
        w, h = self.mesh
        lines = [f"{self.title} ({self.device}), flow {self.flow}",
                 f"  mesh {w}x{h}: {self.cores} cores, {self.neurons} neurons, "
                 f"{self.synapses} synapses (profile {self.arch.name!r})"]
        kind = "measured after place and route" if self.measured else "estimated, no tool run"
        lines.append(f"  resources ({kind}):")
        names = {"lut": self.lut_kind or "LUT", "ff": "flip-flops",
                 "bram": self.bram_kind or "block RAM", "dsp": "DSP / multipliers",
                 "spram": "SPRAM (256 kbit)"}
        for key in ("lut", "ff", "bram", "dsp", "spram"):
            if key in self.utilisation:
                used, cap = self.utilisation[key]
                pct = f"{100 * used / cap:5.1f}%" if cap else ""
                lines.append(f"    {names[key]:<28} {used:>7} / {cap:<7} {pct}")
        clk = self.clk_hz / 1e6
        if self.fmax_hz is not None:
            verdict = "meets" if self.timing_met else "MISSES"
            lines.append(f"  Fmax {self.fmax_hz / 1e6:.2f} MHz: {verdict} the {clk:g} MHz board "
                         f"clock ({self.fmax_hz / self.clk_hz:.2f}x)")
        else:
            lines.append(f"  board clock {clk:g} MHz (Fmax not measured)")
        lines.append(f"  peak {self.synops_per_second() / 1e6:g} M synaptic ops/s at {clk:g} MHz"
                     + (f", {self.synops_per_second(self.fmax_hz) / 1e6:.0f} M at Fmax"
                        if self.fmax_hz else ""))
        lines.append(f"  host link: UART 8N1 at {self.baud:.0f} baud")
        if self.seconds:
            parts = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
            lines.append(f"  time: {parts}")
        if self.bitstream is not None:
            lines.append(f"  bitstream: {self.bitstream}")
        if self.message:
            lines.append(f"  {self.message}")
        if self.search:
            lines.append("  mesh search:")
            lines += [f"    {s}" for s in self.search]
        return "\n".join(lines)

    def to_dict(self):
        return {
            "target": self.target, "title": self.title, "device": self.device,
            "mesh": list(self.mesh), "arch": self.arch.to_dict(), "cores": self.cores,
            "neurons": self.neurons, "synapses": self.synapses, "clk_hz": self.clk_hz,
            "baud": self.baud, "flow": self.flow, "measured": self.measured,
            "utilisation": {k: list(v) for k, v in self.utilisation.items()},
            "fmax_hz": self.fmax_hz, "timing_met": self.timing_met,
            "synops_per_s": self.synops_per_second(),
            "bitstream": None if self.bitstream is None else str(self.bitstream),
            "out": None if self.out is None else str(self.out), "seconds": self.seconds,
            "search": self.search, "message": self.message,
        }


# -- mesh search -------------------------------------------------------------------------------

def candidate_meshes(max_cores, *, max_side=16):
    """Meshes ``w x h`` (``w >= h``, ``w <= 2h``) of at most ``max_cores`` cores, largest first.

    >>> candidate_meshes(6)
    [(3, 2), (2, 2), (2, 1), (1, 1)]
    """
    out = [(w, h) for h in range(1, max_side + 1) for w in range(h, min(2 * h, max_side) + 1)
           if w * h <= max_cores]
    return sorted(out, key=lambda m: (-m[0] * m[1], m[0] - m[1]))


def _first_guess(target, **kwargs):
    """Most cores the estimate could allow: 1x1 and 2x1 estimates give the block RAMs of the
    chip's own buffers and of one core; one more core is allowed for rounding."""
    one = estimate(target, target.arch((1, 1)), **kwargs)
    two = estimate(target, target.arch((2, 1)), **kwargs)
    per_core = max(1, two.bram - one.bram)
    cap = target.capacity
    by_bram = (cap["bram"] - (one.bram - per_core)) // per_core
    by_lut = max(0, cap["lut"] - target.logic_fixed) // max(1, target.logic_per_core)
    by_spram = cap.get("spram", 0) // one.spram if one.spram else by_bram
    return max(1, min(by_bram, by_lut, by_spram) + 1)


# -- building ----------------------------------------------------------------------------------

def _check_tools(target, env):
    missing = [env[v] for v in _TOOL_VARIABLES[target.family]
               if shutil.which(env[v], path=env.get("PATH")) is None]
    if missing:
        raise ToolchainError(f"building for {target.name} needs {', '.join(missing)}, not found "
                             f"on PATH: pip install 'neurotile[boards]' (the YoWASP tools), or "
                             f"set {', '.join(_TOOL_VARIABLES[target.family])} to your own")


def _split_script(script):
    """The plan's ``build_top.sh`` as (preamble, [tool command lines])."""
    pre, cmds = [], []
    for line in script.splitlines():
        (cmds if line.startswith('"$') else pre).append(line)
    return "\n".join(pre), cmds


def _run_stage(preamble, command, cwd, env, log, timeout):
    with open(log, "a") as f:
        f.write(f"$ {command}\n")
        f.flush()
        try:
            result = subprocess.run(["sh", "-c", preamble + "\n" + command], cwd=cwd, env=env,
                                    stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"{command.split()[0]} did not finish within {timeout} s; "
                                 f"log {log}") from None
    return result.returncode


def _tail(path, n=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _overflow(kind, used, cap, target):
    names = {"lut": target.lut_kind, "bram": target.bram_kind, "ff": "flip-flops",
             "dsp": "DSPs"}
    return f"{used} {names.get(kind, kind)} of {cap} ({used - cap} over, {100 * used / cap:.0f}%)"


def _platform(target):
    try:
        return target.make_platform()
    except BoardError:
        raise
    except Exception as error:          # pragma: no cover - depends on amaranth-boards
        raise BoardError(f"cannot create the {target.name} platform: {error}") from None


def _load_image(image):
    if image is not None:
        if isinstance(image, (str, os.PathLike)):
            image = ChipImage.load(image)
        if not isinstance(image, ChipImage):
            raise NeurotileTypeError(f"image must be an nt.ChipImage or the path of one, not "
                                     f"{type(image).__name__}")
        image.validate()
    return image


def build_plan(target, arch, image=None, *, baud=None, max_payload=None, nextpnr_opts="",
               synth_opts=""):
    """Amaranth's build plan of :class:`~neurotile.boards.top.BoardTop` for ``target``.

    The plan holds the design (RTLIL or Verilog), the constraints and the tool scripts, with the
    target's synthesis options, its memory placement (``ram_style`` set on the memories of
    ``target.distributed``, ``target.block`` and ``target.registers`` before synthesis), and
    ``--timing-allow-fail``
    and the target's options for nextpnr.

    Returns
    -------
    (BuildPlan, Platform, BoardTop)
    """
    from .top import BoardTop

    target = get_target(target)
    _check_spram_image(target, arch, image)
    platform = _platform(target)
    kwargs = {} if max_payload is None else {"max_payload": max_payload}
    top = BoardTop(target, arch, image, baud=baud, **kwargs)
    overrides = {}
    if target.bitstream:
        overrides["nextpnr_opts"] = " ".join(
            o for o in ("--timing-allow-fail", target.nextpnr_opts, nextpnr_opts) if o)
        opts = " ".join(o for o in (target.synth_opts, synth_opts) if o)
        if opts:
            overrides["synth_opts"] = opts
        styles = [("distributed", name) for name in target.distributed] \
            + [("block", name) for name in target.block] \
            + [("logic", name) for name in target.registers]
        script = [f'setattr -set ram_style "{style}" m:{name}' for style, name in styles]
        overrides["script_after_read"] = "\n".join(script + [KEEP_REPLICAS])
    elif target.flow == "vivado":
        overrides["synth_design_opts"] = VIVADO_KEEP_REPLICAS
    plan = platform.build(top, name="top", do_build=False, **overrides)
    return plan, platform, top


def _check_spram_image(target, arch, image):
    """Refuse to build synapses into SPRAM, which a bitstream cannot initialise."""
    if image is None or arch.synapse_ram != "spram" or not target.capacity.get("spram", 0):
        return
    for core in image.cores:
        words = core.words(image.arch, "synapse").size
        if words:
            raise BoardError(
                f"the {target.name} keeps each core's synapse memory in SPRAM "
                f"(Arch.synapse_ram='spram'), which a bitstream cannot initialise, and the "
                f"image's core ({core.x}, {core.y}) has {words} synapse words: build without "
                f"--image and load the image over the host link (Host.load)")


def build_one(target, arch, out, *, image=None, baud=None, max_payload=None, timeout=None,
              nextpnr_opts="", synth_opts="", log=None):
    """Build one mesh size (no search); return a :class:`BuildReport`.

    Raises
    ------
    DoesNotFit, MissesTiming
        With the report so far in ``error.report``.
    ToolchainError
        A tool failed for another reason (the message ends with its log's tail).
    """
    from ..sim.toolchain import prepare_environment

    target = get_target(target)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in _PRODUCTS:                          # never read an earlier build's logs
        (out / stale).unlink(missing_ok=True)
    say = log or (lambda text: None)
    kwargs = {} if max_payload is None else {"max_payload": max_payload}
    start = time.perf_counter()
    plan, platform, top = build_plan(target, arch, image, baud=baud, nextpnr_opts=nextpnr_opts,
                                     synth_opts=synth_opts, **kwargs)
    plan.extract(str(out))
    clk = float(platform.default_clk_frequency)
    report = BuildReport(
        target=target.name, title=target.title, device=target.device,
        mesh=(arch.mesh_w, arch.mesh_h), arch=arch, clk_hz=clk, baud=top.core.baud,
        flow=target.flow, utilisation={}, measured=False, out=out,
        lut_kind=target.lut_kind, bram_kind=target.bram_kind)
    report.seconds["elaborate"] = time.perf_counter() - start

    if not target.bitstream:
        est = estimate(target, arch, **kwargs)
        report.utilisation = {"lut": (est.lut, target.capacity["lut"]),
                              "bram": (est.bram, target.capacity["bram"])}
        report.message = (f"RTL and constraints written to {out}; the bitstream needs "
                          f"{target.tool}: run `sh build_top.sh` there")
        return report

    env = prepare_environment(dict(os.environ))
    _check_tools(target, env)
    preamble, commands = _split_script(plan.files["build_top.sh"])
    build_log = out / "build.log"
    family = target.family
    for stage, command in zip(_STAGES, commands):
        say(f"{target.name} {arch.mesh_w}x{arch.mesh_h}: {stage} ...")
        t0 = time.perf_counter()
        code = _run_stage(preamble, command, out, env, build_log, timeout)
        report.seconds[stage] = time.perf_counter() - t0
        if stage == "synth":
            if code != 0:
                raise ToolchainError(f"yosys failed for {target.name}; log {out / 'top.rpt'}:\n"
                                     f"{_tail(out / 'top.rpt')}")
            cells = report.cells = parse_yosys_stat((out / "top.rpt").read_text(errors="replace"))
            bram = sum(cells.get(c, 0) for c in _YOSYS_BRAM[family])
            luts = sum(cells.get(c, 0) for c in _YOSYS_LUT[family])
            for kind, used in (("bram", bram), ("lut", luts)):
                cap = target.capacity[kind]
                if used > cap:
                    report.utilisation[kind] = (used, cap)
                    raise DoesNotFit(f"{arch.mesh_w}x{arch.mesh_h} does not fit the "
                                     f"{target.device}: synthesis needs "
                                     f"{_overflow(kind, used, cap, target)}", report)
        elif stage == "pnr":
            text = (out / "top.tim").read_text(errors="replace") \
                if (out / "top.tim").exists() else ""
            parsed = parse_nextpnr_log(text)
            _fill_utilisation(report, parsed, target)
            report.measured = bool(parsed["utilisation"])
            if code != 0:
                over = [(k, u, c) for k, (u, c) in report.utilisation.items() if u > c]
                if over:
                    raise DoesNotFit(f"{arch.mesh_w}x{arch.mesh_h} does not fit the "
                                     f"{target.device}: placement needs "
                                     + "; ".join(_overflow(k, u, c, target) for k, u, c in over),
                                     report)
                raise ToolchainError(f"nextpnr failed for {target.name} "
                                     f"({'; '.join(parsed['errors']) or 'see log'}); log "
                                     f"{out / 'top.tim'}:\n{_tail(out / 'top.tim')}")
            if parsed["fmax"]:
                report.fmax_hz = min(v[0] for v in parsed["fmax"].values()) * 1e6
            if report.fmax_hz is not None and report.fmax_hz < report.clk_hz:
                raise MissesTiming(f"{arch.mesh_w}x{arch.mesh_h} misses timing on the "
                                   f"{target.device}: Fmax {report.fmax_hz / 1e6:.2f} MHz is "
                                   f"{(report.clk_hz - report.fmax_hz) / 1e6:.2f} MHz "
                                   f"({1 - report.fmax_hz / report.clk_hz:.0%}) below the "
                                   f"{report.clk_hz / 1e6:g} MHz board clock", report)
        else:
            if code != 0:
                raise ToolchainError(f"the bitstream packer failed for {target.name}; log "
                                     f"{build_log}:\n{_tail(build_log)}")
            report.bitstream = out / _BITSTREAM[family]
    report.seconds["total"] = time.perf_counter() - start
    return report


def _fill_utilisation(report, parsed, target):
    cells = UTILISATION_CELLS[target.family]
    util = parsed["utilisation"]
    for kind, (source, name) in cells.items():
        if source == "nextpnr" and name in util:
            report.utilisation[kind] = util[name]
        elif source == "yosys":
            used = sum(v for k, v in report.cells.items() if k.startswith(name))
            report.utilisation[kind] = (used, target.capacity[kind])


def build(target, mesh=None, image=None, out="build", *, baud=None, max_payload=None,
          timeout=None, nextpnr_opts="", synth_opts="", log=None):
    """Build the chip for a board and report what it uses (module docstring).

    Parameters
    ----------
    target : str or Target
        A board of :data:`~neurotile.boards.targets.TARGETS`.
    mesh : (int, int), optional
        Mesh size; by default the largest that fits and meets timing (or the image's).
    image : ChipImage or path, optional
        Memory contents built into the bitstream (its Arch fixes the mesh). Without one the chip
        is empty and the host loads images over the UART. Synapses kept in SPRAM
        (``Arch.synapse_ram="spram"`` on the iCEBreaker) cannot be built in: an image with
        synapses is refused there, and the host loads it instead.
    out : str or path
        Build folder; each mesh tried gets ``<out>/<target>-<w>x<h>/``, and the report is saved
        as ``<out>/report.json``.
    baud : int, optional
        UART baud rate (default the target's, 115200).
    max_payload : int, optional
        Host port payload buffer.
    timeout : float, optional
        Seconds each tool may run.
    nextpnr_opts, synth_opts : str
        Extra options for nextpnr and for ``synth_ice40`` / ``synth_ecp5``.
    log : callable, optional
        Called with a line of progress text.

    Returns
    -------
    BuildReport

    Raises
    ------
    BoardError
        Unknown board; a mesh that is not two positive integers or does not match the image;
        an image with synapses for a target that keeps them in SPRAM.
    DoesNotFit, MissesTiming
        The requested mesh (or, searching, even 1x1) does not fit or misses the board clock; the
        message says by how much.
    ToolchainError
        A tool is missing or failed.
    """
    target = get_target(target)
    image = _load_image(image)
    out = Path(out)
    if mesh is not None:
        if (not isinstance(mesh, (tuple, list)) or len(mesh) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                           for v in mesh)):
            raise BoardError(f"mesh must be (width, height) with positive integers, not {mesh!r}")
        mesh = tuple(mesh)
    if image is not None:
        arch = image.arch
        if mesh is not None and mesh != (arch.mesh_w, arch.mesh_h):
            raise BoardError(f"mesh {mesh[0]}x{mesh[1]} differs from the image's "
                             f"{arch.mesh_w}x{arch.mesh_h}: leave --mesh out with --image")
    elif mesh is not None:
        arch = target.arch(mesh)

    kwargs = {} if max_payload is None else {"max_payload": max_payload}
    notes = []
    if image is not None or mesh is not None:
        est = estimate(target, arch, **kwargs)
        _check_estimate(target, arch, est)
        report = build_one(target, arch, out / f"{target.name}-{arch.mesh_w}x{arch.mesh_h}",
                           image=image, baud=baud, timeout=timeout, nextpnr_opts=nextpnr_opts,
                           synth_opts=synth_opts, log=log, **kwargs)
        return _save(report, out)

    for w, h in candidate_meshes(_first_guess(target, **kwargs)):
        trial = target.arch((w, h))
        est = estimate(target, trial, **kwargs)
        if not est.fits(target, logic_margin=LOGIC_MARGIN):
            notes.append(f"{w}x{h}: skipped, the estimate needs {_estimate_text(target, est)}")
            continue
        if not target.bitstream:
            report = build_one(target, trial, out / f"{target.name}-{w}x{h}", image=None,
                               baud=baud, log=log, **kwargs)
            notes.append(f"{w}x{h}: chosen, the largest mesh whose estimate fits "
                         f"({_estimate_text(target, est)}); not placed: the vendor tool decides")
            report.search = notes
            return _save(report, out)
        try:
            report = build_one(target, trial, out / f"{target.name}-{w}x{h}", baud=baud,
                               timeout=timeout, nextpnr_opts=nextpnr_opts, synth_opts=synth_opts,
                               log=log, **kwargs)
        except (DoesNotFit, MissesTiming) as error:
            notes.append(f"{w}x{h}: rejected, {_lower_first(str(error))}")
            if log:
                log(notes[-1])
            continue
        notes.append(f"{w}x{h}: fits and meets {report.clk_hz / 1e6:g} MHz; stopped: every "
                     f"larger candidate was rejected")
        report.search = notes
        return _save(report, out)
    raise DoesNotFit(f"no mesh fits the {target.device} of {target.name}:\n  "
                     + "\n  ".join(notes) + "\n(--mesh 1x1 runs the tools on the smallest chip "
                     "anyway, to measure by how much it misses)")


def _lower_first(text):
    return text[:1].lower() + text[1:]


def _estimate_text(target, est):
    cap = target.capacity
    spram = f", {est.spram}/{cap.get('spram', 0)} SPRAM" if est.spram else ""
    return (f"{est.bram}/{cap['bram']} {target.bram_kind}{spram} and ~{est.lut}/{cap['lut']} "
            f"{target.lut_kind}")


def _check_estimate(target, arch, est):
    """Refuse a requested mesh whose block RAMs alone exceed the device by the estimate.

    Block RAMs are counted exactly from the design's memories, so this saves a synthesis run
    that cannot succeed; logic is only modelled, so it is left to the tools.
    """
    spram_cap = target.capacity.get("spram", 0)
    if est.spram > spram_cap:
        raise DoesNotFit(
            f"mesh {arch.mesh_w}x{arch.mesh_h} ({arch.n_cores} cores of profile {arch.name!r}) "
            f"does not fit the {target.device}: its synapse memories need {est.spram} SPRAM "
            f"blocks, {est.spram - spram_cap} more than the {spram_cap} there are; use a smaller "
            f"mesh, or leave --mesh out to find the largest that fits")
    cap = target.capacity["bram"]
    if est.bram > cap:
        per = {k: v for k, v in sorted(est.bram_detail.items(), key=lambda kv: -kv[1])}
        top = ", ".join(f"{k} {v}" for k, v in list(per.items())[:4])
        raise DoesNotFit(
            f"mesh {arch.mesh_w}x{arch.mesh_h} ({arch.n_cores} cores of profile {arch.name!r}) "
            f"does not fit the {target.device}: its memories need {est.bram} "
            f"{target.bram_kind}, {est.bram - cap} more than the {cap} there are (largest: "
            f"{top}); use a smaller mesh, or leave --mesh out to find the largest that fits")


def _save(report, out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (out / "report.txt").write_text(report.summary() + "\n")
    return report
