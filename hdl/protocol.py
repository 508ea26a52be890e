"""The host protocol: framed commands over a byte stream, defined once.

This module is the single description of the protocol between a host (Python, through any byte
transport) and the chip's host port (:class:`neurotile.hdl.hostport.HostPort`). The tables below
(:data:`COMMANDS`, :class:`Status`, :data:`REGISTERS`, :data:`TARGETS`, :func:`counter_map`) drive the
encoder and decoder, the host client, the golden model, the RTL, the JSON written next to the
Verilog (:func:`protocol_json`) and the tables of docs/architecture.md section 9
(:func:`protocol_markdown`); no byte position is written down twice.

Framing (all multi-byte integers little endian)::

    host -> chip   0xA5  CMD     LEN_LO LEN_HI  PAYLOAD[LEN]  CRC
    chip -> host   0x5A  STATUS  LEN_LO LEN_HI  PAYLOAD[LEN]  CRC

``CRC`` is CRC-8 with polynomial 0x07, initial value 0, no reflection and no final XOR
(CRC-8/SMBUS) over ``CMD`` (or ``STATUS``) up to the last payload byte:

>>> hex(crc8(b"123456789"))
'0xf4'
>>> encode_command("PING").hex()
'a50100006b'

The host sends one frame and waits for its response; every frame that reaches its CRC byte gets
exactly one response, and a frame that stops half-way gets a ``TRUNCATED`` response after the host
port's ``frame_timeout`` idle cycles.
"""

import abc
import collections
import dataclasses
import enum
import json
import time
import zlib

import numpy as np

from ..compiler.arch import Arch
from ..compiler.errors import (EmulatorError, NeurotileTypeError, NeurotileValueError,
                               ToolchainError)
from ..compiler.image import CORE_TABLES, ChipImage
from ..compiler.layouts import pack, unpack
from ..emulator.result import COUNTERS_CHIP, COUNTERS_CYCLE, COUNTERS_PER_CORE
from ..emulator.state import FLAGS

__all__ = [
    "PROTOCOL_VERSION", "SYNC_COMMAND", "SYNC_RESPONSE", "MAGIC", "DEFAULT_MAX_PAYLOAD",
    "MIN_MAX_PAYLOAD", "Status", "Field", "Command", "COMMANDS", "ITEM_KINDS", "MEMORIES",
    "TARGETS", "Register", "REGISTERS", "CHIP_REGISTERS", "CORE_REGISTERS", "LINK_PORTS",
    "crc8", "arch_hash", "command", "memory_id", "register", "item_size", "target_info",
    "bus_widths", "counter_map", "encode_frame", "encode_command", "encode_response",
    "decode_response", "command_payload", "parse_response", "Response", "check_request",
    "HostBackend", "DictBackend", "HostPortModel", "Transport", "LoopbackTransport",
    "HostClient", "RunStatus", "protocol_description", "protocol_json", "protocol_markdown",
]

#: Version byte returned by PING; bumped with every incompatible change of this module.
PROTOCOL_VERSION = 1
#: First byte of a command frame (host -> chip).
SYNC_COMMAND = 0xA5
#: First byte of a response frame (chip -> host).
SYNC_RESPONSE = 0x5A
#: First four payload bytes of the PING response.
MAGIC = b"NTIL"
#: Default size of the host port's payload buffer (the longest request payload it accepts, and
#: the longest response payload it sends).
DEFAULT_MAX_PAYLOAD = 256
#: Smallest payload buffer: a WRITE_MEM header and one 8-byte word, and the 16-byte RUN response.
MIN_MAX_PAYLOAD = 16
#: Bytes of the payload that the host port keeps as the command's arguments (the fixed header).
ARG_BYTES = 8

_U32 = (1 << 32) - 1


class Status(enum.IntEnum):
    """The STATUS byte of a response. Checks are made in this order; the first that fails wins."""

    OK = 0x00
    BAD_CRC = 0x01
    UNKNOWN_COMMAND = 0x02
    BAD_LENGTH = 0x03
    BAD_ARGUMENT = 0x04
    OVERFLOW = 0x05
    TRUNCATED = 0x06

    @property
    def doc(self):
        return _STATUS_DOC[self]


_STATUS_DOC = {
    Status.OK: "executed; the payload is the command's response",
    Status.BAD_CRC: "the CRC byte does not match the frame",
    Status.UNKNOWN_COMMAND: "CMD is not in the command table",
    Status.BAD_LENGTH: "LEN exceeds max_payload or is not the length the command's header implies",
    Status.BAD_ARGUMENT: "a core, memory, register, value, step count or address range is out of "
                         "range",
    Status.OVERFLOW: "INJECT would take the host input buffer past host_in_depth packets",
    Status.TRUNCATED: "the frame stopped for frame_timeout cycles before its CRC byte",
}


# -- address spaces ------------------------------------------------------------------------------

#: The memories of a core by memory id (WRITE_MEM / READ_MEM ``memory`` byte, bus ``target``):
#: the chip image's tables, then the accumulator ring (address ``slot * N + neuron``).
MEMORIES = CORE_TABLES + ("acc",)
#: Host-bus targets by id: the memories, then the register files and the host buffers.
TARGETS = MEMORIES + ("core_reg", "chip_reg", "inject", "output", "counter")
#: Router output ports in counter order (section 6).
LINK_PORTS = ("N", "E", "S", "W", "L")


@dataclasses.dataclass(frozen=True)
class Register:
    """One register of the WRITE_REG / READ_REG ``register`` byte.

    Members
    -------
    name : str
    code : int
        The ``register`` byte. Bit 7 set: a chip register (the ``core`` byte must be 0).
    scope : {"core", "chip"}
    addr : int
        Address within the bus target ``core_reg`` or ``chip_reg``.
    writable : bool
    maximum : callable
        ``maximum(arch)``: the largest value WRITE_REG accepts.
    doc : str
    """

    name: str
    code: int
    scope: str
    addr: int
    writable: bool
    maximum: object
    doc: str

    @property
    def target(self):
        return "core_reg" if self.scope == "core" else "chip_reg"


REGISTERS = (
    Register("n_neurons", 0x00, "core", 0, True, lambda a: a.neurons_per_core,
             "neurons in use (updated in order 0 .. n_neurons - 1)"),
    Register("n_axons", 0x01, "core", 1, True, lambda a: a.axons_per_core,
             "axon-table entries in use (a larger axon raises bad_axon)"),
    Register("step", 0x80, "chip", 0, True, lambda a: _U32,
             "chip step counter t: steps completed since the image was loaded"),
    Register("flags", 0x81, "chip", 1, True, lambda a: 0,
             "sticky flags, bit i = " + ", ".join(f"{i} {f}" for i, f in enumerate(FLAGS))
             + "; writing 0 clears every flag of the chip and its first-raised step"),
    Register("n_output", 0x82, "chip", 2, False, lambda a: 0,
             "entries of the output buffer captured by the last RUN (at most host_out_depth)"),
    Register("out_dropped", 0x83, "chip", 3, False, lambda a: 0,
             "host-bound packets of the last RUN not captured because the buffer was full"),
)
CORE_REGISTERS = tuple(r for r in REGISTERS if r.scope == "core")
CHIP_REGISTERS = tuple(r for r in REGISTERS if r.scope == "chip")


def _check_arch(arch):
    if not isinstance(arch, Arch):
        raise NeurotileTypeError(f"arch must be an nt.Arch, not {arch!r}")
    return arch


def memory_id(name):
    """The memory id of a memory name (or an id, checked)."""
    if isinstance(name, str):
        if name not in MEMORIES:
            raise NeurotileValueError(f"memory must be one of {', '.join(MEMORIES)}, "
                                      f"not {name!r}")
        return MEMORIES.index(name)
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        return int(name)
    raise NeurotileTypeError(f"memory must be a memory name or id, not {name!r}")


def register(name):
    """The :class:`Register` of a register name or code."""
    for r in REGISTERS:
        if name == r.name or (not isinstance(name, str) and name == r.code):
            return r
    raise NeurotileValueError(f"register must be one of {', '.join(r.name for r in REGISTERS)}, "
                              f"not {name!r}")


def _nbytes(bits):
    return (bits + 7) // 8


def counter_map(arch):
    """Names of the 32-bit counter words READ_COUNTERS reads, by index.

    The chip block comes first: ``step``, the chip-wide counters, the chip cycle counts,
    ``flags`` (bit i = ``FLAGS[i]``) and ``flag_step.<flag>`` (the step each flag was first raised,
    0xFFFFFFFF if never). Then, for core c = y * mesh_w + x, ``core<c>.<counter>`` for the per-core
    counters and ``core<c>.link.<port>`` for the five output ports of the core's router. Every
    value is the one of the last step run. ``step`` and ``flag_step`` wrap at 2^32, the per-step
    counters at ``2^arch.counter_bits`` (zero-extended to a word).
    """
    _check_arch(arch)
    chip = (("step",) + COUNTERS_CHIP + _CYCLE_CHIP + ("flags",)
            + tuple(f"flag_step.{f}" for f in FLAGS))
    names = list(chip)
    for c in range(arch.n_cores):
        names += [f"core{c}.{n}" for n in _CORE_WORDS]
    return names


_CYCLE_CORE = ("fanout_busy", "syn_busy")
_CYCLE_CHIP = tuple(n for n in COUNTERS_CYCLE if n not in _CYCLE_CORE)
_CORE_WORDS = COUNTERS_PER_CORE + _CYCLE_CORE + tuple(f"link.{p}" for p in LINK_PORTS)
_CHIP_WORDS = 1 + len(COUNTERS_CHIP) + len(_CYCLE_CHIP) + 1 + len(FLAGS)


@dataclasses.dataclass(frozen=True)
class TargetInfo:
    """One host-bus target of an architecture (see :func:`target_info`)."""

    name: str
    id: int
    depth: int      # addresses 0 .. depth - 1
    mask: int       # bits a word of this target can hold, in bus ``data`` / ``rdata``
    nbytes: int     # bytes of one word on the wire
    access: str     # "rw", "w" or "r"


def target_info(arch):
    """Every host-bus target of ``arch``: depth, word mask and bytes on the wire, by name."""
    a = _check_arch(arch)
    lay = a.layouts
    N = a.neurons_per_core
    depths = {"neuron_state": N, "neuron_cfg": N, "profile": a.profiles_per_core,
              "axon": a.axons_per_core, "synapse": a.synapses_per_core, "fanout_index": N,
              "fanout": a.fanout_per_core, "acc": a.max_delay * N}
    out = {}
    for name in MEMORIES:
        width = lay[name].size
        out[name] = TargetInfo(name, TARGETS.index(name), depths[name], (1 << width) - 1,
                               _nbytes(width), "rw")
    pb = _nbytes(lay.packet.size)
    pmask = (1 << lay.packet.size) - 1
    out["core_reg"] = TargetInfo("core_reg", TARGETS.index("core_reg"), len(CORE_REGISTERS),
                                 _U32, 4, "rw")
    out["chip_reg"] = TargetInfo("chip_reg", TARGETS.index("chip_reg"), len(CHIP_REGISTERS),
                                 _U32, 4, "rw")
    out["inject"] = TargetInfo("inject", TARGETS.index("inject"), a.host_in_depth, pmask, pb, "w")
    # An output entry: the packet in the low pb bytes, the step offset (u16) in the next two.
    out["output"] = TargetInfo("output", TARGETS.index("output"), a.host_out_depth,
                               pmask | (0xFFFF << (8 * pb)), pb + 2, "r")
    out["counter"] = TargetInfo("counter", TARGETS.index("counter"), len(counter_map(a)), _U32,
                                4, "r")
    return out


def bus_widths(arch):
    """``(target_bits, core_bits, addr_bits, data_bits)`` of the host bus of ``arch``."""
    info = target_info(arch)
    return ((len(TARGETS) - 1).bit_length(), arch.addr_bits(arch.n_cores),
            max(arch.addr_bits(t.depth) for t in info.values()),
            max(t.mask.bit_length() for t in info.values()))


def arch_hash(arch):
    """A 32-bit hash (CRC-32 of the canonical JSON) of every field of ``arch`` but its ``name``.

    PING returns the hash the chip was generated for, so the host can refuse a chip built for
    another architecture.
    """
    fields = _check_arch(arch).to_dict()
    fields.pop("name")
    return zlib.crc32(json.dumps(fields, sort_keys=True).encode()) & _U32


# -- commands --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Field:
    """A fixed field of a payload: ``size`` bytes, little endian, unsigned."""

    name: str
    size: int
    doc: str


#: Variable parts of payloads: items repeated ``count`` times, and their size in bytes.
ITEM_KINDS = {
    "word": "ceil(width/8) bytes: one word of the memory's layout (compiler/layouts.py), "
            "little endian, bits above the width 0",
    "packet": "ceil(packet/8) bytes: a packet (layout `packet`), little endian",
    "output": "ceil(packet/8) bytes of packet, then the step offset within the RUN (u16)",
    "counter": "u32: one counter word (see the counter map)",
}


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of the protocol.

    Members
    -------
    code : int
        The CMD byte.
    name : str
    request, response : tuple of Field
        Fixed payload fields of the request and of the OK response, in byte order.
    request_items, response_items : str or None
        Kind (:data:`ITEM_KINDS`) of the ``count`` items after the fixed fields, if any.
    checks : str
        The BAD_ARGUMENT / OVERFLOW conditions.
    doc : str
    """

    code: int
    name: str
    request: tuple
    request_items: object
    response: tuple
    response_items: object
    checks: str
    doc: str

    @property
    def header_size(self):
        return sum(f.size for f in self.request)

    def field_offset(self, name):
        off = 0
        for f in self.request:
            if f.name == name:
                return off
            off += f.size
        raise KeyError(name)


_CORE = Field("core", 1, "core index y * mesh_w + x")
_MEM = Field("memory", 1, "memory id (0 .. 7, see MEMORIES)")
_ADDR = Field("addr", 4, "first word address")
_COUNT = Field("count", 2, "number of items")
_START = Field("start", 4, "first entry")

COMMANDS = (
    Command(0x01, "PING", (), None,
            (Field("magic", 4, "b'NTIL'"), Field("version", 1, "PROTOCOL_VERSION"),
             Field("arch_hash", 4, "arch_hash(arch) of the chip"),
             Field("max_payload", 2, "payload buffer size in bytes"),
             Field("skipped", 4, "bytes skipped outside frames since reset (wraps)")),
            None, "none",
            "Identify the chip; the host refuses a mismatched magic, version or arch hash."),
    Command(0x02, "WRITE_MEM", (_CORE, _MEM, _ADDR, _COUNT), "word", (), None,
            "core < n_cores, memory < 8, addr + count <= depth",
            "Write count words of a memory from addr on. LEN must be 8 + count * word bytes."),
    Command(0x03, "READ_MEM", (_CORE, _MEM, _ADDR, _COUNT), None, (), "word",
            "core < n_cores, memory < 8, addr + count <= depth, count * word bytes <= max_payload",
            "Read count words of a memory from addr on."),
    Command(0x04, "WRITE_REG", (_CORE, Field("register", 1, "register code"),
                                Field("value", 4, "new value")), None, (), None,
            "known writable register; core < n_cores (core register) or core = 0 (chip "
            "register); value <= the register's maximum",
            "Write a register."),
    Command(0x05, "READ_REG", (_CORE, Field("register", 1, "register code")), None,
            (Field("value", 4, "register value"),), None,
            "known register; core < n_cores (core register) or core = 0 (chip register)",
            "Read a register."),
    Command(0x06, "INJECT", (_COUNT,), "packet", (), None,
            "OVERFLOW if the buffer would hold more than host_in_depth packets (nothing is "
            "appended)",
            "Append count packets to the host input buffer, injected in the first step of the "
            "next RUN. LEN must be 2 + count * packet bytes."),
    Command(0x07, "RUN", (Field("steps", 2, "steps to run (1 .. 65535)"),), None,
            tuple(Field(r.name, 4, r.doc.split(";")[0]) for r in CHIP_REGISTERS), None,
            "steps >= 1",
            "Run steps steps; the first injects the input buffer, which is then empty. The output "
            "buffer restarts empty. Responds when the last step is done, with the chip registers."),
    Command(0x08, "READ_OUTPUT", (_START, _COUNT), None, (), "output",
            "start + count <= host_out_depth, count * entry bytes <= max_payload",
            "Read output-buffer entries (host-bound packets of the last RUN, n_output of them)."),
    Command(0x09, "READ_COUNTERS", (_START, _COUNT), None, (), "counter",
            "start + count <= counter words, count * 4 <= max_payload",
            "Read counter words of the last step (see the counter map)."),
    Command(0x0A, "CLEAR_STATE", (), None, (), None, "none",
            "Zero u, v and every accumulator of every core, the step counter and the flags; empty "
            "the input buffer."),
)
_BY_NAME = {c.name: c for c in COMMANDS}
_BY_CODE = {c.code: c for c in COMMANDS}


def command(name):
    """The :class:`Command` of a name or code."""
    if isinstance(name, Command):
        return name
    found = _BY_NAME.get(name) if isinstance(name, str) else _BY_CODE.get(name)
    if found is None:
        raise NeurotileValueError(f"command must be one of {', '.join(_BY_NAME)}, not {name!r}")
    return found


def item_size(arch, kind, memory=None):
    """Bytes of one item of ``kind`` (:data:`ITEM_KINDS`); ``word`` needs the memory."""
    info = target_info(arch)
    if kind == "word":
        return info[MEMORIES[memory_id(memory)]].nbytes
    return info[{"packet": "inject", "output": "output", "counter": "counter"}[kind]].nbytes


# -- CRC and frames --------------------------------------------------------------------------------

def _crc_table():
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return bytes(table)


_CRC_TABLE = _crc_table()


def crc8(data, crc=0):
    """CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), MSB first, initial value ``crc``, no final XOR.

    Pass the previous result as ``crc`` to continue over more data.
    """
    for byte in bytes(data):
        crc = _CRC_TABLE[crc ^ byte]
    return crc


def encode_frame(sync, code, payload=b""):
    """``sync code len_lo len_hi payload crc8(code .. payload)``."""
    payload = bytes(payload)
    if len(payload) > 0xFFFF:
        raise NeurotileValueError(f"a payload must be at most 65535 bytes, not {len(payload)}")
    body = bytes([code & 0xFF, len(payload) & 0xFF, len(payload) >> 8]) + payload
    return bytes([sync]) + body + bytes([crc8(body)])


def encode_command(cmd, payload=b""):
    """The frame of command ``cmd`` (name, code or :class:`Command`) with a raw ``payload``."""
    return encode_frame(SYNC_COMMAND, command(cmd).code, payload)


def encode_response(status, payload=b""):
    """The response frame of ``status`` with a raw ``payload``."""
    return encode_frame(SYNC_RESPONSE, int(status), payload)


Response = collections.namedtuple("Response", "status payload")
Response.__doc__ = "A decoded response frame: ``status`` (int, a Status if known) and ``payload``."


def decode_response(data):
    """Decode one complete response frame (bytes) into a :class:`Response`.

    Raises
    ------
    ToolchainError
        The frame does not start with 0x5A, its length does not match LEN, or its CRC is wrong.
    """
    data = bytes(data)
    if len(data) < 5 or data[0] != SYNC_RESPONSE:
        raise ToolchainError(f"a response frame must start with 0x5A and hold at least 5 bytes, "
                             f"not {data[:8].hex()!r}")
    n = data[2] | data[3] << 8
    if len(data) != n + 5:
        raise ToolchainError(f"response frame of LEN {n} must be {n + 5} bytes, not {len(data)}")
    if crc8(data[1:-1]) != data[-1]:
        raise ToolchainError(f"response frame fails its CRC (0x{data[-1]:02x}, expected "
                             f"0x{crc8(data[1:-1]):02x}): the link corrupts bytes")
    status = data[1]
    try:
        status = Status(status)
    except ValueError:
        pass
    return Response(status, data[4:-1])


def _le(value, size, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise NeurotileTypeError(f"`{name}` must be an int, not {value!r}")
    value = int(value)
    if not 0 <= value < 1 << (8 * size):
        raise NeurotileValueError(f"`{name}` must be between 0 and {(1 << (8 * size)) - 1}, "
                                  f"not {value!r}")
    return value.to_bytes(size, "little")


def command_payload(arch, cmd, items=None, **fields):
    """The request payload of ``cmd`` built from the command table.

    Parameters
    ----------
    arch : Arch
    cmd : str, int or Command
    items : sequence of int, optional
        The words (WRITE_MEM) or packets (INJECT) after the header; ``count`` defaults to their
        number.
    **fields
        One value per fixed request field; ``memory`` and ``register`` also take names.

    >>> command_payload(Arch(), "READ_MEM", core=1, memory="axon", addr=16, count=2).hex()
    '0103100000000200'
    """
    c = command(cmd)
    fields = dict(fields)
    if "memory" in fields:
        fields["memory"] = memory_id(fields["memory"])
    if "register" in fields and isinstance(fields["register"], str):
        fields["register"] = register(fields["register"]).code
    if c.request_items is not None:
        items = [] if items is None else [int(v) for v in np.asarray(items, np.uint64).ravel()]
        fields.setdefault("count", len(items))
    elif items is not None:
        raise NeurotileValueError(f"{c.name} carries no items")
    known = [f.name for f in c.request]
    unknown = set(fields) - set(known)
    if unknown:
        raise NeurotileValueError(f"{c.name} has no field {sorted(unknown)[0]!r}; its fields: "
                                  f"{known}")
    out = bytearray()
    for f in c.request:
        if f.name not in fields:
            raise NeurotileValueError(f"{c.name} needs the field {f.name!r}")
        out += _le(fields[f.name], f.size, f.name)
    if c.request_items is not None:
        size = item_size(arch, c.request_items, fields.get("memory"))
        for v in items:
            out += _le(v, size, "item")
    return bytes(out)


def parse_response(arch, cmd, payload, memory=None):
    """The fields (and ``items``, a list of ints) of the OK response payload of ``cmd``.

    Raises
    ------
    ToolchainError
        The payload's length does not fit the command.
    """
    c = command(cmd)
    payload = bytes(payload)
    out, off = {}, 0
    fixed = sum(f.size for f in c.response)
    if len(payload) < fixed:
        raise ToolchainError(f"{c.name} response payload must hold at least {fixed} bytes, not "
                             f"{len(payload)}")
    for f in c.response:
        raw = payload[off:off + f.size]
        out[f.name] = raw if f.name == "magic" else int.from_bytes(raw, "little")
        off += f.size
    rest = payload[off:]
    if c.response_items is None:
        if rest:
            raise ToolchainError(f"{c.name} response payload must be {fixed} bytes, not "
                                 f"{len(payload)}")
        return out
    size = item_size(arch, c.response_items, memory)
    if len(rest) % size:
        raise ToolchainError(f"{c.name} response payload of {len(rest)} bytes is not a whole "
                             f"number of {size}-byte items")
    out["items"] = [int.from_bytes(rest[k:k + size], "little") for k in range(0, len(rest), size)]
    return out


# -- request checks (the chip's decisions, shared by the model and the docs) -----------------------

def _arg(payload, c, name):
    off = c.field_offset(name)
    size = next(f.size for f in c.request if f.name == name)
    return int.from_bytes(payload[off:off + size].ljust(size, b"\0"), "little")


def _item_bytes(arch, c, payload):
    """Bytes per item, or None when the memory id is unknown (then only the header is checked)."""
    kind = c.request_items or c.response_items
    if kind == "word":
        mem = _arg(payload, c, "memory")
        return target_info(arch)[MEMORIES[mem]].nbytes if mem < len(MEMORIES) else None
    return item_size(arch, kind)


def check_request(arch, max_payload, code, payload, inject_level=0):
    """The status the host port gives a frame with a good CRC (``Status.OK`` if it executes).

    ``payload`` is the frame's whole payload; ``inject_level`` the packets already in the input
    buffer. Checks, in order: the command is known (UNKNOWN_COMMAND); LEN is at most
    ``max_payload`` and equals the command's fixed header size, or for WRITE_MEM and INJECT at least
    the header and, where the item size is known, header + count * item bytes (BAD_LENGTH); the
    command's arguments (BAD_ARGUMENT, see :data:`COMMANDS`); INJECT's buffer space (OVERFLOW).
    """
    c = _BY_CODE.get(code)
    if c is None:
        return Status.UNKNOWN_COMMAND
    info = target_info(arch)
    n = len(payload)
    hdr = c.header_size
    if n > max_payload:
        return Status.BAD_LENGTH
    if c.request_items is None:
        if n != hdr:
            return Status.BAD_LENGTH
    else:
        if n < hdr:
            return Status.BAD_LENGTH
        ib = _item_bytes(arch, c, payload)
        if ib is not None and n != hdr + _arg(payload, c, "count") * ib:
            return Status.BAD_LENGTH
    name = c.name
    ok = True
    if name in ("WRITE_MEM", "READ_MEM"):
        core, mem = _arg(payload, c, "core"), _arg(payload, c, "memory")
        addr, count = _arg(payload, c, "addr"), _arg(payload, c, "count")
        ok = core < arch.n_cores and mem < len(MEMORIES)
        if ok:
            t = info[MEMORIES[mem]]
            ok = addr + count <= t.depth
            if name == "READ_MEM":
                ok = ok and count * t.nbytes <= max_payload
    elif name in ("WRITE_REG", "READ_REG"):
        core, code_ = _arg(payload, c, "core"), _arg(payload, c, "register")
        reg = next((r for r in REGISTERS if r.code == code_), None)
        ok = reg is not None and (core < arch.n_cores if reg.scope == "core" else core == 0)
        if ok and name == "WRITE_REG":
            ok = reg.writable and _arg(payload, c, "value") <= reg.maximum(arch)
    elif name == "RUN":
        ok = _arg(payload, c, "steps") >= 1
    elif name in ("READ_OUTPUT", "READ_COUNTERS"):
        t = info["output" if name == "READ_OUTPUT" else "counter"]
        start, count = _arg(payload, c, "start"), _arg(payload, c, "count")
        ok = start + count <= t.depth and count * t.nbytes <= max_payload
    if not ok:
        return Status.BAD_ARGUMENT
    if name == "INJECT" and inject_level + _arg(payload, c, "count") > arch.host_in_depth:
        return Status.OVERFLOW
    return Status.OK


# -- golden model ----------------------------------------------------------------------------------

class HostBackend(abc.ABC):
    """The chip side of the host bus, as the byte-level model (and test benches) see it.

    Every call is one bus transaction of :class:`~neurotile.hdl.hostport.HostPort`, in the same
    order: ``target`` is a name of :data:`TARGETS`, ``core`` the core index (0 for chip-level
    targets), ``addr`` the word address, ``data`` the word (masked to the target's width).
    """

    @abc.abstractmethod
    def write(self, target, core, addr, data):
        """One bus write."""

    @abc.abstractmethod
    def read(self, target, core, addr):
        """One bus read; returns the word."""

    @abc.abstractmethod
    def run(self, steps, n_inject):
        """A run request: ``steps`` steps, the first injecting ``n_inject`` buffered packets."""


class DictBackend(HostBackend):
    """A fake chip: memories and registers in dicts, and a deterministic stand-in for RUN.

    It records every call in ``log``. ``run`` advances ``step``, copies the injected packets (up to
    ``host_out_depth``, the rest counted in ``out_dropped``) into the output buffer with step
    offset ``i mod steps``, and sets counter word k to ``(step * 1000 + k) mod 2^32``. Writes to
    read-only targets, and out-of-range addresses, raise: the host port must never issue them.
    """

    def __init__(self, arch):
        self.arch = _check_arch(arch)
        self.info = target_info(arch)
        self.mem = {}            # (target, core, addr) -> word
        self.regs = {}           # (core, name) -> value
        self.step = 0
        self.flags = 0
        self.inject = {}
        self.output = []         # (packet, offset)
        self.out_dropped = 0
        self.counters = [0] * self.info["counter"].depth
        self.log = []

    def _check(self, target, core, addr, data=0):
        t = self.info[target]
        core_ok = core < self.arch.n_cores if t.id <= TARGETS.index("core_reg") else core == 0
        if not (core_ok and 0 <= addr < t.depth and data & ~t.mask == 0):
            raise NeurotileValueError(f"bad bus access {target} core {core} addr {addr} data "
                                      f"{data:#x}")

    def write(self, target, core, addr, data):
        self._check(target, core, addr, data)
        self.log.append(("write", target, core, addr, data))
        if target in MEMORIES:
            self.mem[target, core, addr] = data
        elif target == "core_reg":
            self.regs[core, CORE_REGISTERS[addr].name] = data
        elif target == "chip_reg":
            name = CHIP_REGISTERS[addr].name
            if name == "step":
                self.step = data
            elif name == "flags":
                self.flags = 0
            else:
                raise NeurotileValueError(f"write to read-only chip register {name}")
        elif target == "inject":
            self.inject[addr] = data
        else:
            raise NeurotileValueError(f"write to read-only target {target}")

    def read(self, target, core, addr):
        self._check(target, core, addr)
        self.log.append(("read", target, core, addr))
        if target in MEMORIES:
            return self.mem.get((target, core, addr), 0)
        if target == "core_reg":
            return self.regs.get((core, CORE_REGISTERS[addr].name), 0)
        if target == "chip_reg":
            return {"step": self.step, "flags": self.flags, "n_output": len(self.output),
                    "out_dropped": self.out_dropped}[CHIP_REGISTERS[addr].name]
        if target == "output":
            if addr >= len(self.output):
                return 0
            packet, offset = self.output[addr]
            return packet | offset << (8 * self.info["inject"].nbytes)
        if target == "counter":
            return self.counters[addr]
        raise NeurotileValueError(f"read of write-only target {target}")

    def run(self, steps, n_inject):
        self.log.append(("run", steps, n_inject))
        depth = self.arch.host_out_depth
        packets = [self.inject.get(i, 0) for i in range(n_inject)]
        self.output = [(p, i % steps) for i, p in enumerate(packets[:depth])]
        self.out_dropped = max(0, n_inject - depth)
        self.step = (self.step + steps) & _U32
        self.counters = [(self.step * 1000 + k) & _U32 for k in range(len(self.counters))]


class HostPortModel:
    """Byte-level golden model of :class:`~neurotile.hdl.hostport.HostPort`.

    :meth:`feed` takes host bytes and returns the response bytes they complete; the bus
    transactions go to ``backend`` in the order the RTL issues them. Time is not modelled: call
    :meth:`timeout` where the RTL would see ``frame_timeout`` idle cycles inside a frame.

    Members
    -------
    skipped : int
        Bytes skipped outside frames (wraps at 2^32).
    inject_level : int
        Packets in the host input buffer.
    """

    def __init__(self, arch, backend, *, max_payload=DEFAULT_MAX_PAYLOAD):
        self.arch = _check_arch(arch)
        if not isinstance(backend, HostBackend):
            raise NeurotileTypeError(f"backend must be a HostBackend, not {backend!r}")
        self.backend = backend
        self.max_payload = _check_max_payload(max_payload)
        self.info = target_info(arch)
        self.skipped = 0
        self.inject_level = 0
        self._frame = None       # bytes after SYNC, while inside a frame

    @property
    def in_frame(self):
        return self._frame is not None

    def feed(self, data):
        out = bytearray()
        for byte in bytes(data):
            if self._frame is None:
                if byte == SYNC_COMMAND:
                    self._frame = bytearray()
                else:
                    self.skipped = (self.skipped + 1) & _U32
                continue
            self._frame += byte.to_bytes(1, "little")
            f = self._frame
            if len(f) >= 3 and len(f) == 3 + (f[1] | f[2] << 8) + 1:
                self._frame = None
                out += self._complete(f[0], bytes(f[3:-1]), crc8(f[:-1]) == f[-1])
        return bytes(out)

    def timeout(self):
        """The frame in progress, if any, is dropped: its TRUNCATED response."""
        if self._frame is None:
            return b""
        cmd = self._frame[0] if self._frame else 0
        self._frame = None
        return encode_response(Status.TRUNCATED, bytes([cmd]))

    def _complete(self, code, payload, crc_ok):
        status = (check_request(self.arch, self.max_payload, code, payload, self.inject_level)
                  if crc_ok else Status.BAD_CRC)
        if status != Status.OK:
            return encode_response(status, bytes([code]))
        return encode_response(Status.OK, self._execute(command(code), payload))

    def _words(self, target, core, addr, count):
        t = self.info[target]
        return b"".join((self.backend.read(target, core, addr + i) & t.mask)
                        .to_bytes(t.nbytes, "little") for i in range(count))

    def _execute(self, c, payload):
        b, a = self.backend, self.arch
        arg = {f.name: _arg(payload, c, f.name) for f in c.request}
        if c.name == "PING":
            return (MAGIC + bytes([PROTOCOL_VERSION]) + arch_hash(a).to_bytes(4, "little")
                    + self.max_payload.to_bytes(2, "little") + self.skipped.to_bytes(4, "little"))
        if c.name in ("WRITE_MEM", "READ_MEM"):
            target = MEMORIES[arg["memory"]]
            if c.name == "READ_MEM":
                return self._words(target, arg["core"], arg["addr"], arg["count"])
            self._write_items(target, arg["core"], arg["addr"], payload[c.header_size:],
                              arg["count"])
            return b""
        if c.name in ("WRITE_REG", "READ_REG"):
            reg = register(arg["register"])
            core = arg["core"] if reg.scope == "core" else 0
            if c.name == "READ_REG":
                return self._words(reg.target, core, reg.addr, 1)
            b.write(reg.target, core, reg.addr, arg["value"])
            return b""
        if c.name == "INJECT":
            self._write_items("inject", 0, self.inject_level, payload[c.header_size:],
                              arg["count"])
            self.inject_level += arg["count"]
            return b""
        if c.name == "RUN":
            b.run(arg["steps"], self.inject_level)
            self.inject_level = 0
            return self._words("chip_reg", 0, 0, len(CHIP_REGISTERS))
        if c.name == "READ_OUTPUT":
            return self._words("output", 0, arg["start"], arg["count"])
        if c.name == "READ_COUNTERS":
            return self._words("counter", 0, arg["start"], arg["count"])
        if c.name == "CLEAR_STATE":
            for core in range(a.n_cores):
                for target in ("neuron_state", "acc"):
                    for addr in range(self.info[target].depth):
                        b.write(target, core, addr, 0)
            for name in ("step", "flags"):
                b.write("chip_reg", 0, register(name).addr, 0)
            self.inject_level = 0
            return b""
        raise AssertionError(c.name)   # pragma: no cover - every command is handled above

    def _write_items(self, target, core, addr, data, count):
        t = self.info[target]
        for i in range(count):
            word = int.from_bytes(data[i * t.nbytes:(i + 1) * t.nbytes], "little")
            self.backend.write(target, core, addr + i, word & t.mask)


def _check_max_payload(max_payload):
    if isinstance(max_payload, bool) or not isinstance(max_payload, int):
        raise NeurotileTypeError(f"max_payload must be an int, not {max_payload!r}")
    if not MIN_MAX_PAYLOAD <= max_payload <= 0xFFFF:
        raise NeurotileValueError(f"max_payload must be between {MIN_MAX_PAYLOAD} and 65535, "
                                  f"not {max_payload!r}")
    return max_payload


# -- host side -------------------------------------------------------------------------------------

class Transport(abc.ABC):
    """A byte link to a chip (pyserial port, co-simulation, model)."""

    @abc.abstractmethod
    def write(self, data):
        """Send ``data`` (bytes)."""

    @abc.abstractmethod
    def read(self, n, timeout):
        """Return up to ``n`` received bytes; fewer (possibly none) once ``timeout`` seconds pass."""


class LoopbackTransport(Transport):
    """A transport to a :class:`HostPortModel` (responses are available at once)."""

    def __init__(self, model):
        self.model = model
        self._rx = bytearray()

    def write(self, data):
        self._rx += self.model.feed(data)

    def read(self, n, timeout):
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out


RunStatus = collections.namedtuple("RunStatus", "step flags n_output out_dropped")
RunStatus.__doc__ = ("What RUN reports: the chip step counter, the sticky flags (dict of bool), "
                     "the output entries captured and the host-bound packets dropped.")


class HostClient:
    """Drives a chip over the host protocol.

    Parameters
    ----------
    transport : Transport
        ``write(bytes)`` and ``read(n, timeout)``.
    arch : Arch
        The architecture the host expects; :meth:`ping` refuses a chip built for another.
    timeout : float
        Seconds to wait for a response (RUN adds ``run_timeout_per_step`` per step).
    run_timeout_per_step : float
    max_payload : int, optional
        The chip's payload buffer; learned from PING when omitted.

    Raises
    ------
    ToolchainError
        From every call: no (complete) response within the timeout, a corrupted response, a chip
        that answers PING wrongly, or an error status (the message names the status and the
        command; the exception has ``status`` and ``command`` attributes).
    """

    def __init__(self, transport, arch, *, timeout=2.0, run_timeout_per_step=0.05,
                 max_payload=None):
        if not isinstance(transport, Transport) and not (hasattr(transport, "write")
                                                         and hasattr(transport, "read")):
            raise NeurotileTypeError(f"transport must have write(bytes) and read(n, timeout), "
                                     f"not {transport!r}")
        self.transport = transport
        self.arch = _check_arch(arch)
        self.info = target_info(arch)
        self.timeout = float(timeout)
        self.run_timeout_per_step = float(run_timeout_per_step)
        self.max_payload = None if max_payload is None else _check_max_payload(max_payload)
        self.inject_level = 0
        self._dirty = False

    # -- frames ------------------------------------------------------------------------------------

    def command(self, cmd, payload=b"", *, timeout=None):
        """Send one command frame and return its OK response payload."""
        c = command(cmd)
        if self._dirty:
            self._drain()
        self.transport.write(encode_command(c, payload))
        status, body = self._receive(c, self.timeout if timeout is None else timeout)
        if status != Status.OK:
            try:
                name = f"{Status(status).name} ({Status(status).doc})"
            except ValueError:
                name = f"unknown status 0x{status:02x}"
            err = ToolchainError(f"the chip answered {c.name} with {name}")
            err.status, err.command = status, c.name
            raise err
        return body

    def _drain(self):
        while self.transport.read(4096, 0):
            pass
        self._dirty = False

    def _read_exact(self, n, deadline, c, got):
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self._dirty = True
                raise ToolchainError(
                    f"no complete response to {c.name} within the timeout ({got + len(out)} bytes "
                    f"received): is the chip connected, powered and running this protocol?")
            out += self.transport.read(n - len(out), left)
        return bytes(out)

    def _receive(self, c, timeout):
        deadline = time.monotonic() + timeout
        got = 0
        while self._read_exact(1, deadline, c, got)[0] != SYNC_RESPONSE:
            got += 1                                        # noise before the response
        head = self._read_exact(3, deadline, c, got + 1)
        n = head[1] | head[2] << 8
        rest = self._read_exact(n + 1, deadline, c, got + 4)
        if crc8(head + rest[:-1]) != rest[-1]:
            self._dirty = True
            raise ToolchainError(f"the response to {c.name} fails its CRC: the link corrupts "
                                 f"bytes")
        return head[0], rest[:-1]

    # -- plain commands ----------------------------------------------------------------------------

    def ping(self):
        """Check that the chip speaks this protocol for this Arch; return the PING fields."""
        r = parse_response(self.arch, "PING", self.command("PING"))
        if r["magic"] != MAGIC:
            raise ToolchainError(f"the chip's PING magic is {r['magic']!r}, not {MAGIC!r}: this is "
                                 f"not a neurotile host port")
        if r["version"] != PROTOCOL_VERSION:
            raise ToolchainError(f"the chip speaks host protocol version {r['version']}, this "
                                 f"neurotile version {PROTOCOL_VERSION}: rebuild the chip")
        if r["arch_hash"] != arch_hash(self.arch):
            raise ToolchainError(f"the chip was built for another Arch (hash "
                                 f"0x{r['arch_hash']:08x}, expected 0x{arch_hash(self.arch):08x} "
                                 f"for {self.arch.name!r}): rebuild it or use its Arch")
        self.max_payload = r["max_payload"]
        return r

    def _payload_limit(self):
        if self.max_payload is None:
            self.ping()
        return self.max_payload

    def write_mem(self, core, memory, addr, words):
        """Write ``words`` (packed, e.g. :meth:`CoreImage.words`) to a memory from ``addr`` on."""
        mem = memory_id(memory)
        words = np.asarray(words, np.uint64).ravel()
        wb = self.info[MEMORIES[mem]].nbytes
        per = (self._payload_limit() - 8) // wb
        for k in range(0, words.size, per):
            chunk = words[k:k + per]
            self.command("WRITE_MEM", command_payload(self.arch, "WRITE_MEM", chunk, core=core,
                                                      memory=mem, addr=addr + k))

    def read_mem(self, core, memory, addr, count):
        """``count`` words of a memory from ``addr`` on (``uint64`` array)."""
        mem = memory_id(memory)
        wb = self.info[MEMORIES[mem]].nbytes
        per = self._payload_limit() // wb
        out = []
        for k in range(0, count, per):
            n = min(per, count - k)
            body = self.command("READ_MEM", command_payload(self.arch, "READ_MEM", core=core,
                                                            memory=mem, addr=addr + k, count=n))
            out += parse_response(self.arch, "READ_MEM", body, mem)["items"]
        return np.array(out, np.uint64)

    def write_reg(self, core, name, value):
        self.command("WRITE_REG", command_payload(self.arch, "WRITE_REG", core=core,
                                                  register=name, value=value))

    def read_reg(self, core, name):
        body = self.command("READ_REG", command_payload(self.arch, "READ_REG", core=core,
                                                        register=name))
        return parse_response(self.arch, "READ_REG", body)["value"]

    def clear_state(self):
        """Zero u, v and the accumulators, the step counter and the flags; empty the input."""
        self.command("CLEAR_STATE")
        self.inject_level = 0

    # -- high level --------------------------------------------------------------------------------

    def load_image(self, image, *, full=True):
        """Load a :class:`~neurotile.ChipImage`: every memory and register of every core.

        The chip is cleared first (CLEAR_STATE: step counter, flags, input buffer). With ``full``
        every word of every memory is written, unused ones as zeros (so the chip's memories equal
        the image whatever they held); otherwise only the words the image uses (faster over a UART).
        """
        if not isinstance(image, ChipImage):
            raise NeurotileTypeError(f"image must be an nt.ChipImage, not {type(image).__name__}")
        if arch_hash(image.arch) != arch_hash(self.arch):
            raise NeurotileValueError(f"the image was compiled for Arch {image.arch.name!r}, "
                                      f"which differs from this client's {self.arch.name!r}")
        self.ping()
        self.clear_state()
        for c, core in enumerate(image.cores):
            for mem in MEMORIES:
                depth = self.info[mem].depth
                if mem == "acc":
                    words = np.zeros(depth if full else 0, np.uint64)
                else:
                    used = core.words(self.arch, mem)
                    words = np.zeros(depth if full else used.size, np.uint64)
                    words[:used.size] = used
                self.write_mem(c, mem, 0, words)
            self.write_reg(c, "n_neurons", core.n_neurons)
            self.write_reg(c, "n_axons", core.n_axons)

    def inject(self, packets):
        """Append packets (packed words, or a dict of packet field arrays) to the input buffer.

        Raises
        ------
        EmulatorError
            The buffer would hold more than ``host_in_depth`` packets (nothing is sent).
        """
        if isinstance(packets, dict):
            packets = pack(self.arch.layouts.packet, packets)
        words = np.asarray(packets, np.uint64).ravel()
        if self.inject_level + words.size > self.arch.host_in_depth:
            raise EmulatorError(f"injecting {words.size} packets would put "
                                f"{self.inject_level + words.size} in the host input buffer, more "
                                f"than host_in_depth ({self.arch.host_in_depth}) per step")
        per = (self._payload_limit() - 2) // self.info["inject"].nbytes
        for k in range(0, words.size, per):
            chunk = words[k:k + per]
            self.command("INJECT", command_payload(self.arch, "INJECT", chunk))
            self.inject_level += chunk.size

    def run(self, steps, *, timeout=None):
        """Run ``steps`` steps (the first injects the input buffer); return a :class:`RunStatus`."""
        if timeout is None:
            timeout = self.timeout + steps * self.run_timeout_per_step
        body = self.command("RUN", command_payload(self.arch, "RUN", steps=steps),
                            timeout=timeout)
        self.inject_level = 0
        r = parse_response(self.arch, "RUN", body)
        return RunStatus(r["step"], _flag_dict(r["flags"]), r["n_output"], r["out_dropped"])

    def read_output(self):
        """The output entries of the last RUN: ``{"step": offsets, "words": packets, <fields>}``."""
        n = self.read_reg(0, "n_output")
        t = self.info["output"]
        per = self._payload_limit() // t.nbytes
        entries = []
        for k in range(0, n, per):
            count = min(per, n - k)
            body = self.command("READ_OUTPUT", command_payload(self.arch, "READ_OUTPUT", start=k,
                                                               count=count))
            entries += parse_response(self.arch, "READ_OUTPUT", body)["items"]
        shift = 8 * self.info["inject"].nbytes
        words = np.array([e & ((1 << shift) - 1) for e in entries], np.uint64)
        out = {"step": np.array([e >> shift for e in entries], np.int64), "words": words}
        out.update(unpack(self.arch.layouts.packet, words))
        return out

    def read_counters(self):
        """The counters of the last step, shaped like :class:`~neurotile.emulator.result.RunResult`'s.

        Returns a dict: ``step`` and the chip counters (int), per-core counters (int64 arrays
        [n_cores]), ``link`` [n_cores, 5], ``flags`` (dict of bool) and ``flag_step`` (dict of int,
        -1 if never raised).
        """
        names = counter_map(self.arch)
        per = self._payload_limit() // 4
        values = []
        for k in range(0, len(names), per):
            count = min(per, len(names) - k)
            body = self.command("READ_COUNTERS", command_payload(
                self.arch, "READ_COUNTERS", start=k, count=count))
            values += parse_response(self.arch, "READ_COUNTERS", body)["items"]
        word = dict(zip(names, values))
        out = {n: word[n] for n in ("step",) + COUNTERS_CHIP + _CYCLE_CHIP}
        out["flags"] = _flag_dict(word["flags"])
        out["flag_step"] = {f: -1 if word[f"flag_step.{f}"] == _U32 else word[f"flag_step.{f}"]
                            for f in FLAGS}
        cores = range(self.arch.n_cores)
        for n in COUNTERS_PER_CORE + _CYCLE_CORE:
            out[n] = np.array([word[f"core{c}.{n}"] for c in cores], np.int64)
        out["link"] = np.array([[word[f"core{c}.link.{p}"] for p in LINK_PORTS] for c in cores],
                               np.int64).reshape(self.arch.n_cores, len(LINK_PORTS))
        return out


def _flag_dict(bits):
    return {f: bool(bits >> i & 1) for i, f in enumerate(FLAGS)}


# -- generated descriptions ------------------------------------------------------------------------

def protocol_description(arch, *, max_payload=DEFAULT_MAX_PAYLOAD, frame_timeout=None):
    """Everything a host needs to talk to a chip of ``arch``, as JSON-serialisable data."""
    a = _check_arch(arch)
    info = target_info(a)
    lay = a.layouts
    target_bits, core_bits, addr_bits, data_bits = bus_widths(a)

    def fields(fs):
        return [{"name": f.name, "bytes": f.size, "doc": f.doc} for f in fs]

    return {
        "format": "neurotile-host-protocol",
        "version": PROTOCOL_VERSION,
        "arch": a.to_dict(),
        "arch_hash": arch_hash(a),
        "framing": {"sync_command": SYNC_COMMAND, "sync_response": SYNC_RESPONSE,
                    "crc": {"width": 8, "poly": 0x07, "init": 0, "reflect": False, "xorout": 0,
                            "covers": "CMD/STATUS, LEN, PAYLOAD"},
                    "byte_order": "little", "max_payload": max_payload,
                    "frame_timeout_cycles": frame_timeout, "magic": MAGIC.decode()},
        "status": [{"code": int(s), "name": s.name, "doc": s.doc} for s in Status],
        "commands": [{"code": c.code, "name": c.name, "request": fields(c.request),
                      "request_items": c.request_items, "response": fields(c.response),
                      "response_items": c.response_items, "checks": c.checks, "doc": c.doc}
                     for c in COMMANDS],
        "items": ITEM_KINDS,
        "memories": [{"id": info[m].id, "name": m, "depth": info[m].depth,
                      "width": lay[m].size, "bytes": info[m].nbytes,
                      "fields": [{"name": n, "lsb": f.offset, "width": f.width,
                                  "signed": f.shape.signed} for n, f in lay[m]]}
                     for m in MEMORIES],
        "packet_bytes": info["inject"].nbytes,
        "registers": [{"code": r.code, "name": r.name, "scope": r.scope,
                       "writable": r.writable, "max": r.maximum(a) if r.writable else None,
                       "doc": r.doc} for r in REGISTERS],
        "counters": counter_map(a),
        "bus": {"targets": {t.name: {"id": t.id, "depth": t.depth, "mask": t.mask,
                                     "bytes": t.nbytes, "access": t.access}
                            for t in info.values()},
                "target_bits": target_bits, "core_bits": core_bits, "addr_bits": addr_bits,
                "data_bits": data_bits},
    }


def protocol_json(arch, **kwargs):
    """:func:`protocol_description` as JSON text (``neurotile rtl`` writes it next to the Verilog)."""
    return json.dumps(protocol_description(arch, **kwargs), indent=2) + "\n"


def protocol_markdown():
    """The command, status, register and bus-target tables of docs/architecture.md section 9."""
    def fmt(fields, items):
        parts = [f"`{f.name}` " + ("4 bytes" if f.name == "magic" else f"u{8 * f.size}")
                 for f in fields]
        if items:
            parts.append(f"`count` x {items}")
        return ", ".join(parts) if parts else "(empty)"

    lines = ["| CMD | command | request payload | OK response payload | BAD_ARGUMENT / OVERFLOW "
             "when not | effect |", "|---|---|---|---|---|---|"]
    for c in COMMANDS:
        lines.append(f"| 0x{c.code:02X} | {c.name} | {fmt(c.request, c.request_items)} | "
                     f"{fmt(c.response, c.response_items)} | {c.checks} | {c.doc} |")
    lines += ["", "| STATUS | name | meaning |", "|---|---|---|"]
    lines += [f"| 0x{int(s):02X} | {s.name} | {s.doc} |" for s in Status]
    lines += ["", "| register | name | scope | write | meaning |", "|---|---|---|---|---|"]
    for r in REGISTERS:
        w = "read only" if not r.writable else ("0 only" if r.name == "flags" else "yes")
        lines.append(f"| 0x{r.code:02X} | `{r.name}` | {r.scope} | {w} | {r.doc} |")
    lines += ["", "| bus target | id | addresses | word |", "|---|---|---|---|"]
    words = {"core_reg": "u32, address = register code", "chip_reg": "u32, address = code - 0x80",
             "inject": "packet, write only", "output": "packet + (step offset << 8 * packet bytes), "
             "read only", "counter": "u32, read only, see the counter map"}
    depths = {"neuron_state": "N", "neuron_cfg": "N", "profile": "profiles_per_core",
              "axon": "axons_per_core", "synapse": "synapses_per_core", "fanout_index": "N",
              "fanout": "fanout_per_core", "acc": "max_delay * N",
              "core_reg": str(len(CORE_REGISTERS)), "chip_reg": str(len(CHIP_REGISTERS)),
              "inject": "host_in_depth", "output": "host_out_depth",
              "counter": f"{_CHIP_WORDS} + {len(_CORE_WORDS)} * n_cores"}
    for k, t in enumerate(TARGETS):
        lines.append(f"| `{t}` | {k} | {depths[t]} | {words.get(t, 'memory word')} |")
    return "\n".join(lines) + "\n"
