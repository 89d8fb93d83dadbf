"""Kernel facts read from the container's /proc, which the container controls: a regular file
/proc/sys/kernel/cap_last_cap holding "0" makes a runtime that reads it after entering the container
drop only capability 0 from the bounding set and leave every other one in. pyrun reads it on the host,
before pivot_root (create) and before joining the mount namespace (exec), and refuses a /proc/self/fd
or /proc/sys that is not procfs."""
from __future__ import annotations

import os

from runtime.init.capabilities import mask

DEFAULT_BOUNDING = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def _bnd(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise AssertionError("no CapBnd in %r" % text)


def test_exec_reads_cap_last_cap_on_the_host(ct, bundle):
    """A container with CAP_SYS_ADMIN covers /proc/sys/kernel with its own cap_last_cap = 0; an exec'd
    process must still get exactly the configured bounding set."""
    b = bundle(["sh", "-c", "mount -t tmpfs tmpfs /proc/sys/kernel && echo 0 > /proc/sys/kernel/cap_last_cap "
                            "&& touch /tmp/faked; sleep 30"])
    b.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []})
    b.config["linux"]["readonlyPaths"] = [p for p in b.linux.get("readonlyPaths", []) if p != "/proc/sys"]
    caps = DEFAULT_BOUNDING + ["CAP_SYS_ADMIN"]
    b.process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    b.write()
    cid = ct.run_detached(b).cid
    for _ in range(200):
        if ct.call("exec", cid, "test", "-e", "/tmp/faked").returncode == 0:
            break
    p = ct.call("exec", cid, "sh", "-c", "cat /proc/sys/kernel/cap_last_cap; cat /proc/self/status")
    assert p.returncode == 0, p.err
    assert p.out.splitlines()[0] == "0", "the container did not fake cap_last_cap: %r" % p.out
    assert _bnd(p.out) == mask(caps), "bounding set %x, configured %x" % (_bnd(p.out), mask(caps))


def test_create_with_a_fake_proc_fails_or_keeps_the_bounding_set(ct, bundle, rwrootfs):
    """The rootfs ships /proc as plain files (cap_last_cap = 0, an empty self/fd) and procfs is mounted
    elsewhere: pyrun either refuses (its /proc/self/fd is not procfs) or gives exactly the bounding set."""
    root = rwrootfs()
    os.makedirs(os.path.join(root, "proc/sys/kernel"), exist_ok=True)
    os.makedirs(os.path.join(root, "proc/self/fd"), exist_ok=True)
    with open(os.path.join(root, "proc/sys/kernel/cap_last_cap"), "w") as f:
        f.write("0\n")
    b = bundle(["cat", "/realproc/self/status"])
    b.config["root"] = {"path": root, "readonly": False}
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/proc"]
    b.config["mounts"].append({"destination": "/realproc", "type": "proc", "source": "proc"})
    b.config["linux"]["maskedPaths"] = []
    b.config["linux"]["readonlyPaths"] = []
    b.write()
    p = ct.call("run", "-b", b.path, ct.id())
    assert "Traceback" not in p.err
    if p.returncode == 0:
        assert _bnd(p.out) == mask(b.process["capabilities"]["bounding"]), p.out
    else:
        assert "procfs" in p.err, p.err


def test_sysctl_is_not_written_to_a_fake_proc(ct, bundle, rwrootfs):
    """No procfs on /proc: a sysctl must be an error, never a silent write into the image's files."""
    root = rwrootfs()
    os.makedirs(os.path.join(root, "proc/sys/net/ipv4"), exist_ok=True)
    b = bundle(["true"])
    b.config["root"] = {"path": root, "readonly": False}
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/proc"]
    b.config["linux"]["maskedPaths"] = []
    b.config["linux"]["readonlyPaths"] = []
    b.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    b.write()
    p = ct.call("run", "-b", b.path, ct.id())
    assert p.returncode != 0
    assert "not procfs" in p.err, p.err
    assert not os.path.exists(os.path.join(root, "proc/sys/net/ipv4/ip_forward"))
