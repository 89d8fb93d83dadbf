"""The parent <-> init channel: one line per message over a pair of CLOEXEC pipes.

A message is `verb[ payload]\n`. Pipes (not a socketpair) because `import socket` costs ~6 ms and the
channel only ever carries short lines, which pipes deliver atomically."""
from __future__ import annotations

import os


class ChannelClosed(Exception):
    """The other side exited (or closed its end) before sending what we waited for."""


class Channel:
    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd = rfd, wfd
        self._buf = b""

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        """(parent side, child side)."""
        p2c_r, p2c_w = os.pipe2(os.O_CLOEXEC)
        c2p_r, c2p_w = os.pipe2(os.O_CLOEXEC)
        return cls(c2p_r, p2c_w), cls(p2c_r, c2p_w)

    def send(self, verb: str, payload: str = "") -> None:
        if self.wfd < 0:
            raise OSError(9, "channel closed")
        line = (verb + (" " + payload.replace("\n", " ") if payload else "") + "\n").encode()
        while line:
            line = line[os.write(self.wfd, line):]

    def recv(self) -> tuple[str, str]:
        while b"\n" not in self._buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                raise ChannelClosed()
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        verb, _, payload = line.decode().partition(" ")
        return verb, payload

    def expect(self, verb: str) -> str:
        """Wait for `verb`; an `error` from the other side becomes an exception carrying its text."""
        got, payload = self.recv()
        if got == "error":
            raise ChildError(payload)
        if got != verb:
            raise ChildError("protocol error: expected %s, got %s" % (verb, got))
        return payload

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                os.close(fd)
        self.rfd = self.wfd = -1  # a later send must fail, never write into a reused fd number


class ChildError(Exception):
    """An error reported by the other side of the channel."""
