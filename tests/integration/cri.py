"""A minimal CRI client (the kubelet's side of the Kubernetes Container Runtime Interface, runtime.v1) for
the tests that drive pyrun through containerd's CRI plugin the way a Kubernetes node does.

No CRI client is packaged in Debian (cri-tools is not), so this speaks the API itself: gRPC from Debian's
python3-grpcio (its generic byte-level calls), the protobuf messages encoded and decoded here by field
number (k8s.io/cri-api pkg/apis/runtime/v1/api.proto). Only the calls and fields the tests use.

A message is a list of (field number, value): an int or bool is a varint, a str or bytes is
length-delimited, a list is a nested message; repeated fields are repeated tuples."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from images import IMAGE, PAUSE_CMD, PAUSE_IMAGE, oci_image_tar

# Debian's python3-grpcio lives in the system interpreter's dist-packages (the test virtualenv does not see
# them): the same Python version, so its extension module loads here too.
DIST = "/usr/lib/python3/dist-packages"

NODE = 2        # NamespaceMode: the node's namespace (host network: no CNI needed)
CONTAINER = 1   # NamespaceMode: a namespace of the container's own
CONTAINER_STATES = {0: "CREATED", 1: "RUNNING", 2: "EXITED", 3: "UNKNOWN"}


def grpc_module():
    try:
        import grpc  # noqa: F401
    except ImportError:
        if DIST not in sys.path and os.path.isdir(DIST):
            sys.path.append(DIST)
        import grpc  # noqa: F811
    return grpc


# -- protobuf ----------------------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 in two's complement, as protobuf sends negative numbers
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(fields) -> bytes:
    out = bytearray()
    for num, v in fields:
        if isinstance(v, (bool, int)):
            out += _varint(num << 3) + _varint(int(v))
        else:
            data = v.encode() if isinstance(v, str) else bytes(v) if isinstance(v, (bytes, bytearray)) else encode(v)
            out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def decode(data: bytes) -> dict:
    """{field number: [values]}: ints for varints, bytes for length-delimited fields (decode them again for
    a nested message)."""
    out: dict = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(data, i)
        elif wt == 2:
            n, i = _read_varint(data, i)
            v, i = data[i:i + n], i + n
        elif wt == 1:
            v, i = int.from_bytes(data[i:i + 8], "little"), i + 8
        elif wt == 5:
            v, i = int.from_bytes(data[i:i + 4], "little"), i + 4
        else:
            raise ValueError("protobuf wire type %d not handled" % wt)
        out.setdefault(num, []).append(v)
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def field(msg: dict, *path, default=None):
    """The first value at a path of field numbers through nested messages."""
    for k, num in enumerate(path):
        vals = msg.get(num)
        if not vals:
            return default
        if k == len(path) - 1:
            return vals[0]
        msg = decode(vals[0])
    return default


# -- the runtime service --------------------------------------------------------------------------------------
class CriError(Exception):
    pass


class Cri:
    def __init__(self, socket_path: str):
        self.grpc = grpc_module()
        self.channel = self.grpc.insecure_channel("unix://" + socket_path)

    def close(self) -> None:
        self.channel.close()

    def call(self, service: str, method: str, fields, timeout: float = 120) -> dict:
        fn = self.channel.unary_unary("/runtime.v1.%s/%s" % (service, method))
        try:
            return decode(fn(encode(fields), timeout=timeout))
        except self.grpc.RpcError as e:
            raise CriError("CRI %s: %s: %s" % (method, e.code().name, e.details())) from None

    def rt(self, method: str, fields, timeout: float = 120) -> dict:
        return self.call("RuntimeService", method, fields, timeout)

    def version(self) -> tuple[str, str]:
        r = self.rt("Version", [(1, "v1")], timeout=10)
        return field(r, 2, default=b"").decode(), field(r, 3, default=b"").decode()

    @staticmethod
    def sandbox_config(name: str, uid: str, log_dir: str, cgroup_parent: str) -> list:
        return [(1, [(1, name), (2, uid), (3, "default"), (4, 0)]),
                (3, log_dir),
                (8, [(1, cgroup_parent), (2, [(1, [(1, NODE), (2, CONTAINER), (3, NODE)])])])]

    def run_pod(self, config: list, handler: str = "") -> str:
        return field(self.rt("RunPodSandbox", [(1, config), (2, handler)]), 1).decode()

    def create(self, pod: str, pod_config: list, name: str, image: str, command: list, log_path: str,
               memory: int = 0, cpu_shares: int = 0) -> str:
        resources = []
        if cpu_shares:
            resources.append((3, cpu_shares))
        if memory:
            resources.append((4, memory))
        cfg = [(1, [(1, name)]), (2, [(1, image)])] + [(3, c) for c in command] + [
            (11, log_path), (15, [(1, resources)])]
        return field(self.rt("CreateContainer", [(1, pod), (2, cfg), (3, pod_config)]), 1).decode()

    def start(self, cid: str) -> None:
        self.rt("StartContainer", [(1, cid)])

    def exec_sync(self, cid: str, cmd: list, timeout: int = 60) -> tuple[int, str, str]:
        r = self.rt("ExecSync", [(1, cid)] + [(2, c) for c in cmd] + [(3, timeout)], timeout=timeout + 30)
        return (field(r, 3, default=0), field(r, 1, default=b"").decode(errors="replace"),
                field(r, 2, default=b"").decode(errors="replace"))

    def status(self, cid: str) -> tuple[str, int]:
        r = self.rt("ContainerStatus", [(1, cid)])
        return CONTAINER_STATES.get(field(r, 1, 3, default=0), "?"), field(r, 1, 7, default=0)

    def stats(self, cid: str) -> dict:
        r = self.rt("ContainerStats", [(1, cid)])
        return {"cpu_usage_core_ns": field(r, 1, 2, 2, 1, default=0),
                "memory_working_set": field(r, 1, 3, 2, 1, default=0),
                "memory_usage": field(r, 1, 3, 4, 1, default=0)}

    def stop(self, cid: str, timeout: int = 0) -> None:
        self.rt("StopContainer", [(1, cid), (2, timeout)])

    def remove(self, cid: str) -> None:
        self.rt("RemoveContainer", [(1, cid)])

    def stop_pod(self, pod: str) -> None:
        self.rt("StopPodSandbox", [(1, pod)])

    def remove_pod(self, pod: str) -> None:
        self.rt("RemovePodSandbox", [(1, pod)])


# -- a private containerd with the CRI plugin ----------------------------------------------------------------
CONFIG = """version = 2
root = "{base}/root"
state = "{base}/state"
[debug]
  level = "debug"
[grpc]
  address = "{sock}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = {restrict_oom}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = {systemd}
        BinaryName = "{runtime}"
        Root = "{runtime_root}"
"""
NAMESPACE = "k8s.io"  # the CRI plugin's containerd namespace


class CriContainerd:
    """containerd with its CRI plugin, its own socket, root and state under `base`, the runc v2 runtime of
    the CRI plugin set up as a Kubernetes node sets it (`SystemdCgroup`, `BinaryName` = the runtime)."""

    def __init__(self, base: str, runtime: str, systemd: bool, restrict_oom: bool = False):
        """restrict_oom: keep oom_score_adj at containerd's own or above (the pause container's -998 needs
        CAP_SYS_RESOURCE, which a sandboxed root may lack)."""
        self.base, self.runtime = base, runtime
        self.sock = os.path.join(base, "c.sock")
        self.runtime_root = os.path.join(base, "runtime-root")
        self.config = os.path.join(base, "config.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(base=base, sock=self.sock, pause=PAUSE_IMAGE, runtime=runtime,
                                  runtime_root=self.runtime_root, systemd="true" if systemd else "false",
                                  restrict_oom="true" if restrict_oom else "false"))
        self._log = open(os.path.join(base, "containerd.log"), "wb")
        self.proc = subprocess.Popen(["containerd", "--config", self.config], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while self.ctr("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("containerd did not come up:\n" + self.log())
            time.sleep(0.2)
        self.cri = Cri(self.sock)

    def log(self, tail: int = 4000) -> str:
        with open(os.path.join(self.base, "containerd.log"), errors="replace") as f:
            return f.read()[-tail:]

    def ctr(self, *args, check=True, timeout=120):
        p = subprocess.run(["ctr", "-a", self.sock, "-n", NAMESPACE, *args], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("ctr %s: exit %d: %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def import_images(self, rootfs: str) -> None:
        for name, cmd in ((IMAGE, ("sh",)), (PAUSE_IMAGE, PAUSE_CMD)):
            tar = os.path.join(self.base, "image.tar")
            oci_image_tar(rootfs, tar, name=name, cmd=cmd)
            self.ctr("images", "import", tar)
            os.unlink(tar)
        # The CRI plugin learns of an imported image from containerd's events, a moment after the import: a
        # RunPodSandbox before that does not find the sandbox image and tries to pull it from the network
        # (seen once in the slow VM). Wait until CRI itself reports both.
        deadline = time.monotonic() + 60
        for name in (IMAGE, PAUSE_IMAGE):
            while field(self.cri.call("ImageService", "ImageStatus", [(1, [(1, name)])], timeout=10), 1) is None:
                if time.monotonic() > deadline:
                    raise AssertionError("CRI does not see the imported image %s:\n%s" % (name, self.log()))
                time.sleep(0.1)

    def stop(self) -> None:
        """Every pod's containers and sandbox away (through CRI, then containerd's own view), then the
        daemon."""
        try:
            if getattr(self, "cri", None) is not None:
                try:
                    pods = self.cri.rt("ListPodSandbox", [], timeout=30).get(1, [])
                    for raw in pods:
                        pod = field(decode(raw), 1).decode()
                        for fn in (self.cri.stop_pod, self.cri.remove_pod):
                            try:
                                fn(pod)
                            except CriError:
                                pass
                finally:
                    self.cri.close()
            for c in self.ctr("containers", "ls", "-q", check=False).stdout.split():
                self.ctr("task", "kill", "-s", "SIGKILL", c, check=False)
                self.ctr("task", "delete", "--force", c, check=False)
                self.ctr("containers", "rm", c, check=False)
        finally:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
            # pytest shows a failed test's teardown output: containerd's log (its shims' lines among them)
            # then says why a CRI call failed, where the call's own error says only what it saw
            print("containerd's log (debug level: the shims' own lines too), last lines:\n" + self.log(20000))

