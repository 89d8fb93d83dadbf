"""CVE-2021-30465 class: a mount destination inside a volume that another container shares is swapped for a
symlink (renameat2 RENAME_EXCHANGE in a loop) while pyrun sets the container up. A runtime that resolves
the destination to a string and then mounts by path follows the symlink from the host's root; one that
remounts read-only by path again can make a `["bind", "ro"]` mount writable. pyrun opens the destination
inside the rootfs by fd and attaches a mount already made read-only, so the canary mount must always land
inside the container, and read-only."""
from __future__ import annotations

import os
import subprocess
import sys

RACER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b = (os.path.join(sys.argv[1], n).encode() for n in ("target", "evil"))
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    libc.syscall(316, -100, a, -100, b, 2)  # renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""
ATTEMPTS = 40


def _mountinfo(pid: int) -> list[list[str]]:
    with open("/proc/%d/mountinfo" % pid) as f:
        return [line.split() for line in f]


def _race(ct, bundle, rwrootfs, tmp_path, options):
    vol = tmp_path / "vol"
    (vol / "target").mkdir(parents=True)
    os.symlink("/", str(vol / "evil"))  # what the other container swaps in: the host's root, in host terms
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "CANARY").write_text("canary\n")
    b = bundle(["sleep", "30"])
    b.config["root"] = {"path": rwrootfs(), "readonly": False}
    b.config["mounts"] += [
        {"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]},
        {"destination": "/vol/target", "type": "bind", "source": str(canary), "options": options},
    ]
    b.write()
    racer = subprocess.Popen([sys.executable, "-c", RACER, str(vol), "120"])
    created = 0
    try:
        for _ in range(ATTEMPTS):
            cid = ct.id()
            p = ct.call("create", "-b", b.path, cid)
            if p.returncode != 0:
                # the swap can leave the destination anywhere inside the rootfs (its root included):
                # failing is allowed, a traceback is not
                assert "Traceback" not in p.err, p.err
                continue
            created += 1
            try:
                pid = ct.state(cid)["pid"]
                # the canary's bind mount, recognised by its root (the canary directory on its filesystem)
                mine = [m for m in _mountinfo(pid) if m[3].endswith(str(canary))]
                assert mine, "the canary bind mount is not in the container: it landed outside (attempt %d)" % created
                for m in mine:
                    if "ro" in options:
                        assert m[5].split(",")[0] == "ro", "a ['bind', 'ro'] mount came out writable: %s" % m
            finally:
                ct.delete(cid, force=True)
    finally:
        racer.kill()
        racer.wait()
    assert created >= 5, "too few containers were created to show anything (%d of %d)" % (created, ATTEMPTS)


def test_swapped_destination_never_leaves_the_rootfs(ct, bundle, rwrootfs, tmp_path):
    _race(ct, bundle, rwrootfs, tmp_path, ["bind"])


def test_swapped_destination_keeps_a_read_only_bind_read_only(ct, bundle, rwrootfs, tmp_path):
    _race(ct, bundle, rwrootfs, tmp_path, ["bind", "ro"])


def test_symlinked_destination_resolves_inside_the_rootfs(ct, bundle, rwrootfs, tmp_path):
    """Without a race: a destination that is a symlink to an absolute host path is followed inside the
    rootfs (as if the rootfs were /), and nothing is made or mounted on the host path."""
    root = rwrootfs()
    outside = tmp_path / "host-dir"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(root, "link"))
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "CANARY").write_text("canary\n")
    b = bundle(["sh", "-c", "cat %s/CANARY" % outside])
    b.config["root"] = {"path": root, "readonly": False}
    b.config["mounts"].append({"destination": "/link", "type": "bind", "source": str(canary), "options": ["bind"]})
    b.write()
    assert ct.output(b).strip() == "canary"
    assert os.listdir(str(outside)) == []
    assert os.path.isdir(os.path.join(root, str(outside).lstrip("/")))
