"""A stand-in Klipper micro-controller on a pseudo-terminal, so klippy runs in its normal mode.

In file-output mode (``-o``) klippy never pauses: ``TEMPERATURE_WAIT``, ``G4``,
``M400``, verify_heater and idle_timeout are all short-circuited. With this
stand-in, klippy talks to an "MCU" over a pty exactly as it talks to Klipper's
Linux host MCU, so those waits and timers are real. The stand-in has no pins
or steppers: it implements only the link layer and the handful of commands
listed in scripts/make_klipper_dict.py (identify, clock, config, emergency
stop, reset).

Protocol (Klipper's docs/Protocol.md): blocks of ``<len><0x10|seq><content>
<crc16 hi><crc16 lo><0x7e>``; content is VLQ-encoded message ids and integer
parameters; every host block is answered by the responses it asks for (one per
block) followed by an empty "ack" block, all carrying the host sequence + 1.
"""

from __future__ import annotations

import json
import os
import select
import termios
import threading
import time
import tty
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

BLOCK_MIN = 5
BLOCK_MAX = 64
SEQ_MASK = 0x0F
SEQ_FLAG = 0x10
SYNC = 0x7E
# Built into every klippy: identify_response is 0, identify is 1.
IDENTIFY_RESPONSE = "identify_response offset=%u data=%.*s"
IDENTIFY = "identify offset=%u count=%c"
SHUTDOWN_REASON = "Command request"


def crc16(data: bytes | bytearray) -> int:
    """CRC-16 as Klipper frames use it (CCITT polynomial, reflected, initial 0xffff)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def encode_vlq(value: int) -> bytes:
    """Klipper's signed VLQ: 7 bits a byte, high bit = more, top value bits = sign."""
    groups = 1
    while groups < 5 and not (-(0x20 << 7 * (groups - 1)) <= value < (0x60 << 7 * (groups - 1))):
        groups += 1
    out = bytearray()
    for index in reversed(range(groups)):
        byte = (value >> (7 * index)) & 0x7F
        out.append(byte | 0x80 if index else byte)
    return bytes(out)


def decode_vlq(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """Return (value, next position)."""
    byte = data[pos]
    value = byte & 0x7F
    if byte & 0x60 == 0x60:
        value |= -0x20
    while byte & 0x80:
        pos += 1
        byte = data[pos]
        value = (value << 7) | (byte & 0x7F)
    return value, pos + 1


def _param_count(msgformat: str) -> int:
    return msgformat.count("=%")


class SimulatedMCU:
    """Serve ``dictionary`` on a pty reachable at ``link_path`` (a symlink)."""

    def __init__(self, dictionary: dict[str, Any], link_path: str | Path) -> None:
        self.dictionary = dictionary
        self.link_path = Path(link_path)
        self._blob = zlib.compress(json.dumps(dictionary).encode())
        commands = {IDENTIFY: 1, **dictionary["commands"]}
        responses = {IDENTIFY_RESPONSE: 0, **dictionary["responses"]}
        self._commands = {tag: fmt for fmt, tag in commands.items()}
        self._response_tags = {fmt.split()[0]: tag for fmt, tag in responses.items()}
        enums = dictionary.get("enumerations", {}).get("static_string_id", {})
        self._shutdown_reason = int(enums.get(SHUTDOWN_REASON, 0))
        self._freq = float(dictionary["config"]["CLOCK_FREQ"])
        self._epoch = time.monotonic()
        self._master = self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self.commands_seen: Counter[str] = Counter()
        self._reset_state()

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._master, self._slave = os.openpty()
        # Raw slave: no echo, no newline translation; kept open so the pty
        # survives klippy closing and reopening it across restarts.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        try:
            self.link_path.unlink()
        except FileNotFoundError:
            pass
        self.link_path.symlink_to(os.ttyname(self._slave))
        self._thread = threading.Thread(target=self._run, name="klipper-mcu", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        try:
            self.link_path.unlink()
        except FileNotFoundError:
            pass

    # -- state -----------------------------------------------------------------------
    def _reset_state(self) -> None:
        with self._state_lock:
            self.is_config = 0
            self.config_crc = 0
            self.is_shutdown = 0
            self.oid_count = 0

    def _clock(self) -> int:
        return int((time.monotonic() - self._epoch) * self._freq)

    # -- link layer --------------------------------------------------------------------
    def _run(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                time.sleep(0.02)
                continue
            buffer += data
            while True:
                length = self._next_block(buffer)
                if length == 0:
                    break
                if length < 0:
                    del buffer[: buffer.index(SYNC) + 1 if SYNC in buffer else len(buffer)]
                    continue
                block = bytes(buffer[:length])
                del buffer[:length]
                self._handle_block(block)

    @staticmethod
    def _next_block(buffer: bytearray) -> int:
        """Length of a valid block at the start, 0 if more data is needed, -1 if junk."""
        if len(buffer) < BLOCK_MIN:
            return 0
        length = buffer[0]
        if length < BLOCK_MIN or length > BLOCK_MAX or buffer[1] & ~SEQ_MASK != SEQ_FLAG:
            return -1
        if len(buffer) < length:
            return 0
        if buffer[length - 1] != SYNC:
            return -1
        crc = crc16(buffer[: length - 3])
        if buffer[length - 3] != crc >> 8 or buffer[length - 2] != crc & 0xFF:
            return -1
        return length

    def _send_block(self, seq: int, content: bytes = b"") -> None:
        head = bytes([len(content) + BLOCK_MIN, SEQ_FLAG | (seq & SEQ_MASK)]) + content
        crc = crc16(head)
        frame = head + bytes([crc >> 8, crc & 0xFF, SYNC])
        try:
            os.write(self._master, frame)
        except OSError:
            pass

    def _handle_block(self, block: bytes) -> None:
        next_seq = (block[1] + 1) & SEQ_MASK
        content = block[2:-3]
        pos = 0
        responses: list[bytes] = []
        while pos < len(content):
            tag, pos = decode_vlq(content, pos)
            msgformat = self._commands.get(tag)
            if msgformat is None:
                break  # unknown command: drop the rest, as an MCU would shut down
            args = []
            for _ in range(_param_count(msgformat)):
                value, pos = decode_vlq(content, pos)
                args.append(value & 0xFFFFFFFF)
            name = msgformat.split()[0]
            self.commands_seen[name] += 1
            response = self._dispatch(name, args)
            if response is not None:
                responses.append(response)
        for response in responses:
            self._send_block(next_seq, response)
        self._send_block(next_seq)

    def _response(self, name: str, *args: int | bytes) -> bytes:
        out = bytearray(encode_vlq(self._response_tags[name]))
        for arg in args:
            if isinstance(arg, bytes):
                out += encode_vlq(len(arg)) + arg
            else:
                out += encode_vlq(arg)
        return bytes(out)

    # -- commands ------------------------------------------------------------------------
    def _dispatch(self, name: str, args: list[int]) -> bytes | None:
        if name == "identify":
            offset, count = args
            return self._response("identify_response", offset, self._blob[offset : offset + count])
        if name == "get_uptime":
            clock = self._clock()
            return self._response("uptime", clock >> 32, clock & 0xFFFFFFFF)
        if name == "get_clock":
            return self._response("clock", self._clock() & 0xFFFFFFFF)
        if name == "get_config":
            with self._state_lock:
                return self._response(
                    "config", self.is_config, self.config_crc, self.is_shutdown, 500
                )
        if name == "allocate_oids":
            with self._state_lock:
                self.oid_count = args[0]
            return None
        if name == "finalize_config":
            with self._state_lock:
                self.config_crc = args[0]
                self.is_config = 1
            return None
        if name == "emergency_stop":
            with self._state_lock:
                already = self.is_shutdown
                self.is_shutdown = 1
            if already:
                return None
            return self._response("shutdown", self._clock() & 0xFFFFFFFF, self._shutdown_reason)
        if name == "reset":
            self._reset_state()
            termios.tcflush(self._slave, termios.TCIFLUSH)
            return None
        return None
