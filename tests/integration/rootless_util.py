"""A real unprivileged user for the rootless tests (test_rootless.py here, tests/vm/guest/test_rootless.py in
the systemd VM): made with useradd, given its own subordinate id ranges, and removed afterwards with every
process it left, /etc/subuid and /etc/subgid restored byte for byte, pass or fail.

The user cannot reach the test's interpreter and checkout (a virtualenv and a clone under root-only paths,
as on CI), so pyrun is copied into a world-readable temporary directory: the `runtime` package (with its
compiled `_native.abi3.so` and `_seccomp.py`), `oci-spec/`, and from the virtualenv only what pyrun imports
(cffi's backend; jsonschema and its dependencies, which word a bad config's error). It runs under the
system interpreter the virtualenv was made from, through a `pyrun` wrapper script (also what podman's
--runtime gets), with -P so the caller's cwd never shadows the copy."""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUB_FILES = ("/etc/subuid", "/etc/subgid")
RANGE = 65536
_SITE_PACKAGES = ("_cffi_backend", "jsonschema", "jsonschema_specifications", "referencing", "rpds", "attrs",
                  "attr", "typing_extensions")


class RootlessUser:
    """`run(argv)` runs as the user; `pyrun(*args)` runs the copied pyrun as the user (state under its
    XDG_RUNTIME_DIR unless --root is given)."""

    def __init__(self, rootfs: str, grant_range: bool = True):
        self.name = "pyrl" + secrets.token_hex(4)
        self.saved = {}
        for path in SUB_FILES:
            try:
                with open(path, "rb") as f:
                    self.saved[path] = f.read()
            except FileNotFoundError:
                self.saved[path] = None
        self.uid = None
        self.base = tempfile.mkdtemp(prefix="pyrun-rootless-")
        try:
            os.chmod(self.base, 0o755)
            # -K ...=0: useradd must not pick ranges of its own; the test grants exactly one below
            subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh",
                            "--user-group", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", self.name],
                           check=True, capture_output=True)
            pw = pwd.getpwnam(self.name)
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            self.sub_base = _free_range()
            if grant_range:
                for path in SUB_FILES:
                    with open(path, "a") as f:
                        f.write("%s:%d:%d\n" % (self.name, self.sub_base, RANGE))
            self.pyrun_exe = self._install_pyrun()
            self.home = self._own_dir("home")
            self.xdg = self._own_dir("xdg")
            self.work = self._own_dir("work", 0o755)
            self.rootfs = os.path.join(self.work, "rootfs")
            subprocess.run(["cp", "-a", os.path.realpath(rootfs), self.rootfs], check=True)
            subprocess.run(["chown", "-R", "%d:%d" % (self.uid, self.gid), self.rootfs], check=True)
        except BaseException:
            self.remove()
            raise

    def _own_dir(self, name: str, mode: int = 0o700) -> str:
        d = os.path.join(self.base, name)
        os.mkdir(d, mode)
        os.chmod(d, mode)
        os.chown(d, self.uid, self.gid)
        return d

    def _install_pyrun(self) -> str:
        src = os.path.join(self.base, "src")
        site = os.path.join(self.base, "site")
        os.makedirs(site)
        shutil.copytree(os.path.join(REPO, "runtime"), os.path.join(src, "runtime"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(os.path.join(REPO, "oci-spec"), os.path.join(src, "oci-spec"))
        for name in ("_native.abi3.so", "_seccomp.py"):
            assert os.path.exists(os.path.join(src, "runtime", "linux", name)), "pyrun is not built: %s" % name
        import importlib.util

        for mod in _SITE_PACKAGES:
            spec = importlib.util.find_spec(mod)
            assert spec is not None and spec.origin, "the test interpreter lacks %s" % mod
            origin = spec.origin
            if os.path.basename(origin) == "__init__.py":
                shutil.copytree(os.path.dirname(origin), os.path.join(site, mod),
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(origin, site)
        self.python = os.path.realpath(sys.executable)  # the system interpreter the virtualenv was made from
        exe = os.path.join(self.base, "pyrun")
        with open(exe, "w") as f:
            f.write("#!/bin/sh\nPYTHONPATH=%s:%s exec %s -P -m runtime \"$@\"\n" % (src, site, self.python))
        os.chmod(exe, 0o755)
        for dirpath, dirnames, filenames in os.walk(self.base):
            for n in dirnames:
                os.chmod(os.path.join(dirpath, n), 0o755)
            for n in filenames:
                p = os.path.join(dirpath, n)
                os.chmod(p, stat.S_IMODE(os.stat(p).st_mode) | 0o444)
        return exe

    def env(self, **extra) -> dict:
        e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.home,
             "USER": self.name, "LOGNAME": self.name, "XDG_RUNTIME_DIR": self.xdg, "LANG": "C.UTF-8"}
        e.update(extra)
        return {k: v for k, v in e.items() if v is not None}

    def run(self, argv, timeout=60, env=None, cwd=None, input=None) -> subprocess.CompletedProcess:
        kw = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        p = subprocess.run(list(argv), capture_output=True, timeout=timeout, cwd=cwd or self.work,
                           env=env if env is not None else self.env(), user=self.uid, group=self.gid,
                           extra_groups=[], **kw)
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        return p

    def pyrun(self, *args, **kw) -> subprocess.CompletedProcess:
        return self.run([self.pyrun_exe, *map(str, args)], **kw)

    def detached(self, *args, env=None) -> tuple[int, str]:
        """`run -d` / `create`: the container keeps the stdio it was given, so files, not pipes."""
        out = os.path.join(self.work, "detached-" + secrets.token_hex(3))
        with open(out, "wb") as f:
            p = subprocess.run([self.pyrun_exe, *map(str, args)], stdin=subprocess.DEVNULL, stdout=f,
                               stderr=subprocess.STDOUT, timeout=60, cwd=self.work,
                               env=env if env is not None else self.env(), user=self.uid, group=self.gid,
                               extra_groups=[])
        with open(out) as f:
            text = f.read()
        os.unlink(out)
        return p.returncode, text

    def spec(self, name: str) -> "UserBundle":
        """A bundle made by `pyrun spec --rootless` as the user, rooted at the user's rootfs copy."""
        d = os.path.join(self.work, name)
        self.run(["mkdir", d])
        p = self.pyrun("spec", "--rootless", "--bundle", d)
        assert p.returncode == 0, p.err
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        cfg["root"]["path"] = self.rootfs
        cfg["process"]["terminal"] = False
        return UserBundle(self, d, cfg)

    def state_root(self) -> str:
        return os.path.join(self.xdg, "pyrun")

    def containers(self) -> list:
        try:
            return sorted(n for n in os.listdir(self.state_root()) if not n.startswith("."))
        except FileNotFoundError:
            return []

    def remove(self) -> None:
        """Every container force-deleted, every process of the user (and of its subordinate ids) killed by
        pid, the user deleted, the id files restored, the directory removed."""
        if self.uid is not None:
            if os.path.isdir(self.state_root()):
                for cid in self.containers():
                    try:
                        self.pyrun("delete", "--force", cid, timeout=30)
                    except subprocess.TimeoutExpired:
                        pass
            for _ in range(50):
                pids = self.processes()
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            subprocess.run(["userdel", self.name], capture_output=True)
        for path, data in self.saved.items():
            if data is None:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            else:
                with open(path, "wb") as f:
                    f.write(data)
        with open("/proc/self/mountinfo") as f:
            mps = [line.split()[4] for line in f if line.split()[4].startswith(self.base)]
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def processes(self) -> list:
        """Host pids whose real uid is the user's or one of its subordinate ids."""
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                uid = os.stat("/proc/" + pid).st_uid
            except OSError:
                continue
            if uid == self.uid or (getattr(self, "sub_base", None) and self.sub_base <= uid < self.sub_base + RANGE):
                found.append(int(pid))
        return found


class UserBundle:
    def __init__(self, user: RootlessUser, path: str, config: dict):
        self.user, self.path, self.config = user, path, config
        self.write()

    @property
    def linux(self) -> dict:
        return self.config.setdefault("linux", {})

    @property
    def process(self) -> dict:
        return self.config["process"]

    def write(self) -> "UserBundle":
        tmp = os.path.join(self.path, "config.json")
        with open(tmp, "w") as f:
            json.dump(self.config, f, indent=1)
        os.chown(tmp, self.user.uid, self.user.gid)
        return self

    def mount(self, destination: str) -> dict:
        return next(m for m in self.config["mounts"] if m["destination"] == destination)


def _free_range() -> int:
    """A subordinate range no entry of /etc/subuid or /etc/subgid overlaps."""
    end = 1 << 20
    for path in SUB_FILES:
        try:
            with open(path) as f:
                for line in f:
                    parts = line.strip().split(":")
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        end = max(end, int(parts[1]) + int(parts[2]))
        except FileNotFoundError:
            pass
    return (end + RANGE - 1) // RANGE * RANGE + RANGE
