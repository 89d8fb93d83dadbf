"""cgroup v2: a single directory. Controllers are delegated down to it by writing every controller of the
hierarchy root into each ancestor's cgroup.subtree_control (what runc's fs2 CreateCgroupPath does);
limits use runc's v1->v2 conversions (cpu.weight from shares, memory.swap.max = swap - limit, ...)."""
import errno

from runtime import lightos as os
from runtime.cgroups import Cgroup, files
from runtime.errors import PyrunError

# runtime.cgroups.convert (the resources' values checked and converted) is imported by the methods that
# write resources, not here: pause, resume and delete load this module without it.


class V2Cgroup(Cgroup):
    version = 2

    def __init__(self, path: str, mountpoint: str):
        super().__init__()
        self.path = path
        self.mountpoint = mountpoint or os.path.dirname(path)

    def to_state(self) -> dict:
        return {"version": 2, "path": self.path, "mountpoint": self.mountpoint, "created": list(self.created)}

    # -- create / add / destroy -------------------------------------------------------------------
    def create(self) -> None:
        files.mkdir_p(self.path, self.mountpoint, self.created)
        self.delegate()

    def delegate(self) -> None:
        """Enable the root's controllers in every ancestor's subtree_control, from the mount down to the
        parent. A level with processes of its own refuses (EBUSY; "no internal processes"): runc then
        tries controller by controller and lets the later limit write report what is missing."""
        ctrs = (files.read_or(self.mountpoint + "/cgroup.controllers") or "").split()
        if not ctrs:
            return
        want = " ".join("+" + c for c in ctrs)
        level = self.mountpoint
        rel = self.path[len(self.mountpoint):].strip("/").split("/")
        for part in rel:
            try:
                files.write_raw(level + "/cgroup.subtree_control", want)
            except OSError:
                for c in ctrs:
                    try:
                        files.write_raw(level + "/cgroup.subtree_control", "+" + c)
                    except OSError:
                        pass
            level = level + "/" + part

    def _leaves(self) -> list:
        return [(self.path, self.mountpoint)]

    def _entry_cgroup2_dir(self):
        return self.path

    def kill_dir(self):
        return self.path

    def add(self, pid: int) -> None:
        files.add_pid(self.path, pid)

    is_sub = False  # an `exec --cgroup` sub-cgroup: no falling back to the init's cgroup

    def exec_cgroup(self, sub: dict) -> "V2Cgroup":
        """cgroup v2 has one hierarchy: only the plain `--cgroup PATH` form (runc's paths map has just "")."""
        from runtime.cgroups import sub_cgroup_dir

        ctrls = [k for k in sub if k]
        if ctrls:
            raise PyrunError("--cgroup: unknown controller %s (cgroup v2 has one hierarchy: give the "
                             "sub-cgroup's path without a controller)" % ctrls[0])
        cg = V2Cgroup(sub_cgroup_dir(self.path, sub[""]), self.mountpoint)
        cg.is_sub = True
        cg.rootless = self.rootless
        return cg

    def add_exec(self, pid: int, init_pid: int) -> None:
        """runc's fallback: a container cgroup that has become a parent with controllers enabled (a nested
        runtime or systemd inside moved the init below it) refuses processes (EBUSY, "no internal
        processes"): join the init's own cgroup instead, as long as it is inside the container's."""
        try:
            self.add(pid)
            return
        except PyrunError as e:
            first = e
        if self.is_sub or not init_pid:
            raise first
        from runtime.cgroups import mounts

        try:
            own = mounts.parse_proc_cgroup(mounts.read_text("/proc/%d/cgroup" % init_pid))
        except OSError:
            raise first from None
        rel = own.get("")
        if rel is None:
            raise first
        target = self.mountpoint.rstrip("/") + rel
        if target == self.path or not target.startswith(self.path.rstrip("/") + "/"):
            raise first
        files.add_pid(target, pid)

    def destroy(self) -> None:
        if self.path in self.created:
            files.remove_tree(self.path)
        for d in reversed(self.created):
            if d != self.path:
                files.remove_parent(d)

    def pids(self) -> list:
        return files.pids_in(self.path)

    # -- limits -----------------------------------------------------------------------------------
    def apply(self, resources: dict | None) -> None:
        self.write_resources(resources or {}, devices=True)

    def update(self, resources: dict | None) -> None:
        r = resources or {}
        self.write_resources(r, devices="devices" in r)

    def write_resources(self, r: dict, devices: bool) -> None:
        """linux.resources.devices becomes an eBPF device program (devices.py), as with runc; on create
        always (the default allow-list), on update only when the rules are given.
        memory.swappiness, memory.disableOOMKiller, memory.kernel*, blockIO.leafWeight and network have
        no v2 files and are ignored, as runc 1.1 ignores them. cpu.realtimePeriod/realtimeRuntime (v2 has no
        realtime group scheduling) are refused: a real-time budget silently dropped is a limit not kept."""
        from runtime.cgroups import convert as C

        if not isinstance(r, dict):
            raise PyrunError("linux.resources: expected an object")
        for key in ("realtimePeriod", "realtimeRuntime"):
            if C.get_int(r.get("cpu") or {}, key, "cpu"):
                raise PyrunError("linux.resources.cpu.%s: cgroup v2 has no real-time group scheduling "
                                 "(cpu.rt_period_us / cpu.rt_runtime_us are cgroup v1 only)" % key)
        if devices:
            from runtime.cgroups import devices as D

            try:
                D.apply(self.path, r.get("devices"))
            except PyrunError:
                if not self.rootless:  # rootless: as runc, the rules are left out where they cannot be loaded
                    raise
        cpu = r.get("cpu") or {}
        self._cpuset(cpu)
        self._memory(r.get("memory") or {})
        self._cpu(cpu)
        self._pids(r.get("pids") or {})
        self._io(r.get("blockIO") or {})
        self._hugetlb(r.get("hugepageLimits") or [])
        self._rdma(r.get("rdma") or {})
        self._unified(r.get("unified") or {})

    def _cpuset(self, cpu: dict) -> None:
        if cpu.get("cpus"):
            files.write(self.path, "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            files.write(self.path, "cpuset.mems", cpu["mems"])

    def _memory(self, m: dict) -> None:
        from runtime.cgroups import convert as C

        limit = C.get_int(m, "limit", "memory")
        swap = C.get_int(m, "swap", "memory")
        reservation = C.get_int(m, "reservation", "memory")
        if not (limit or swap or reservation):
            return
        swap2 = C.swap_to_v2(swap, limit)
        swap_str = C.num_to_str(swap2)
        if swap_str == "" and swap2 == 0 and swap > 0:
            swap_str = "0"  # limit == swap: no swap at all
        if m.get("checkBeforeUpdate") and limit > 0:
            usage = files.read_int(self.path + "/memory.current", 0)
            if usage >= limit:
                raise PyrunError("rejecting memory limit %d below current usage %d" % (limit, usage))
        if swap_str:
            try:
                files.write_raw(self.path + "/memory.swap.max", swap_str)
            except OSError as e:
                # No swap accounting: "max" and "0" are what we have anyway.
                if not (e.errno == errno.ENOENT and swap_str in ("max", "0")):
                    raise PyrunError("cgroup: cannot write %r to %s/memory.swap.max: %s"
                                     % (swap_str, self.path, e.strerror or e)) from None
        if limit:
            files.write(self.path, "memory.max", C.num_to_str(limit))
        if reservation:
            files.write(self.path, "memory.low", C.num_to_str(reservation))

    def _cpu(self, c: dict) -> None:
        from runtime.cgroups import convert as C

        shares = C.get_int(c, "shares", "cpu")
        quota = C.get_int(c, "quota", "cpu")
        period = C.get_int(c, "period", "cpu")
        # The kernel refuses cpu.weight (EINVAL) while the cgroup is idle: leaving idle goes before the
        # weight, entering it after, so that one apply/update may carry both.
        idle = None if c.get("idle") is None else C.as_int(c["idle"], "cpu.idle")
        if idle == 0:
            files.write(self.path, "cpu.idle", idle)
        if shares:
            files.write(self.path, "cpu.weight", C.shares_to_weight(shares))
        if idle:
            files.write(self.path, "cpu.idle", idle)
        if quota or period:
            # cpu.max holds both: keep the current half that was not asked for (an `update` of just
            # the period must not drop the quota); on a new cgroup that is runc's "max 100000".
            cur = (files.read_or(self.path + "/cpu.max") or "").split() or ["max", "100000"]
            q = ("max" if quota < 0 else str(quota)) if quota else cur[0]
            p = str(period) if period else (cur[1] if len(cur) > 1 else "100000")
            files.write(self.path, "cpu.max", "%s %s" % (q, p))
        if c.get("burst") is not None:
            files.write(self.path, "cpu.max.burst", C.as_int(c["burst"], "cpu.burst"))

    def _pids(self, pd: dict) -> None:
        from runtime.cgroups import convert as C

        value = C.pids_max(pd)
        if value is not None:
            files.write(self.path, "pids.max", value)

    def _io(self, b: dict) -> None:
        from runtime.cgroups import convert as C

        weight = C.get_int(b, "weight", "blockIO")
        wdev = b.get("weightDevice") or []
        bfq = (weight or wdev) and files.exists(self.path + "/io.bfq.weight")
        if weight:
            if bfq:
                files.write(self.path, "io.bfq.weight", weight)
            else:
                files.write(self.path, "io.weight", C.blkio_weight_to_io_weight(weight))
        if bfq:  # only BFQ has per-device weights
            for i, wd in enumerate(wdev):
                w = C.get_int(wd, "weight", "blockIO.weightDevice[%d]" % i)
                if w:
                    files.write(self.path, "io.bfq.weight", "%d:%d %d" % (
                        C.get_int(wd, "major", "blockIO.weightDevice[%d]" % i),
                        C.get_int(wd, "minor", "blockIO.weightDevice[%d]" % i), w))
        for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                          ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for i, td in enumerate(b.get(key) or []):
                what = "blockIO.%s[%d]" % (key, i)
                files.write(self.path, "io.max", "%d:%d %s=%d" % (C.get_int(td, "major", what),
                                                                C.get_int(td, "minor", what), name,
                                                                C.get_int(td, "rate", what)))

    def _hugetlb(self, limits: list) -> None:
        from runtime.cgroups import convert as C

        for i, hl in enumerate(limits):
            size = hl.get("pageSize") or hl.get("pagesize")
            if not size:
                raise PyrunError("linux.resources.hugepageLimits[%d]: pageSize is required" % i)
            limit = C.get_int(hl, "limit", "hugepageLimits[%d]" % i)
            files.write(self.path, "hugetlb.%s.max" % size, limit)
            if files.exists("%s/hugetlb.%s.rsvd.max" % (self.path, size)):
                files.write(self.path, "hugetlb.%s.rsvd.max" % size, limit)

    def _rdma(self, rd: dict) -> None:
        from runtime.cgroups.v1 import rdma_line

        for dev, lim in rd.items():
            files.write(self.path, "rdma.max", rdma_line(dev, lim))

    def _unified(self, u: dict) -> None:
        """linux.resources.unified: raw "file": "value" pairs, written last so they win (runc)."""
        if not isinstance(u, dict):
            raise PyrunError("linux.resources.unified: expected an object")
        avail = None
        for key, value in u.items():
            if not key or "/" in key or key.startswith(".") or "." not in key:
                raise PyrunError("linux.resources.unified: invalid key %r" % key)
            ctrl = key.split(".", 1)[0]
            if ctrl != "cgroup":
                if avail is None:
                    avail = (files.read_or(self.path + "/cgroup.controllers") or "").split()
                if ctrl not in avail:
                    raise PyrunError("linux.resources.unified: %r: controller %r not available in %s"
                                     % (key, ctrl, self.path))
            files.write(self.path, key, value)

    # -- freezer ----------------------------------------------------------------------------------
    def freeze(self) -> None:
        files.write(self.path, "cgroup.freeze", "1")
        if not self._wait_frozen(True, 10.0):
            files.write(self.path, "cgroup.freeze", "0")
            raise PyrunError("cgroup: timeout waiting for %s to freeze" % self.path)

    def thaw(self) -> None:
        files.write(self.path, "cgroup.freeze", "0")
        self._wait_frozen(False, 1.0)

    def _wait_frozen(self, want: bool, timeout: float) -> bool:
        """cgroup.events "frozen" flips once every task has stopped; kernfs wakes poll() (POLLPRI) on
        each change, so this sleeps in the kernel rather than spinning."""
        import select
        import time

        path = self.path + "/cgroup.events"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI | select.POLLERR)
            deadline = time.monotonic() + timeout
            while True:
                os.lseek(fd, 0, os.SEEK_SET)
                data = os.read(fd, 4096).decode()
                for line in data.splitlines():
                    if line.startswith("frozen "):
                        if (line.split()[1] == "1") == want:
                            return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                poller.poll(min(left, 0.1) * 1000)
        finally:
            os.close(fd)

    def is_frozen(self) -> bool:
        return files.v2_self_frozen(self.path)

    def frozen_anywhere(self) -> bool:
        return files.cgroup2_frozen(self.path)

    # -- OOM / stats ------------------------------------------------------------------------------
    def oom_count(self) -> int:
        return files.read_kv(self.path + "/memory.events").get("oom_kill", 0)

    def stats(self) -> dict:
        from runtime.cgroups import stats as S

        return {
            "cpu": S.v2_cpu(self.path),
            "cpuset": S.v2_cpuset(self.path),
            "memory": S.v2_memory(self.path),
            "pids": S.v2_pids(self.path, self.pids),
            "blkio": S.v2_io(self.path),
            "hugetlb": S.v2_hugetlb(self.path),
            "intel_rdt": {},
            "network_interfaces": None,
        }
