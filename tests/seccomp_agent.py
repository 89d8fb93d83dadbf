"""A small seccomp agent for the tests (SCMP_ACT_NOTIFY with listenerPath): it accepts the runtime's
connections on a unix socket, takes the ContainerProcessState JSON and the listener fd sent with it
(SCM_RIGHTS), records a summary of each, and answers the notifications: mkdir and mkdirat succeed
without making anything (val 0), anything else notified fails with the errno given, or goes on
(SECCOMP_USER_NOTIF_FLAG_CONTINUE) when that is None."""
from __future__ import annotations

import array
import errno
import fcntl
import json
import os
import select
import socket
import struct
import threading

NOTIF = struct.Struct("=QIIiIQ6Q")   # struct seccomp_notif (id, pid, flags, seccomp_data)
RESP = struct.Struct("=QqiI")        # struct seccomp_notif_resp (id, val, error, flags)
IOCTL_RECV = 0xC0502100              # SECCOMP_IOCTL_NOTIF_RECV
IOCTL_SEND = 0xC0182101              # SECCOMP_IOCTL_NOTIF_SEND
FLAG_CONTINUE = 1
FAKED = {83: "mkdir", 258: "mkdirat"}  # x86_64


class Agent:
    def __init__(self, path: str, out: str | None = None, other_errno: int | None = errno.EPERM):
        self.path, self.out, self.other_errno = path, out, other_errno
        self.states: list[dict] = []
        self.answered: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(path)
        self._srv.listen(8)
        self._srv.settimeout(0.1)
        self._spawn(self._accept)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                fds = array.array("i")
                msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
                for level, typ, data in anc:
                    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                        fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
            try:
                doc = json.loads(msg)
            except ValueError:
                doc = {"not-json": msg.decode(errors="replace")}
            self.states.append(doc)
            self._record(doc, len(fds))
            for fd in fds[:1]:
                self._spawn(self._serve, fd)
            for fd in fds[1:]:
                os.close(fd)

    def _record(self, doc: dict, nfds: int) -> None:
        if self.out is None:
            return
        st = doc.get("state") if isinstance(doc.get("state"), dict) else {}
        line = ("keys=%s fds=%s nfds=%d metadata=%s pid=%s state.keys=%s state.status=%s state.id=%s "
                "state.bundle=%s\n" % (",".join(doc), doc.get("fds"), nfds, doc.get("metadata"),
                                        "init" if doc.get("pid") == st.get("pid") else "other",
                                        ",".join(st), st.get("status"), st.get("id"), st.get("bundle")))
        try:  # replaced whole (temp file, rename): a reader waiting for the file never sees half of it
            with open(self.out) as f:
                line = f.read() + line
        except FileNotFoundError:
            pass
        with open(self.out + ".tmp", "w") as f:
            f.write(line)
        os.rename(self.out + ".tmp", self.out)

    def _serve(self, fd: int) -> None:
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not self._stop.is_set():
                events = poller.poll(100)
                if not events:
                    continue
                if events[0][1] & (select.POLLHUP | select.POLLERR) and not events[0][1] & select.POLLIN:
                    return  # every process under the filter is gone
                buf = bytearray(NOTIF.size)
                try:
                    fcntl.ioctl(fd, IOCTL_RECV, buf, True)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.EINTR):
                        continue
                    return
                nid, _pid, _flags, nr = NOTIF.unpack(buf)[:4]
                if nr in FAKED:
                    resp = RESP.pack(nid, 0, 0, 0)
                    self.answered.append(FAKED[nr])
                elif self.other_errno is None:
                    resp = RESP.pack(nid, 0, 0, FLAG_CONTINUE)
                    self.answered.append("continue:%d" % nr)
                else:
                    resp = RESP.pack(nid, 0, -self.other_errno, 0)
                    self.answered.append("errno:%d" % nr)
                try:
                    fcntl.ioctl(fd, IOCTL_SEND, bytearray(resp), True)
                except OSError:
                    pass  # the process went away meanwhile (ENOENT)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._stop.set()
        self._srv.close()
        for t in self._threads:
            t.join(2)
        try:
            os.unlink(self.path)
        except OSError:
            pass
