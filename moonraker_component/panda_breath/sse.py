"""Server-Sent Events (``text/event-stream``) parsed incrementally, with bounded memory.

DragonBreath pushes its state this way; the parser knows nothing of the
device, keeps no more than one line and one event, and never logs what it reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: One SSE line holds one whole snapshot; longer lines are dropped unread.
MAX_SSE_LINE_BYTES = 32 * 1024
#: One SSE event's data, all its ``data:`` lines together.
MAX_SSE_EVENT_BYTES = 64 * 1024


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None = None


_EOL_RE = re.compile(rb"[\r\n]")


class SseParser:
    """Incremental ``text/event-stream`` parser with bounded memory.

    Feed it the bytes as they arrive, in any chunking; it returns the events
    completed so far.  Lines end with CRLF, LF or CR (a CR at the end of a
    chunk waits for a possible LF); ``:`` lines are comments.  A line longer
    than ``max_line`` is dropped without being kept (``lines_dropped``), and so
    is the event it belonged to (``events_dropped``): the parser never holds
    more than ``max_line + max_event`` bytes whatever it is fed.
    """

    def __init__(self, max_line: int = MAX_SSE_LINE_BYTES, max_event: int = MAX_SSE_EVENT_BYTES):
        self.max_line = max_line
        self.max_event = max_event
        self.lines_dropped = 0
        self.events_dropped = 0
        #: The last event id seen (kept across events, as the SSE spec says).
        self.last_id: str | None = None
        #: The server's ``retry:`` advice in ms, if any.
        self.retry_ms: int | None = None
        self._line = bytearray()
        self._discarding = False
        self._pending_cr = False
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._tainted = False
        self._started = False

    def buffered(self) -> int:
        """Bytes held right now (for tests of the memory bound)."""
        return len(self._line) + self._data_size

    def feed(self, chunk: bytes) -> list[SseEvent]:
        events: list[SseEvent] = []
        data = bytes(chunk)
        i = 0
        n = len(data)
        if self._pending_cr:
            self._pending_cr = False
            if n and data[0] == 0x0A:
                i = 1
        while i < n:
            match = _EOL_RE.search(data, i)
            if match is None:
                self._append(data[i:])
                break
            j = match.start()
            self._append(data[i:j])
            self._end_line(events)
            if data[j] == 0x0D:
                if j + 1 < n:
                    if data[j + 1] == 0x0A:
                        j += 1
                else:
                    self._pending_cr = True
            i = j + 1
        return events

    def _append(self, piece: bytes) -> None:
        if self._discarding or not piece:
            return
        if len(self._line) + len(piece) > self.max_line:
            self._discarding = True
            self._line = bytearray()
            self.lines_dropped += 1
            self._tainted = True
            return
        self._line += piece

    def _end_line(self, events: list[SseEvent]) -> None:
        if self._discarding:
            self._discarding = False
            return
        raw = bytes(self._line)
        self._line = bytearray()
        if not self._started:
            self._started = True
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        if not raw:
            self._dispatch(events)
            return
        line = raw.decode("utf-8", "replace")
        if line.startswith(":"):
            return  # a comment
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            size = len(value) + 1
            if self._data_size + size > self.max_event:
                self._tainted = True
                self._data = []
                self._data_size = 0
                return
            if not self._tainted:
                self._data.append(value)
                self._data_size += size
        elif name == "event":
            self._event = value[:64]
        elif name == "id":
            if "\x00" not in value:
                self.last_id = value[:64]
        elif name == "retry":
            if value.isdigit() and len(value) <= 9:
                self.retry_ms = int(value)

    def _dispatch(self, events: list[SseEvent]) -> None:
        tainted, data, event = self._tainted, self._data, self._event
        self._tainted = False
        self._data = []
        self._data_size = 0
        self._event = ""
        if tainted:
            self.events_dropped += 1
            return
        if not data:
            return
        events.append(SseEvent(event or "message", "\n".join(data), self.last_id))
