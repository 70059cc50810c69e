"""The client side of WebSocket (RFC 6455) as pure functions: bytes in, messages out.

The stock firmware serves WebSocket from ESP-IDF's httpd: no extensions, no
subprotocols, text frames of JSON.  The bridge holds one such session per
device for as long as Moonraker runs, and every frame the device sends (36 a
minute) passes through here, so the parser works on whatever bytes a read
returned and hands back whole messages without a task switch or a future.
Nothing here touches a socket: ``websocket_client`` does.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
#: Not an opcode: a data message over the size limit was skipped unread.
OVERSIZED = -1

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The server's answer to the upgrade is a few hundred bytes; a head this long is not one.
MAX_RESPONSE_HEAD = 16384


class HandshakeError(Exception):
    """The server did not accept the upgrade as RFC 6455 requires."""


class ProtocolError(Exception):
    """The server broke RFC 6455 framing; the connection cannot go on."""


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_value(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer ``key`` with."""
    digest = hashlib.sha1((key + _GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def upgrade_request(host: str, path: str, key: str, user_agent: str) -> bytes:
    """The HTTP/1.1 GET that asks for a WebSocket, offering no extension."""
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: %s\r\n\r\n"
            % (path, host, key, user_agent)).encode("ascii")


def parse_upgrade_response(data: bytes, key: str) -> int | None:
    """How many bytes of ``data`` the accepted upgrade took; None until it is complete.

    Raises HandshakeError for anything but a ``101`` that names WebSocket and
    answers ``key``.  The error never quotes the response: only its status code.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_RESPONSE_HEAD:
            raise HandshakeError("no end to the upgrade response")
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1."):
        raise HandshakeError("not an HTTP response")
    if status[1] != "101":
        raise HandshakeError("upgrade refused (HTTP %s)" % status[1][:3])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    connection = [token.strip().lower() for token in headers.get("connection", "").split(",")]
    if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in connection:
        raise HandshakeError("the response does not switch to WebSocket")
    if headers.get("sec-websocket-accept") != accept_value(key):
        raise HandshakeError("wrong Sec-WebSocket-Accept")
    if headers.get("sec-websocket-extensions") or headers.get("sec-websocket-protocol"):
        raise HandshakeError("an extension or subprotocol we did not offer")
    return end + 4


def encode_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """One final frame from a client: masked with the 4 bytes of ``mask``, as 5.3 requires."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    if not length:
        return head + mask
    keystream = (mask * (length // 4 + 1))[:length]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")
    return head + mask + masked.to_bytes(length, "big")


def close_code(payload: bytes) -> int:
    """The status code of a close frame (1005: it carried none)."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


class FrameReader:
    """The server's frames, reassembled from reads of any size into whole messages.

    ``feed`` returns ``(opcode, payload)`` pairs: data messages (text or
    binary, fragments joined), control frames as they come, and ``OVERSIZED``
    for a data message over ``max_message`` bytes, whose payload is skipped as
    it arrives instead of being held: an absurd frame costs the device a
    dropped message, not the session.
    """

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._buffer = bytearray()
        self._skip = 0  # payload bytes still to pass over, of an oversized message
        self._opcode: int | None = None  # the data message in progress
        self._parts: list[bytes] = []
        self._size = 0
        self._discarding = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        buffer = self._buffer
        buffer += data
        messages: list[tuple[int, bytes]] = []
        pos, end = 0, len(buffer)
        while end - pos >= 2:
            head = self._frame_head(buffer, pos, end)
            if head is None:
                break
            opcode, fin, start, length = head
            if opcode < OP_CLOSE and self._over_limit(opcode, length, fin, messages):
                if end - start < length:
                    self._skip = length - (end - start)
                    pos = end
                    break
                pos = start + length
                continue
            if end - start < length:
                break
            pos = start + length
            payload = bytes(buffer[start:pos])
            if opcode >= OP_CLOSE:
                messages.append((opcode, payload))
            else:
                self._add_part(opcode, fin, payload, messages)
        del buffer[:pos]
        return messages

    def _frame_head(self, buffer: bytearray, pos: int,
                    end: int) -> tuple[int, bool, int, int] | None:
        """(opcode, fin, payload start, payload length) of the frame at ``pos``; None if cut."""
        first, second = buffer[pos], buffer[pos + 1]
        if first & 0x70:
            raise ProtocolError("reserved bits set without an extension")
        if second & 0x80:
            raise ProtocolError("a masked frame from the server")
        opcode, fin, length, start = first & 0x0F, bool(first & 0x80), second & 0x7F, pos + 2
        if length == 126:
            if end - pos < 4:
                return None
            length, start = int.from_bytes(buffer[pos + 2:pos + 4], "big"), pos + 4
        elif length == 127:
            if end - pos < 10:
                return None
            length, start = int.from_bytes(buffer[pos + 2:pos + 10], "big"), pos + 10
            if length >> 63:
                raise ProtocolError("a frame length over 2**63")
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise ProtocolError("unknown control opcode %d" % opcode)
            if not fin or length > 125:
                raise ProtocolError("a fragmented or long control frame")
        elif opcode == OP_CONTINUATION:
            if self._opcode is None:
                raise ProtocolError("a continuation with no message to continue")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._opcode is not None:
                raise ProtocolError("a new message inside a fragmented one")
        else:
            raise ProtocolError("unknown data opcode %d" % opcode)
        return opcode, fin, start, length

    def _over_limit(self, opcode: int, length: int, fin: bool,
                    messages: list[tuple[int, bytes]]) -> bool:
        """Whether this data frame's payload is to be skipped (its message is too big)."""
        if not self._discarding and self._size + length <= self.max_message:
            return False
        if not self._discarding:
            messages.append((OVERSIZED, b""))
            self._discarding, self._parts = True, []
        if fin:
            self._opcode, self._discarding, self._size = None, False, 0
        elif self._opcode is None:
            self._opcode = opcode
        return True

    def _add_part(self, opcode: int, fin: bool, payload: bytes,
                  messages: list[tuple[int, bytes]]) -> None:
        if opcode != OP_CONTINUATION:
            self._opcode = opcode
        message_opcode = self._opcode if self._opcode is not None else opcode
        if fin and not self._parts:
            messages.append((message_opcode, payload))
        else:
            self._parts.append(payload)
            self._size += len(payload)
            if not fin:
                return
            messages.append((message_opcode, b"".join(self._parts)))
            self._parts, self._size = [], 0
        self._opcode = None
