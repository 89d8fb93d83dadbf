"""cgroup v1 (and hybrid): one directory per mounted hierarchy, limits written controller by controller in
runc's order and with runc's file choices. In hybrid mode the cgroup2 "unified" mount also gets a
directory holding the processes (runc does this so systemd-style tools see the container there); it
carries no limits, as with runc."""

from runtime import lightos as os
from runtime.cgroups import Cgroup, files
from runtime.errors import PyrunError

# runtime.cgroups.convert (the resources' values checked and converted) is imported by the methods that
# write resources, not here: pause, resume and delete load this module without it.

# Hierarchies whose processes list is the container's (first mounted wins), for pids()/stats.
class V1Cgroup(Cgroup):
    version = 1

    def __init__(self, paths: dict, unified: str | None, mountpoints: dict):
        super().__init__()
        self.paths = paths            # controller (or "name=x") -> directory
        self.unified = unified        # hybrid only: directory in the cgroup2 mount
        self.mountpoints = mountpoints  # directory -> mount point of its hierarchy

    # -- layout -----------------------------------------------------------------------------------
    def _dirs(self) -> list:
        return files.v1_dirs(self.paths, self.unified)

    def _optional(self, d: str) -> bool:
        """Named hierarchies (name=systemd) and the hybrid unified dir only group processes: runc joins
        them best-effort and so do we."""
        if d == self.unified:
            return True
        keys = [k for k, v in self.paths.items() if v == d]
        return bool(keys) and all(k.startswith("name=") for k in keys)

    def _drop(self, d: str) -> None:
        for k in [k for k, v in self.paths.items() if v == d]:
            del self.paths[k]
        if d == self.unified:
            self.unified = None

    def _leaves(self) -> list:
        return [(d, self.mountpoints.get(d) or os.path.dirname(d)) for d in self._dirs()]

    def _entry_cgroup2_dir(self):
        return self.unified

    def kill_dir(self):
        return self.unified

    def _entry_v1_dirs(self) -> list:
        return [(d, self._optional(d)) for d in self._dirs() if d != self.unified]

    def path(self, controller: str) -> str | None:
        return self.paths.get(controller)

    def _need(self, controller: str, what: str) -> str:
        p = self.paths.get(controller)
        if p is None:
            raise PyrunError("cannot set %s: the %s cgroup controller is not mounted on this host"
                             % (what, controller))
        return p

    # -- create / add / destroy -------------------------------------------------------------------
    def create(self) -> None:
        for d in self._dirs():
            mp = self.mountpoints.get(d) or os.path.dirname(d)
            try:
                files.mkdir_p(d, mp, self.created)
            except PyrunError:
                if self._optional(d):
                    self._drop(d)
                    continue
                raise
        cs = self.paths.get("cpuset")
        if cs is not None:
            self._init_cpuset(cs, self.mountpoints.get(cs) or os.path.dirname(cs))

    @staticmethod
    def _init_cpuset(leaf: str, mountpoint: str) -> None:
        """A new v1 cpuset cgroup starts with empty cpus/mems and refuses tasks (ENOSPC) until they are
        set: copy them down from the parent at each empty level, as runc's cpuset ensureParent does."""
        levels = []
        p = leaf
        while p != mountpoint and p.startswith(mountpoint + "/"):
            levels.append(p)
            p = os.path.dirname(p)
        parent = mountpoint
        for lv in reversed(levels):
            for f in ("cpuset.cpus", "cpuset.mems"):
                if files.read_or(lv + "/" + f) == "":
                    val = files.read_or(parent + "/" + f)
                    if val:
                        files.write(lv, f, val)
            parent = lv

    def add(self, pid: int) -> None:
        for d in self._dirs():
            if self._optional(d):
                try:
                    files.add_pid(d, pid)
                except PyrunError:
                    pass
            else:
                files.add_pid(d, pid)

    def exec_cgroup(self, sub: dict) -> "V1Cgroup":
        """{"": path}: every hierarchy the container has (named ones and the hybrid unified directory too,
        as runc); {controller: path}: those controllers' hierarchies, the rest stay in the container's
        cgroup. A hierarchy holds a process in one cgroup only, so co-mounted controllers (cpu,cpuacct)
        move together, and two different paths for one hierarchy are an error."""
        from runtime.cgroups import sub_cgroup_dir

        every = sub.get("") if list(sub) == [""] else None
        unknown = [k for k in sub if k not in self.paths and not (k == "" and every is not None)]
        if unknown:
            raise PyrunError("--cgroup: unknown controller %s (the container's cgroup has: %s)"
                             % (unknown[0], ", ".join(sorted(self.paths))))
        moved: dict = {}  # container directory -> sub path asked for it
        for ctrl, d in self.paths.items():
            want = every if every is not None else sub.get(ctrl)
            if want is None:
                continue
            if moved.setdefault(d, want) != want:
                raise PyrunError("--cgroup: %s: controllers of one hierarchy (%s) given different paths"
                                 % (ctrl, d))
        paths = {ctrl: sub_cgroup_dir(d, moved[d]) if d in moved else d for ctrl, d in self.paths.items()}
        unified = self.unified
        if unified and every is not None:
            unified = sub_cgroup_dir(unified, every)
        mountpoints = {}
        for old, new in [(d, paths[c]) for c, d in self.paths.items()] + [(self.unified, unified)]:
            if old is not None:
                mountpoints[new] = self.mountpoints.get(old) or os.path.dirname(old)
        cg = V1Cgroup(paths, unified, mountpoints)
        cg.rootless = self.rootless
        return cg

    def destroy(self) -> None:
        """Remove, deepest first, only what create() made; never a directory that was there before."""
        created = set(self.created)
        leaves = self._dirs()
        errors = []
        for d in leaves:
            if d in created:
                try:
                    files.remove_tree(d)
                except PyrunError as e:
                    errors.append(str(e))
        for d in reversed(self.created):
            if d not in leaves:
                files.remove_parent(d)
        if errors:
            raise PyrunError("; ".join(errors))

    def to_state(self) -> dict:
        return {"version": 1, "paths": dict(self.paths), "unified": self.unified,
                "mountpoints": dict(self.mountpoints), "created": list(self.created)}

    def pids(self) -> list:
        d = files.v1_pids_dir(self.paths, self._dirs())
        return files.pids_in(d) if d is not None else []

    # -- limits -----------------------------------------------------------------------------------
    def apply(self, resources: dict | None) -> None:
        self.write_resources(resources or {}, devices=True)

    def update(self, resources: dict | None) -> None:
        r = resources or {}
        self.write_resources(r, devices="devices" in r)

    def check(self, resources: dict | None) -> None:
        """What this host can never do, refused before create makes anything (runc's wording)."""
        if isinstance(resources, dict) and resources.get("unified"):
            raise PyrunError("invalid configuration: linux.resources.unified: cannot use unified on cgroup v1 "
                             "(this host's controllers are cgroup v1 hierarchies)")

    def write_resources(self, r: dict, devices: bool) -> None:
        if not isinstance(r, dict):
            raise PyrunError("linux.resources: expected an object")
        self.check(r)
        cpu = r.get("cpu") or {}
        self._cpuset(cpu)
        if devices:
            try:
                self._devices(r.get("devices") or [])
            except PyrunError:
                if not self.rootless:  # rootless: as runc, the rules are left out where they cannot be written
                    raise
        self._memory(r.get("memory") or {})
        self._cpu(cpu)
        self._pids(r.get("pids") or {})
        self._blkio(r.get("blockIO") or {})
        self._hugetlb(r.get("hugepageLimits") or [])
        self._network(r.get("network") or {})
        self._rdma(r.get("rdma") or {})

    def _cpuset(self, cpu: dict) -> None:
        cpus, mems = cpu.get("cpus"), cpu.get("mems")
        if cpus:
            files.write(self._need("cpuset", "cpu.cpus"), "cpuset.cpus", cpus)
        if mems:
            files.write(self._need("cpuset", "cpu.mems"), "cpuset.mems", mems)

    def _devices(self, rules: list) -> None:
        """The spec's rules then runc's default allow-list, run through runc's devices emulator
        (devices.emulate, the same semantics as the v2 program); the cgroup is then moved from what its
        devices.list says to that with the fewest writes (devices.transition): an `update` of an
        allow-list never passes through deny-all or allow-all, so a process using /dev/null meanwhile
        never sees EPERM. Checked afterwards against devices.list, as runc does."""
        from runtime.cgroups import devices as D

        p = self.paths.get("devices")
        if p is None:
            raise PyrunError("the devices cgroup controller is not mounted; refusing to run a container "
                             "without a device whitelist")
        if not isinstance(rules, list):
            raise PyrunError("linux.resources.devices: expected an array")
        target = D.emulate(D.rules_for(rules))
        current = D.parse_list(files.read_or(p + "/devices.list", "a *:* rwm"))
        for allow, text in D.transition(current, target):
            files.write(p, "devices.allow" if allow else "devices.deny", text)
        after = D.parse_list(files.read_or(p + "/devices.list", ""))
        if (after is None) != target[0] or (not target[0] and after != target):
            raise PyrunError("cgroup: %s/devices.list does not match linux.resources.devices after writing "
                             "them" % p)

    def _memory(self, m: dict) -> None:
        from runtime.cgroups import convert as C

        limit = C.get_int(m, "limit", "memory")
        swap = C.get_int(m, "swap", "memory")
        reservation = C.get_int(m, "reservation", "memory")
        ktcp = C.get_int(m, "kernelTCP", "memory")
        swappiness = m.get("swappiness")
        oom_off = bool(m.get("disableOOMKiller"))
        if not (limit or swap or reservation or ktcp or oom_off or swappiness is not None):
            return  # memory.kernel is deprecated (and gone from 6.x kernels): ignored, as runc 1.1 does
        p = self._need("memory", "memory limits")
        if limit == -1 and swap == 0 and files.exists(p + "/memory.memsw.limit_in_bytes"):
            swap = -1  # unlimited memory with swap unspecified means unlimited memory+swap (runc)
        # Order the two writes so the kernel's memsw >= limit check holds at every step.
        swap_first = False
        if limit and swap:
            cur = files.read_int(p + "/memory.limit_in_bytes", 0)
            swap_first = swap == -1 or cur < swap
        if swap_first:
            self._write_swap(p, swap)
            self._write_limit(p, limit)
        else:
            self._write_limit(p, limit)
            self._write_swap(p, swap)
        if reservation:
            files.write(p, "memory.soft_limit_in_bytes", reservation)
        if ktcp:
            files.write(p, "memory.kmem.tcp.limit_in_bytes", ktcp)
        if oom_off:
            files.write(p, "memory.oom_control", "1")
        if swappiness is not None:
            sw = C.as_int(swappiness, "memory.swappiness")
            if sw == -1:
                pass
            elif 0 <= sw <= 100:
                files.write(p, "memory.swappiness", sw)
            else:
                raise PyrunError("linux.resources.memory.swappiness: invalid value %d, valid range is 0-100" % sw)

    @staticmethod
    def _write_limit(p: str, limit: int) -> None:
        if not limit:
            return
        try:
            files.write_raw(p + "/memory.limit_in_bytes", str(limit))
        except OSError as e:
            import errno

            if e.errno == errno.EBUSY:
                usage = files.read_int(p + "/memory.usage_in_bytes", 0)
                peak = files.read_int(p + "/memory.max_usage_in_bytes", 0)
                raise PyrunError("cgroup: unable to set memory limit to %d (current usage: %d, peak usage: %d)"
                                 % (limit, usage, peak)) from None
            raise PyrunError("cgroup: cannot write %r to %s/memory.limit_in_bytes: %s"
                             % (str(limit), p, e.strerror or e)) from None

    @staticmethod
    def _write_swap(p: str, swap: int) -> None:
        if swap:
            files.write(p, "memory.memsw.limit_in_bytes", swap)

    def _cpu(self, c: dict) -> None:
        from runtime.cgroups import convert as C

        shares = C.get_int(c, "shares", "cpu")
        quota = C.get_int(c, "quota", "cpu")
        period = C.get_int(c, "period", "cpu")
        rt_period = C.get_int(c, "realtimePeriod", "cpu")
        rt_runtime = C.get_int(c, "realtimeRuntime", "cpu")
        idle = c.get("idle")
        burst = c.get("burst")
        if not (shares or quota or period or rt_period or rt_runtime or idle is not None or burst is not None):
            return
        p = self._need("cpu", "cpu limits")
        if shares:
            files.write(p, "cpu.shares", shares)
            got = files.read_int(p + "/cpu.shares", shares)
            if shares > got:
                raise PyrunError("linux.resources.cpu.shares: the maximum allowed cpu-shares is %d" % got)
            if shares < got:
                raise PyrunError("linux.resources.cpu.shares: the minimum allowed cpu-shares is %d" % got)
        retry_period = False
        if period:
            try:
                files.write_raw(p + "/cpu.cfs_period_us", str(period))
            except OSError as e:
                import errno

                # A period smaller than the current one can be refused while the old quota stands:
                # set the quota first and retry (runc does the same).
                if e.errno != errno.EINVAL or not quota:
                    raise PyrunError("cgroup: cannot write %r to %s/cpu.cfs_period_us: %s"
                                     % (str(period), p, e.strerror or e)) from None
                retry_period = True
        if quota:
            files.write(p, "cpu.cfs_quota_us", quota)
            if retry_period:
                files.write(p, "cpu.cfs_period_us", period)
        if burst is not None:
            files.write(p, "cpu.cfs_burst_us", C.as_int(burst, "cpu.burst"))
        if idle is not None:
            files.write(p, "cpu.idle", C.as_int(idle, "cpu.idle"))
        if rt_period:
            files.write(p, "cpu.rt_period_us", rt_period)
        if rt_runtime:
            files.write(p, "cpu.rt_runtime_us", rt_runtime)

    def _pids(self, pd: dict) -> None:
        from runtime.cgroups import convert as C

        value = C.pids_max(pd)
        if value is not None:
            files.write(self._need("pids", "pids.limit"), "pids.max", value)

    def _blkio(self, b: dict) -> None:
        from runtime.cgroups import convert as C

        weight = C.get_int(b, "weight", "blockIO")
        leaf = C.get_int(b, "leafWeight", "blockIO")
        wdev = b.get("weightDevice") or []
        throttles = [(k, b.get(k) or []) for k in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                                                   "throttleReadIOPSDevice", "throttleWriteIOPSDevice")]
        if not (weight or leaf or wdev or any(v for _, v in throttles)):
            return
        p = self._need("blkio", "blockIO limits")
        # CFQ exposes blkio.weight; with BFQ (all that is left on new kernels) it is blkio.bfq.weight.
        if files.exists(p + "/blkio.weight"):
            wfile, wdfile = "blkio.weight", "blkio.weight_device"
        else:
            wfile, wdfile = "blkio.bfq.weight", "blkio.bfq.weight_device"
        if weight:
            files.write(p, wfile, weight)
        if leaf:
            files.write(p, "blkio.leaf_weight", leaf)
        for i, wd in enumerate(wdev):
            dev = "%d:%d" % (C.get_int(wd, "major", "blockIO.weightDevice[%d]" % i),
                             C.get_int(wd, "minor", "blockIO.weightDevice[%d]" % i))
            w = C.get_int(wd, "weight", "blockIO.weightDevice[%d]" % i)
            lw = C.get_int(wd, "leafWeight", "blockIO.weightDevice[%d]" % i)
            if w:
                files.write(p, wdfile, "%s %d" % (dev, w))
            if lw:
                files.write(p, "blkio.leaf_weight_device", "%s %d" % (dev, lw))
        throttle_files = {"throttleReadBpsDevice": "blkio.throttle.read_bps_device",
                          "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
                          "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
                          "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device"}
        for key, devs in throttles:
            for i, td in enumerate(devs):
                what = "blockIO.%s[%d]" % (key, i)
                files.write(p, throttle_files[key], "%d:%d %d" % (
                    C.get_int(td, "major", what), C.get_int(td, "minor", what), C.get_int(td, "rate", what)))

    def _hugetlb(self, limits: list) -> None:
        from runtime.cgroups import convert as C

        if not limits:
            return
        p = self._need("hugetlb", "hugepageLimits")
        for i, hl in enumerate(limits):
            size = hl.get("pageSize") or hl.get("pagesize")
            if not size:
                raise PyrunError("linux.resources.hugepageLimits[%d]: pageSize is required" % i)
            limit = C.get_int(hl, "limit", "hugepageLimits[%d]" % i)
            files.write(p, "hugetlb.%s.limit_in_bytes" % size, limit)
            rsvd = "%s/hugetlb.%s.rsvd.limit_in_bytes" % (p, size)
            if files.exists(rsvd):
                files.write(p, "hugetlb.%s.rsvd.limit_in_bytes" % size, limit)

    def _network(self, n: dict) -> None:
        from runtime.cgroups import convert as C

        classid = C.get_int(n, "classID", "network")
        if classid:
            files.write(self._need("net_cls", "network.classID"), "net_cls.classid", classid)
        prios = n.get("priorities") or []
        if prios:
            p = self._need("net_prio", "network.priorities")
            for i, pr in enumerate(prios):
                files.write(p, "net_prio.ifpriomap", "%s %d" % (pr.get("name"),
                                                             C.get_int(pr, "priority", "network.priorities[%d]" % i)))

    def _rdma(self, rd: dict) -> None:
        if not rd:
            return
        p = self._need("rdma", "rdma limits")
        for dev, lim in rd.items():
            files.write(p, "rdma.max", rdma_line(dev, lim))

    # -- freezer ----------------------------------------------------------------------------------
    def _freezer(self) -> str:
        p = self.paths.get("freezer")
        if p is None:
            raise PyrunError("cannot pause/resume: the freezer cgroup controller is not mounted")
        return p

    def freeze(self) -> None:
        """Write FROZEN until the state reads FROZEN; a task stuck in the kernel can keep the cgroup in
        FREEZING, which runc unsticks with an occasional thaw+refreeze: same loop, ~10 s at most."""
        import time

        p = self._freezer()
        for i in range(1000):
            if i % 50 == 49:
                files.write(p, "freezer.state", "THAWED")
                time.sleep(0.01)
            files.write(p, "freezer.state", "FROZEN")
            if i > 25:
                time.sleep(0.01)
            state = files.read_or(p + "/freezer.state", "")
            if state == "FROZEN":
                return
            if state != "FREEZING":
                raise PyrunError("cgroup: unexpected freezer state %r after writing FROZEN to %s/freezer.state"
                                 % (state, p))
        files.write(p, "freezer.state", "THAWED")
        raise PyrunError("cgroup: unable to freeze %s (processes stuck in FREEZING)" % p)

    def thaw(self) -> None:
        files.write(self._freezer(), "freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        return files.v1_self_frozen(self.paths.get("freezer"))

    def frozen_anywhere(self) -> bool:
        p = self.paths.get("freezer")
        if p is not None and files.read_or(p + "/freezer.state", "THAWED") != "THAWED":
            return True
        if self.unified:  # hybrid: the cgroup2 tree has its own freezer (cgroup.freeze), inherited
            return files.cgroup2_frozen(self.unified)
        return False

    # -- OOM --------------------------------------------------------------------------------------
    def oom_count(self) -> int:
        p = self.paths.get("memory")
        if p is None:
            return 0
        return files.read_kv(p + "/memory.oom_control").get("oom_kill", 0)

    # -- stats ------------------------------------------------------------------------------------
    def stats(self) -> dict:
        """runc's `events --stats` data for v1 (types.Stats JSON, zero "omitempty" fields left out)."""
        from runtime.cgroups import stats as S

        return {
            "cpu": S.v1_cpu(self.paths.get("cpuacct"), self.paths.get("cpu")),
            "cpuset": S.v1_cpuset(self.paths.get("cpuset")),
            "memory": S.v1_memory(self.paths.get("memory")),
            "pids": S.v1_pids(self.paths.get("pids")),
            "blkio": S.v1_blkio(self.paths.get("blkio")),
            "hugetlb": S.v1_hugetlb(self.paths.get("hugetlb")),
            "intel_rdt": {},
            "network_interfaces": None,
        }


def rdma_line(dev: str, lim: dict) -> str:
    from runtime.cgroups import convert as C

    parts = [dev]
    if lim.get("hcaHandles") is not None:
        parts.append("hca_handle=%d" % C.as_int(lim["hcaHandles"], "rdma.hcaHandles"))
    if lim.get("hcaObjects") is not None:
        parts.append("hca_object=%d" % C.as_int(lim["hcaObjects"], "rdma.hcaObjects"))
    return " ".join(parts)
