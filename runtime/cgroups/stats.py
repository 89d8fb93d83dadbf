"""`events --stats` in runc's shape (libcontainer/cgroups Stats -> runc types.Stats JSON). Go's
`omitempty` drops zero numbers and empty lists; structs are always present. Only the `events`
command imports this module."""
import os

from runtime.cgroups import files
from runtime.cgroups import convert as C


def _omit(d: dict, keys) -> dict:
    for k in keys:
        if k in d and not d[k]:
            del d[k]
    return d


def _cpu_shape(total=0, percpu=None, pk=None, pu=None, kernel=0, user=0, periods=0, thr=0, thr_time=0):
    usage = _omit({"total": total, "percpu": percpu or [], "percpu_kernel": pk or [], "percpu_user": pu or [],
                   "kernel": kernel, "user": user}, ("total", "percpu", "percpu_kernel", "percpu_user"))
    throttling = _omit({"periods": periods, "throttledPeriods": thr, "throttledTime": thr_time},
                       ("periods", "throttledPeriods", "throttledTime"))
    return {"usage": usage, "throttling": throttling}


def _entry(limit=0, usage=0, mx=0, failcnt=0) -> dict:
    return _omit({"limit": limit, "usage": usage, "max": mx, "failcnt": failcnt}, ("usage", "max"))


def _ints(s) -> list:
    out = []
    for x in (s or "").split():
        try:
            out.append(int(x))
        except ValueError:
            pass
    return out


# -- v1 -----------------------------------------------------------------------------------------------
def v1_cpu(cpuacct: str | None, cpu: str | None) -> dict:
    total, percpu, pk, pu, kernel, user = 0, [], [], [], 0, 0
    if cpuacct:
        total = files.read_int(cpuacct + "/cpuacct.usage", 0)
        percpu = _ints(files.read_or(cpuacct + "/cpuacct.usage_percpu"))
        all_ = files.read_or(cpuacct + "/cpuacct.usage_all") or ""
        for line in all_.splitlines()[1:]:  # "cpu user system"
            f = line.split()
            if len(f) == 3:
                pu.append(int(f[1]))
                pk.append(int(f[2]))
        st = files.read_kv(cpuacct + "/cpuacct.stat")  # USER_HZ ticks
        hz = os.sysconf("SC_CLK_TCK") or 100
        user = st.get("user", 0) * 1_000_000_000 // hz
        kernel = st.get("system", 0) * 1_000_000_000 // hz
    periods = thr = thr_time = 0
    if cpu:
        st = files.read_kv(cpu + "/cpu.stat")
        periods, thr, thr_time = st.get("nr_periods", 0), st.get("nr_throttled", 0), st.get("throttled_time", 0)
    return _cpu_shape(total, percpu, pk, pu, kernel, user, periods, thr, thr_time)


# The v1-only cpuset flags: runc's stats type always carries them (zero on cgroup v2, which has none).
CPUSET_FLAGS = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level")


def v1_cpuset(p: str | None) -> dict:
    if not p:
        return {}
    out = {"cpus": C.parse_cpu_list(files.read_or(p + "/cpuset.cpus", "")),
           "mems": C.parse_cpu_list(files.read_or(p + "/cpuset.mems", ""))}
    for k in CPUSET_FLAGS:
        out[k] = files.read_int(p + "/cpuset." + k, 0)
    return _omit(out, ("cpus", "mems"))


def _v1_mem_entry(p: str, prefix: str) -> dict:
    base = p + "/memory." + (prefix + "." if prefix else "")
    return _entry(files.read_int(base + "limit_in_bytes", 0), files.read_int(base + "usage_in_bytes", 0),
                  files.read_int(base + "max_usage_in_bytes", 0), files.read_int(base + "failcnt", 0))


def v1_memory(p: str | None) -> dict:
    if not p:
        return {"usage": _entry(), "swap": _entry(), "kernel": _entry(), "kernelTCP": _entry()}
    raw = files.read_kv(p + "/memory.stat")
    out = {"cache": raw.get("cache", 0), "usage": _v1_mem_entry(p, ""), "swap": _v1_mem_entry(p, "memsw"),
           "kernel": _v1_mem_entry(p, "kmem"), "kernelTCP": _v1_mem_entry(p, "kmem.tcp"), "raw": raw}
    return _omit(out, ("cache", "raw"))


def v1_pids(p: str | None) -> dict:
    if not p:
        return {}
    cur = files.read_int(p + "/pids.current", 0)
    mx = files.read_or(p + "/pids.max", "max")
    limit = 0 if mx == "max" else int(mx)
    return _omit({"current": cur, "limit": limit}, ("current", "limit"))


def _blkio_file(path: str) -> list | None:
    s = files.read_or(path)
    if s is None:
        return None
    out = []
    for line in s.splitlines():
        f = line.split()
        if len(f) != 3:
            continue  # the trailing "Total N"
        major, _, minor = f[0].partition(":")
        try:
            e = {"major": int(major), "minor": int(minor), "op": f[1], "value": int(f[2])}
        except ValueError:
            continue
        out.append(_omit(e, ("major", "minor", "op", "value")))
    return out


def v1_blkio(p: str | None) -> dict:
    """First family whose files all exist, in runc's order: BFQ, CFQ, throttle (recursive)."""
    if not p:
        return {}
    for prefix in ("blkio.bfq.", "blkio.", "blkio.throttle."):
        sb = _blkio_file(p + "/" + prefix + "io_service_bytes_recursive")
        sv = _blkio_file(p + "/" + prefix + "io_serviced_recursive")
        if sb is None or sv is None:
            continue
        return _omit({"ioServiceBytesRecursive": sb, "ioServicedRecursive": sv},
                     ("ioServiceBytesRecursive", "ioServicedRecursive"))
    return {}


def v1_hugetlb(p: str | None) -> dict:
    if not p:
        return {}
    out = {}
    for size in C.hugepage_sizes():
        base = "%s/hugetlb.%s." % (p, size)
        out[size] = _omit({"usage": files.read_int(base + "usage_in_bytes", 0),
                           "max": files.read_int(base + "max_usage_in_bytes", 0),
                           "failcnt": files.read_int(base + "failcnt", 0)}, ("usage", "max"))
    return out


# -- v2 -----------------------------------------------------------------------------------------------
def v2_cpu(p: str) -> dict:
    st = files.read_kv(p + "/cpu.stat")
    return _cpu_shape(st.get("usage_usec", 0) * 1000, None, None, None, st.get("system_usec", 0) * 1000,
                      st.get("user_usec", 0) * 1000, st.get("nr_periods", 0), st.get("nr_throttled", 0),
                      st.get("throttled_usec", 0) * 1000)


def v2_cpuset(p: str) -> dict:
    """The effective cpus and mems (runc 1.1 reads none on v2: see the conformance case events-stats),
    and the v1-only flags as zeros, as runc's stats always have them."""
    out = {"cpus": C.parse_cpu_list(files.read_or(p + "/cpuset.cpus.effective", "")),
           "mems": C.parse_cpu_list(files.read_or(p + "/cpuset.mems.effective", ""))}
    out.update((k, 0) for k in CPUSET_FLAGS)
    return _omit(out, ("cpus", "mems"))


def v2_memory(p: str) -> dict:
    raw = files.read_kv(p + "/memory.stat")
    usage = files.read_int(p + "/memory.current", 0)
    limit = files.read_int(p + "/memory.max", C.MAX_UINT64)
    peak = files.read_int(p + "/memory.peak", 0)
    out = {"cache": raw.get("file", 0), "usage": _entry(limit, usage, peak), "raw": raw}
    swap_cur = files.read_int(p + "/memory.swap.current")
    if swap_cur is not None:
        # v1 reported mem+swap; runc keeps that meaning on v2.
        swap_max = files.read_int(p + "/memory.swap.max", C.MAX_UINT64)
        if swap_max != C.MAX_UINT64 and limit != C.MAX_UINT64:
            swap_max += limit
        out["swap"] = _entry(swap_max, swap_cur + usage)
    else:
        out["swap"] = _entry()
    out["kernel"] = _entry()
    out["kernelTCP"] = _entry()
    return _omit(out, ("cache", "raw"))


def v2_pids(p: str, count_procs) -> dict:
    cur = files.read_int(p + "/pids.current")
    if cur is None:
        cur = len(count_procs())  # pids controller not enabled here: count, as runc does
        limit = 0
    else:
        limit = files.read_int(p + "/pids.max", 0)
        if limit == C.MAX_UINT64:
            limit = 0
    return _omit({"current": cur, "limit": limit}, ("current", "limit"))


def v2_io(p: str) -> dict:
    s = files.read_or(p + "/io.stat")
    if not s:
        return {}
    sb, sv = [], []
    ops = {"rbytes": (sb, "Read"), "wbytes": (sb, "Write"), "rios": (sv, "Read"), "wios": (sv, "Write")}
    for line in s.splitlines():
        f = line.split()
        if not f:
            continue
        major, _, minor = f[0].partition(":")
        for item in f[1:]:
            k, _, v = item.partition("=")
            if k in ops:
                table, op = ops[k]
                try:
                    e = {"major": int(major), "minor": int(minor), "op": op, "value": int(v)}
                except ValueError:
                    continue
                table.append(_omit(e, ("major", "minor", "op", "value")))
    return _omit({"ioServiceBytesRecursive": sb, "ioServicedRecursive": sv},
                 ("ioServiceBytesRecursive", "ioServicedRecursive"))


def v2_hugetlb(p: str) -> dict:
    out = {}
    for size in C.hugepage_sizes():
        base = "%s/hugetlb.%s." % (p, size)
        cur = files.read_int(base + "current")
        if cur is None:
            continue
        out[size] = _omit({"usage": cur, "failcnt": files.read_kv(base + "events").get("max", 0)}, ("usage",))
    return out
