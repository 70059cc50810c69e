"""The pure WebSocket client protocol, over every message mix and every way reads split it.

The server side here is written from RFC 6455 independently of the module:
unmasked frames, messages fragmented at random with control frames between
the fragments, the byte stream cut into arbitrary reads.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from panda_breath import websocket_protocol as wsp

LIMIT = 4096


def server_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0,
                 masked: bool = False) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if masked:
        return head + b"\0\0\0\0" + payload
    return head + payload


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points + [len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


def read_all(reader: wsp.FrameReader, pieces: list[bytes]) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    for piece in pieces:
        got.extend(reader.feed(piece))
    return got


sizes = st.one_of(st.integers(0, 300), st.sampled_from([125, 126, 127, 65535, 65536]))
messages = st.lists(st.tuples(st.sampled_from([wsp.OP_TEXT, wsp.OP_BINARY]), sizes,
                              st.integers(1, 4), st.booleans()), max_size=8)


@settings(max_examples=300, deadline=None)
@given(messages, st.lists(st.integers(0, 1 << 20), max_size=40), st.data())
def test_messages_come_whole_and_in_order_however_reads_split_them(
        spec: list[tuple[int, int, int, bool]], cuts: list[int], data: st.DataObject) -> None:
    stream, expected = b"", []
    limit = 70000
    for index, (opcode, size, fragments, ping_between) in enumerate(spec):
        payload = bytes((index + i) % 251 for i in range(size))
        bounds = sorted(data.draw(st.lists(st.integers(0, size), min_size=fragments - 1,
                                           max_size=fragments - 1)))
        parts = [payload[a:b] for a, b in zip([0] + bounds, bounds + [size], strict=True)]
        for number, part in enumerate(parts):
            last = number == len(parts) - 1
            stream += server_frame(opcode if number == 0 else wsp.OP_CONTINUATION, part, last)
            if ping_between and not last:
                stream += server_frame(wsp.OP_PING, b"p%d" % index)
                expected.append((wsp.OP_PING, b"p%d" % index))
        expected.append((opcode if size <= limit else wsp.OVERSIZED,
                         payload if size <= limit else b""))
    assert read_all(wsp.FrameReader(limit), split(stream, cuts)) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * LIMIT), st.integers(1, 3)), max_size=6),
       st.lists(st.integers(0, 1 << 16), max_size=30))
def test_an_oversized_message_is_skipped_and_never_held(
        spec: list[tuple[int, int]], cuts: list[int]) -> None:
    stream, expected = b"", []
    for index, (size, fragments) in enumerate(spec):
        payload = bytes([index]) * size
        step = max(1, -(-size // fragments))
        parts = [payload[i:i + step] for i in range(0, size, step)] or [b""]
        for number, part in enumerate(parts):
            opcode = wsp.OP_TEXT if number == 0 else wsp.OP_CONTINUATION
            stream += server_frame(opcode, part, number == len(parts) - 1)
        expected.append((wsp.OP_TEXT, payload) if size <= LIMIT else (wsp.OVERSIZED, b""))
    reader = wsp.FrameReader(LIMIT)
    got = []
    for piece in split(stream, cuts):
        got.extend(reader.feed(piece))
        # What is held is at most one message under the limit plus a frame head.
        assert len(reader._buffer) + reader._size <= 2 * LIMIT + 14
    assert got == expected


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=10))
def test_any_bytes_give_messages_or_a_protocol_error(garbage: bytes, cuts: list[int]) -> None:
    reader = wsp.FrameReader(LIMIT)
    try:
        for opcode, payload in read_all(reader, split(garbage, cuts)):
            assert opcode in (wsp.OP_TEXT, wsp.OP_BINARY, wsp.OP_CLOSE, wsp.OP_PING,
                              wsp.OP_PONG, wsp.OVERSIZED)
            assert isinstance(payload, bytes)
    except wsp.ProtocolError:
        pass


@pytest.mark.parametrize("frame, why", [
    (server_frame(wsp.OP_TEXT, b"x", rsv=0x40), "reserved"),
    (server_frame(wsp.OP_TEXT, b"x", masked=True), "masked"),
    (server_frame(wsp.OP_PING, b"x", fin=False), "control"),
    (server_frame(wsp.OP_PING, b"x" * 126), "control"),
    (server_frame(0x3, b"x"), "unknown data"),
    (server_frame(0xB, b"x"), "unknown control"),
    (server_frame(wsp.OP_CONTINUATION, b"x"), "continuation"),
    (server_frame(wsp.OP_TEXT, b"a", fin=False) + server_frame(wsp.OP_TEXT, b"b"), "inside"),
    (b"\x81\x7f" + struct.pack("!Q", 1 << 63), "2\\*\\*63"),
])
def test_framing_violations_are_named(frame: bytes, why: str) -> None:
    with pytest.raises(wsp.ProtocolError, match=why):
        wsp.FrameReader(LIMIT).feed(frame)


def unmask(frame: bytes) -> tuple[int, bool, bytes]:
    """(opcode, fin, payload) of a client frame, which must be masked."""
    assert frame[1] & 0x80, "client frames are masked"
    length, offset = frame[1] & 0x7F, 2
    if length == 126:
        length, offset = struct.unpack("!H", frame[2:4])[0], 4
    elif length == 127:
        length, offset = struct.unpack("!Q", frame[2:10])[0], 10
    mask, body = frame[offset:offset + 4], frame[offset + 4:]
    assert len(body) == length
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    return frame[0] & 0x0F, bool(frame[0] & 0x80), payload


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.sampled_from([b"a" * 125, b"b" * 126,
                                                           b"c" * 65535, b"d" * 65536])),
       st.binary(min_size=4, max_size=4), st.sampled_from([wsp.OP_TEXT, wsp.OP_CLOSE]))
def test_client_frames_are_masked_and_carry_their_payload(
        payload: bytes, mask: bytes, opcode: int) -> None:
    assert unmask(wsp.encode_frame(opcode, payload, mask)) == (opcode, True, payload)


def answer(key: str, status: str = "101 Switching Protocols", extra: str = "",
           accept: str | None = None) -> bytes:
    accept = accept or base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    return ("HTTP/1.1 %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n%s\r\n" % (status, accept, extra)).encode()


def test_the_upgrade_request_and_its_answer() -> None:
    key = wsp.new_key()
    request = wsp.upgrade_request("10.0.0.5:80", "/ws", key, "agent").decode()
    assert request.startswith("GET /ws HTTP/1.1\r\n") and request.endswith("\r\n\r\n")
    assert "Sec-WebSocket-Key: %s\r\n" % key in request and "User-Agent: agent" in request
    head = answer(key)
    frame = server_frame(wsp.OP_TEXT, b"{}")
    assert wsp.parse_upgrade_response(head[:-1], key) is None
    assert wsp.parse_upgrade_response(head + frame, key) == len(head)


@pytest.mark.parametrize("response, why", [
    (lambda k: answer(k, "404 Not Found"), "HTTP 404"),
    (lambda k: answer(k, accept="d3Jvbmc="), "Accept"),
    (lambda k: answer(k, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n"), "extension"),
    (lambda k: answer(k).replace(b"Upgrade: websocket", b"Upgrade: h2c"), "switch"),
    (lambda k: b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP"),
    (lambda k: b"x" * (wsp.MAX_RESPONSE_HEAD + 1), "no end"),
])
def test_a_refused_or_wrong_upgrade_is_named(response, why: str) -> None:
    key = wsp.new_key()
    with pytest.raises(wsp.HandshakeError, match=why):
        wsp.parse_upgrade_response(response(key), key)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_answer_is_accepted_incomplete_or_refused(garbage: bytes) -> None:
    try:
        end = wsp.parse_upgrade_response(garbage, "dGhlIHNhbXBsZSBub25jZQ==")
    except wsp.HandshakeError:
        return
    assert end is None


def test_close_codes() -> None:
    assert wsp.close_code(struct.pack("!H", 1001) + b"bye") == 1001
    assert wsp.close_code(b"") == 1005
