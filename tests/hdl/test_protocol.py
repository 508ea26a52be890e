"""Tests for the host protocol (:mod:`neurotile.hdl.protocol`): codec, CRC, request checks, the golden
model and the host client.

Where expected values come from:

* CRC-8/0x07 (init 0, no reflection, no final XOR, the catalogue's CRC-8/SMBUS): its published check value
  over b"123456789" is 0xF4; a one-byte message b"\\x01" gives the polynomial itself, 0x07.
* Frame bytes: written out by hand from the framing rule ``sync cmd len_lo len_hi payload crc``.
* Statuses: the rules of docs/architecture.md section 9, one hand-made frame per rule.
* load_image: every word of every memory of every core of the compiled image, read back from the fake
  chip's dicts and compared with ``CoreImage.words``.
"""

import json
import os
import re
import time

import numpy as np
import pytest

import neurotile as nt
from neurotile.emulator.result import COUNTERS_CHIP, COUNTERS_PER_CORE
from neurotile.emulator.state import FLAGS
from neurotile.hdl import protocol as P
from neurotile.hdl.protocol import (
    COMMANDS, MEMORIES, DictBackend, HostClient, HostPortModel, LoopbackTransport, Status, Transport,
    command_payload, crc8, decode_response, encode_command, encode_response, parse_response,
)

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "architecture.md")


def small_arch(**kw):
    fields = dict(mesh_w=2, mesh_h=1, neurons_per_core=8, profiles_per_core=2, axons_per_core=16,
                  synapses_per_core=32, fanout_per_core=16, max_delay=2, host_in_depth=6, host_out_depth=4)
    fields.update(kw)
    return nt.Arch(**fields)


def fake_chip(arch, max_payload=32):
    backend = DictBackend(arch)
    model = HostPortModel(arch, backend, max_payload=max_payload)
    return backend, model


def session(model, cmd, payload=b""):
    """One frame through the model; the decoded response."""
    return decode_response(model.feed(encode_command(cmd, payload)))


# --- CRC and framing ------------------------------------------------------------------------------------------

def test_crc8_known_answers():
    assert crc8(b"123456789") == 0xF4          # CRC-8/SMBUS check value
    assert crc8(b"") == 0x00
    assert crc8(b"\x01") == 0x07               # a single 1 in the last bit leaves the polynomial
    assert crc8(b"\x80") == 0x89               # 0x80: first shift leaves 0x07, 7 more give 0x89
    assert crc8(b"56789", crc8(b"1234")) == 0xF4   # continuing over more data


def test_encode_command_bytes_by_hand():
    # PING: sync, cmd 0x01, len 0 0. CRC over 01 00 00: 0x01 gives 0x07; each zero byte shifts the register
    # 8 times (reducing by 0x07 whenever bit 7 falls out): 0x07 -> 0x15 -> 0x6B.
    assert encode_command("PING") == bytes([0xA5, 0x01, 0x00, 0x00, 0x6B])
    payload = command_payload(small_arch(), "WRITE_REG", core=1, register="n_axons", value=0x0403)
    assert payload == bytes([1, 0x01, 0x03, 0x04, 0, 0])
    frame = encode_command("WRITE_REG", payload)
    assert frame[:4] == bytes([0xA5, 0x04, 6, 0]) and frame[4:-1] == payload
    assert frame[-1] == crc8(frame[1:-1])
    assert encode_command(0x07, b"\x02\x00") == encode_command("RUN", b"\x02\x00")


@pytest.mark.parametrize("status", list(Status))
def test_response_round_trip_every_status(status):
    payload = bytes(range(status + 1))
    assert decode_response(encode_response(status, payload)) == (status, payload)


def test_response_round_trip_long_payload():
    payload = bytes(k % 251 for k in range(0xFFFF))
    assert decode_response(encode_response(Status.OK, payload)).payload == payload


def test_decode_response_rejects_malformed_frames():
    good = encode_response(Status.OK, b"\x01\x02")
    with pytest.raises(nt.ToolchainError, match=r"^a response frame must start with 0x5A"):
        decode_response(b"\xa5" + good[1:])
    with pytest.raises(nt.ToolchainError, match=r"^response frame of LEN 2 must be 7 bytes, not 6$"):
        decode_response(good[:-1])
    with pytest.raises(nt.ToolchainError, match=r"^response frame fails its CRC"):
        decode_response(good[:-2] + bytes([good[-2] ^ 1]) + good[-1:])


def test_command_payload_layouts_follow_the_table():
    a = small_arch()
    # neuron_state words are 48 bits: 6 bytes each, little endian.
    p = command_payload(a, "WRITE_MEM", [0x0102030405, 7], core=1, memory="neuron_state", addr=3)
    assert p == bytes([1, 0, 3, 0, 0, 0, 2, 0]) + bytes([5, 4, 3, 2, 1, 0]) + bytes([7, 0, 0, 0, 0, 0])
    # Packets of this arch are 1 + 1 + 1 + 4 = 7 bits: 1 byte each.
    assert command_payload(a, "INJECT", [5, 6]) == bytes([2, 0, 5, 6])
    assert command_payload(a, "READ_OUTPUT", start=1, count=3) == bytes([1, 0, 0, 0, 3, 0])
    for c in COMMANDS:   # every header is at most the 8 argument bytes the host port keeps
        assert c.header_size <= P.ARG_BYTES


def test_command_payload_errors_name_the_field():
    a = small_arch()
    with pytest.raises(nt.NeurotileValueError, match=r"^`addr` must be between 0 and 4294967295, not -1$"):
        command_payload(a, "READ_MEM", core=0, memory=0, addr=-1, count=1)
    with pytest.raises(nt.NeurotileValueError, match=r"^READ_MEM needs the field 'count'$"):
        command_payload(a, "READ_MEM", core=0, memory=0, addr=0)
    with pytest.raises(nt.NeurotileValueError, match=r"^RUN has no field 'step'"):
        command_payload(a, "RUN", step=1)
    with pytest.raises(nt.NeurotileValueError, match=r"^RUN carries no items$"):
        command_payload(a, "RUN", [1], steps=1)
    with pytest.raises(nt.NeurotileValueError, match=r"^`item` must be between 0 and 255, not 256$"):
        command_payload(a, "INJECT", [256])
    with pytest.raises(nt.NeurotileValueError, match=r"^memory must be one of neuron_state, .*, not 'accu'$"):
        command_payload(a, "READ_MEM", core=0, memory="accu", addr=0, count=1)
    with pytest.raises(nt.NeurotileValueError, match=r"^command must be one of PING, .*, not 'RESET'$"):
        encode_command("RESET")
    with pytest.raises(nt.NeurotileTypeError, match=r"^`core` must be an int, not 1.0$"):
        command_payload(a, "READ_REG", core=1.0, register="step")


def test_parse_response_fields_and_items():
    a = small_arch()
    r = parse_response(a, "RUN", bytes(range(16)))
    assert r == {"step": 0x03020100, "flags": 0x07060504, "n_output": 0x0B0A0908, "out_dropped": 0x0F0E0D0C}
    assert parse_response(a, "READ_MEM", bytes(12), memory="neuron_state")["items"] == [0, 0]
    with pytest.raises(nt.ToolchainError, match=r"^READ_MEM response payload of 5 bytes is not a whole number "
                                                r"of 6-byte items$"):
        parse_response(a, "READ_MEM", bytes(5), memory="neuron_state")
    with pytest.raises(nt.ToolchainError, match=r"^RUN response payload must hold at least 16 bytes, not 3$"):
        parse_response(a, "RUN", bytes(3))
    with pytest.raises(nt.ToolchainError, match=r"^READ_REG response payload must be 4 bytes, not 5$"):
        parse_response(a, "READ_REG", bytes(5))
    with pytest.raises(nt.NeurotileValueError, match=r"^a payload must be at most 65535 bytes, not 65536$"):
        encode_command("WRITE_MEM", bytes(1 << 16))


# --- tables ---------------------------------------------------------------------------------------------------

def test_memory_ids_match_the_core_cfg_targets():
    # The host bus's memory targets are the bits of the core's cfg.we/cfg.re strobes, in order.
    from neurotile.hdl.core import CFG_TARGETS
    assert tuple(P.TARGETS[:len(CFG_TARGETS)]) == MEMORIES + ("core_reg",)
    assert CFG_TARGETS == MEMORIES + ("regs",)


def test_counter_map_has_the_runresult_counters():
    a = small_arch()
    names = P.counter_map(a)
    # 12 chip words (step, 3 chip counters, 3 cycle counts, flags, 4 flag steps) + 12 per core.
    assert len(names) == 12 + 12 * a.n_cores
    assert names[:4] == ["step", *COUNTERS_CHIP]
    assert names[7] == "flags" and names[8:12] == [f"flag_step.{f}" for f in FLAGS]
    assert names[12:17] == [f"core0.{n}" for n in COUNTERS_PER_CORE]
    assert names[-5:] == [f"core1.link.{p}" for p in "NESWL"]


def test_arch_hash_ignores_the_name_only():
    a = small_arch()
    assert P.arch_hash(a) == P.arch_hash(a.replace(name="other"))
    assert P.arch_hash(a) != P.arch_hash(a.replace(fifo_depth=3))
    assert 0 <= P.arch_hash(a) < 1 << 32


def test_protocol_json_describes_memories_commands_and_bus():
    a = nt.Arch()
    d = json.loads(P.protocol_json(a, frame_timeout=1000))
    assert [c["name"] for c in d["commands"]] == [c.name for c in COMMANDS]
    assert [m["name"] for m in d["memories"]] == list(MEMORIES)
    syn = d["memories"][MEMORIES.index("synapse")]
    assert syn["width"] == a.layouts.synapse.size and syn["bytes"] == 3 and syn["depth"] == 65536
    assert d["arch_hash"] == P.arch_hash(a) and d["framing"]["frame_timeout_cycles"] == 1000
    assert d["bus"]["targets"]["counter"]["depth"] == len(d["counters"]) == 12 + 12 * 4


def test_spec_section_9_holds_the_generated_tables():
    with open(DOC) as f:
        text = f.read()
    section = text[text.index("## 9. Host port"):]
    assert P.protocol_markdown() in section, "regenerate the tables of section 9 with protocol_markdown()"


# --- the golden model: statuses ---------------------------------------------------------------------------------

def test_model_executes_and_reads_back():
    a = small_arch()
    backend, model = fake_chip(a)
    words = [0x123456789ABC & ((1 << 48) - 1), 5]
    r = session(model, "WRITE_MEM", command_payload(a, "WRITE_MEM", words, core=1, memory="neuron_state", addr=6))
    assert r == (Status.OK, b"")
    assert backend.mem["neuron_state", 1, 6] == words[0] and backend.mem["neuron_state", 1, 7] == 5
    r = session(model, "READ_MEM", command_payload(a, "READ_MEM", core=1, memory="neuron_state", addr=6, count=2))
    assert parse_response(a, "READ_MEM", r.payload, "neuron_state")["items"] == words


def _frames(a):
    """(name, frame bytes, expected status) of one bad frame per rule of the status table."""
    def frame(cmd, **kw):
        return encode_command(cmd, command_payload(a, cmd, **kw))

    def flip(data, k, bit=0):
        data = bytearray(data)
        data[k] ^= 1 << bit
        return bytes(data)

    good = frame("READ_REG", core=0, register="n_neurons")
    return [
        ("flipped payload bit", flip(good, 4), Status.BAD_CRC),
        ("flipped crc bit", flip(good, len(good) - 1, 7), Status.BAD_CRC),
        ("unknown command", P.encode_frame(P.SYNC_COMMAND, 0x7E), Status.UNKNOWN_COMMAND),
        ("fixed length wrong", encode_command("READ_REG", b"\x00\x00\x00"), Status.BAD_LENGTH),
        ("length over max_payload", encode_command("PING", bytes(40)), Status.BAD_LENGTH),
        ("write count disagrees with LEN",
         encode_command("WRITE_MEM", command_payload(a, "WRITE_MEM", [1, 2], core=0, memory="axon", addr=0,
                                                     count=3)), Status.BAD_LENGTH),
        ("write shorter than its header", encode_command("WRITE_MEM", bytes(5)), Status.BAD_LENGTH),
        ("inject count disagrees with LEN", encode_command("INJECT", bytes([2, 0, 1])), Status.BAD_LENGTH),
        ("core out of range", frame("READ_MEM", core=2, memory=0, addr=0, count=1), Status.BAD_ARGUMENT),
        ("unknown memory with a word", encode_command("WRITE_MEM", bytes([0, 8, 0, 0, 0, 0, 1, 0, 9])),
         Status.BAD_ARGUMENT),
        ("address range past the memory", frame("READ_MEM", core=0, memory="axon", addr=15, count=2),
         Status.BAD_ARGUMENT),
        ("address beyond 32 bits of depth", frame("READ_MEM", core=0, memory="axon", addr=1 << 31, count=0),
         Status.BAD_ARGUMENT),
        ("read larger than max_payload", frame("READ_MEM", core=0, memory="neuron_state", addr=0, count=6),
         Status.BAD_ARGUMENT),
        ("unknown register", frame("READ_REG", core=0, register=0x05), Status.BAD_ARGUMENT),
        ("chip register with core 1", frame("READ_REG", core=1, register="step"), Status.BAD_ARGUMENT),
        ("core register of a missing core", frame("READ_REG", core=2, register="n_axons"), Status.BAD_ARGUMENT),
        ("write of a read-only register", frame("WRITE_REG", core=0, register="n_output", value=0),
         Status.BAD_ARGUMENT),
        ("register value above its maximum", frame("WRITE_REG", core=1, register="n_neurons", value=9),
         Status.BAD_ARGUMENT),
        ("flags written non-zero", frame("WRITE_REG", core=0, register="flags", value=1), Status.BAD_ARGUMENT),
        ("run of zero steps", frame("RUN", steps=0), Status.BAD_ARGUMENT),
        ("output range past the buffer", frame("READ_OUTPUT", start=3, count=2), Status.BAD_ARGUMENT),
        ("counter range past the map", frame("READ_COUNTERS", start=30, count=7), Status.BAD_ARGUMENT),
        ("counters larger than max_payload", frame("READ_COUNTERS", start=0, count=9), Status.BAD_ARGUMENT),
        ("inject past host_in_depth", frame("INJECT", items=[1] * 7), Status.OVERFLOW),
    ]


def test_every_error_status_path_and_nothing_executes():
    a = small_arch()
    backend, model = fake_chip(a)
    for name, frame, status in _frames(a):
        r = decode_response(model.feed(frame))
        assert r.status == status, name
        assert r.payload == frame[1:2], name            # an error response echoes the CMD byte
    assert backend.log == [] and model.inject_level == 0
    # Truncation: a frame that stops before its CRC byte, then the timeout.
    assert model.feed(encode_command("PING")[:-1]) == b""
    assert decode_response(model.timeout()) == (Status.TRUNCATED, b"\x01")
    assert model.feed(b"\xa5") == b"" and decode_response(model.timeout()) == (Status.TRUNCATED, b"\x00")
    assert model.timeout() == b""                      # outside a frame nothing happens
    assert backend.log == []


def test_overflow_appends_nothing_but_a_fitting_inject_does():
    a = small_arch()
    backend, model = fake_chip(a)
    assert session(model, "INJECT", command_payload(a, "INJECT", [1, 2, 3, 4])).status == Status.OK
    assert session(model, "INJECT", command_payload(a, "INJECT", [5, 6, 7])).status == Status.OVERFLOW
    assert model.inject_level == 4 and len(backend.inject) == 4
    assert session(model, "INJECT", command_payload(a, "INJECT", [5, 6])).status == Status.OK
    assert model.inject_level == 6 == a.host_in_depth


def test_bytes_outside_frames_are_skipped_and_counted():
    a = small_arch()
    _, model = fake_chip(a)
    out = model.feed(b"\x00\x5a\xff" + encode_command("PING") + b"\x11")
    r = parse_response(a, "PING", decode_response(out).payload)
    assert r["skipped"] == 3 and r["magic"] == b"NTIL" and r["version"] == P.PROTOCOL_VERSION
    assert r["arch_hash"] == P.arch_hash(a) and r["max_payload"] == 32
    assert model.skipped == 4


def test_model_constructor_errors():
    a = small_arch()
    with pytest.raises(nt.NeurotileValueError, match=r"^max_payload must be between 16 and 65535, not 8$"):
        HostPortModel(a, DictBackend(a), max_payload=8)
    with pytest.raises(nt.NeurotileTypeError, match=r"^backend must be a HostBackend, not \{\}$"):
        HostPortModel(a, {})


# --- the host client ------------------------------------------------------------------------------------------

def client_on_model(arch=None, model_arch=None, max_payload=32):
    a = arch or small_arch()
    backend, model = fake_chip(model_arch or a, max_payload)
    return backend, model, HostClient(LoopbackTransport(model), a, timeout=0.2)


def test_client_ping_learns_max_payload_and_refuses_another_arch():
    _, _, client = client_on_model()
    assert client.ping()["max_payload"] == 32 and client.max_payload == 32
    _, _, client = client_on_model(model_arch=small_arch(fifo_depth=2))
    with pytest.raises(nt.ToolchainError, match=r"^the chip was built for another Arch \(hash 0x[0-9a-f]{8}, "
                                                r"expected 0x[0-9a-f]{8} for 'custom'\): rebuild it or use its "
                                                r"Arch$"):
        client.ping()


def test_client_memory_and_register_round_trips_in_chunks():
    backend, model, client = client_on_model()
    rng = np.random.default_rng(1)
    # synapse words are 3 + 8 + 1 + 3 = 15 bits here: 2 bytes; (32 - 8) // 2 = 12 words per WRITE_MEM.
    assert client.arch.layouts.synapse.size == 15
    words = rng.integers(0, 1 << 15, 32).astype(np.uint64)
    client.write_mem(1, "synapse", 0, words)
    assert sum(1 for e in backend.log if e[0] == "write") == 32
    assert backend.mem["synapse", 1, 31] == words[31]
    assert np.array_equal(client.read_mem(1, "synapse", 0, 32), words)
    client.write_reg(1, "n_neurons", 8)
    client.write_reg(0, "step", 77)
    assert client.read_reg(1, "n_neurons") == 8 and client.read_reg(0, "step") == 77


def test_client_error_status_names_status_and_command():
    _, _, client = client_on_model()
    with pytest.raises(nt.ToolchainError, match=r"^the chip answered WRITE_REG with BAD_ARGUMENT \(a core, "
                                                r"memory, register, value, step count or address range is out "
                                                r"of range\)$") as info:
        client.write_reg(1, "n_neurons", 9)
    assert info.value.status == Status.BAD_ARGUMENT and info.value.command == "WRITE_REG"


def test_client_inject_run_output_counters_and_clear():
    backend, model, client = client_on_model()
    client.inject({"host": [1, 1, 1], "x": [0, 1, 0], "y": [0, 0, 0], "index": [3, 2, 1]})
    with pytest.raises(nt.EmulatorError, match=r"^injecting 4 packets would put 7 in the host input buffer, "
                                               r"more than host_in_depth \(6\) per step$"):
        client.inject([1, 2, 3, 4])
    status = client.run(2)
    # DictBackend.run copies the 3 injected packets to the output, offsets i mod 2.
    assert status == (2, dict.fromkeys(FLAGS, False), 3, 0) and backend.log[-5] == ("run", 2, 3)
    out = client.read_output()
    assert out["step"].tolist() == [0, 1, 0] and out["index"].tolist() == [3, 2, 1]
    assert out["x"].tolist() == [0, 1, 0] and out["host"].tolist() == [1, 1, 1]
    counters = client.read_counters()
    # Counter word k of the fake chip is step * 1000 + k (step = 2): word 0 is "step" itself -> 2000.
    assert counters["step"] == 2000 and counters["host_in"] == 2001 and counters["cycles"] == 2006
    assert counters["updates"].tolist() == [2012, 2024]
    assert counters["link"].shape == (2, 5) and counters["link"][1, 4] == 2035
    assert counters["flags"] == {f: bool(2007 >> i & 1) for i, f in enumerate(FLAGS)}
    assert counters["flag_step"]["bad_axon"] == 2008
    client.inject([1])
    client.clear_state()
    assert client.inject_level == 0 and model.inject_level == 0 and backend.step == 0


def test_run_reports_dropped_outputs():
    backend, model, client = client_on_model()
    client.inject(list(range(6)))
    assert client.run(1) == (1, dict.fromkeys(FLAGS, False), 4, 2)   # host_out_depth = 4


class SilentTransport(Transport):
    """Swallows writes, never answers."""

    def __init__(self):
        self.written = b""

    def write(self, data):
        self.written += data

    def read(self, n, timeout):
        time.sleep(min(timeout, 0.01))
        return b""


def test_client_times_out_instead_of_hanging():
    client = HostClient(SilentTransport(), small_arch(), timeout=0.1, max_payload=32)
    start = time.monotonic()
    with pytest.raises(nt.ToolchainError, match=r"^no complete response to PING within the timeout \(0 bytes "
                                                r"received\): is the chip connected, powered and running this "
                                                r"protocol\?$"):
        client.ping()
    assert time.monotonic() - start < 1.0
    with pytest.raises(nt.ToolchainError, match=r"^no complete response to RUN"):
        client.run(1, timeout=0.05)


class ScriptedTransport(Transport):
    """Answers each write with the next canned reply (a byte string)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.pending = b""

    def write(self, data):
        self.pending += self.replies.pop(0)

    def read(self, n, timeout):
        out, self.pending = self.pending[:n], self.pending[n:]
        return out


def test_client_refuses_a_chip_with_another_magic_or_version():
    a = small_arch()
    ping = P.MAGIC + bytes([P.PROTOCOL_VERSION]) + P.arch_hash(a).to_bytes(4, "little") + bytes(6)
    wrong_magic = encode_response(Status.OK, b"XXXX" + ping[4:])
    wrong_version = encode_response(Status.OK, ping[:4] + b"\x09" + ping[5:])
    client = HostClient(ScriptedTransport([wrong_magic, wrong_version]), a, timeout=0.05)
    with pytest.raises(nt.ToolchainError, match=r"^the chip's PING magic is b'XXXX', not b'NTIL': this is not a "
                                                r"neurotile host port$"):
        client.ping()
    with pytest.raises(nt.ToolchainError, match=r"^the chip speaks host protocol version 9, this neurotile "
                                                r"version 1: rebuild the chip$"):
        client.ping()
    with pytest.raises(nt.NeurotileTypeError, match=r"^transport must have write\(bytes\) and read\(n, timeout\), "
                                                    r"not 5$"):
        HostClient(5, a)


def test_dict_backend_refuses_accesses_the_port_must_never_make():
    a = small_arch()
    backend = DictBackend(a)
    with pytest.raises(nt.NeurotileValueError, match=r"^bad bus access axon core 2 addr 0 data 0x0$"):
        backend.read("axon", 2, 0)
    with pytest.raises(nt.NeurotileValueError, match=r"^bad bus access neuron_cfg core 0 addr 0 data 0x2$"):
        backend.write("neuron_cfg", 0, 0, 2)          # 1-bit words here
    with pytest.raises(nt.NeurotileValueError, match=r"^write to read-only target counter$"):
        backend.write("counter", 0, 0, 1)
    with pytest.raises(nt.NeurotileValueError, match=r"^write to read-only chip register n_output$"):
        backend.write("chip_reg", 0, 2, 1)


def test_client_skips_noise_drains_after_errors_and_checks_crc():
    ok = encode_response(Status.OK, (5).to_bytes(4, "little"))
    bad_crc = ok[:-1] + bytes([ok[-1] ^ 0xFF])
    transport = ScriptedTransport([b"\x00\x13" + ok, ok[:3], ok, bad_crc])
    client = HostClient(transport, small_arch(), timeout=0.05, max_payload=32)
    assert client.read_reg(0, "step") == 5                     # noise before SYNC is skipped
    with pytest.raises(nt.ToolchainError, match=r"^no complete response to READ_REG"):
        client.read_reg(0, "step")                             # half a response, then silence
    transport.pending += b"\x77"                               # a stale byte arrives late ...
    assert client.read_reg(0, "step") == 5                     # ... and is drained before the next command
    with pytest.raises(nt.ToolchainError, match=r"^the response to READ_REG fails its CRC: the link corrupts "
                                                r"bytes$"):
        client.read_reg(0, "step")


# --- load_image -----------------------------------------------------------------------------------------------

def compiled_image():
    from neurotile.emulator.testing import random_network
    arch = nt.Arch.profile("ice40up5k", mesh_w=2, mesh_h=1, axons_per_core=64, synapses_per_core=256,
                           fanout_per_core=64)
    net = random_network(0, n_inputs=6, sizes=(12, 8), max_delay=arch.max_delay, profiles=2)
    return nt.compile(net, arch)


def test_load_image_writes_every_word_of_every_memory_of_every_core():
    image = compiled_image()
    a = image.arch
    backend, model, client = client_on_model(a, max_payload=64)
    backend.step, backend.flags = 9, 5                        # leftovers of an earlier run
    client.load_image(image)
    info = P.target_info(a)
    written = {(t, c, addr) for kind, t, c, addr, *_ in backend.log if kind == "write" and t in MEMORIES}
    expected = {(m, c, addr) for c in range(a.n_cores) for m in MEMORIES for addr in range(info[m].depth)}
    assert written == expected
    for c, core in enumerate(image.cores):
        for m in MEMORIES:
            words = core.words(a, m) if m != "acc" else np.zeros(0, np.uint64)
            got = [backend.mem[m, c, addr] for addr in range(info[m].depth)]
            assert got[:words.size] == words.tolist() and not any(got[words.size:]), (c, m)
        assert backend.regs[c, "n_neurons"] == core.n_neurons and backend.regs[c, "n_axons"] == core.n_axons
    assert backend.step == 0 and backend.flags == 0
    # CLEAR_STATE came first (step, flags), so nothing the image wrote was zeroed afterwards.
    first_image_write = next(k for k, e in enumerate(backend.log) if e[:2] == ("write", "neuron_cfg"))
    assert ("write", "chip_reg", 0, 1, 0) in backend.log[:first_image_write]


def test_load_image_used_words_only():
    image = compiled_image()
    a = image.arch
    backend, _, client = client_on_model(a, max_payload=64)
    client.load_image(image, full=False)
    syn = {addr for kind, t, c, addr, *_ in backend.log if kind == "write" and t == "synapse" and c == 0}
    assert syn == set(range(image.cores[0].n_synapses))
    with pytest.raises(nt.NeurotileValueError, match=r"^the image was compiled for Arch 'ice40up5k', which "
                                                     r"differs from this client's 'custom'$"):
        client_on_model(small_arch())[2].load_image(image)
