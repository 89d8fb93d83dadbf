"""Where and how the process runs: `process.scheduler` (sched_setattr), `process.ioPriority` (ioprio_set),
`linux.memoryPolicy` (set_mempolicy) and, for exec, `process.execCPUAffinity` (sched_setaffinity).

Child-side stages, applied as runc 1.3+ applies them: before the identity switch (a realtime policy or a
raised I/O class needs the runtime's privileges), inherited through execve. Every error names its field."""
from __future__ import annotations

import os
import struct

from runtime import linux as L
from runtime.errors import ConfigError, PyrunError

POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4, "SCHED_IDLE": 5,
            "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4,
              "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14, "MPOL_F_NUMA_BALANCING": 1 << 13}
_IOPRIO_WHO_PROCESS = 1


def parse_list(text: str, field: str) -> list[int]:
    """A cpuset-style list ("0-3,7") as numbers."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise ConfigError("%s: %r is not a list such as 0-3,7" % (field, text)) from None
        if b < a:
            raise ConfigError("%s: %r: range %s runs backwards" % (field, text, part))
        out.extend(range(a, b + 1))
    if not out:
        raise ConfigError("%s: %r names nothing" % (field, text))
    return out


def sched_attr(s: dict) -> bytes:
    """struct sched_attr (SCHED_ATTR_SIZE_VER0, 48 bytes) for `process.scheduler`."""
    policy = POLICIES[s["policy"]]
    flags = 0
    for f in s.get("flags") or ():
        flags |= SCHED_FLAGS[f]
    nice = s.get("nice", 0)
    if not -20 <= nice <= 19:
        raise ConfigError("process.scheduler.nice: %d is not between -20 and 19" % nice)
    return struct.pack("=IIQiIQQQ", 48, policy, flags, nice, s.get("priority", 0), s.get("runtime", 0),
                       s.get("deadline", 0), s.get("period", 0))


def check(cfg) -> None:
    """What can be checked before anything starts (create)."""
    if cfg.process is not None:
        check_process(cfg.process)
    mp = (cfg.raw.get("linux") or {}).get("memoryPolicy")
    if mp is not None and mp.get("nodes"):
        parse_list(mp["nodes"], "linux.memoryPolicy.nodes")


def check_process(p) -> None:
    """The process's own fields (create, and exec before it starts anything)."""
    if p.scheduler is not None:
        sched_attr(p.scheduler)
    for k in ("initial", "final"):
        if p.exec_cpu_affinity and p.exec_cpu_affinity.get(k):
            parse_list(p.exec_cpu_affinity[k], "process.execCPUAffinity." + k)


def apply(proc, memory_policy=None) -> None:
    """In the child, before the identity switch: scheduler, I/O priority, memory policy."""
    if proc.scheduler is not None:
        attr = bytearray(sched_attr(proc.scheduler))
        try:
            L.sched_setattr(attr)
        except OSError as e:
            raise PyrunError("process.scheduler (%s): sched_setattr: %s" % (proc.scheduler["policy"], e.strerror)) \
                from None
    if proc.io_priority is not None:
        cls = IOPRIO_CLASSES[proc.io_priority["class"]]
        try:
            L.ioprio_set(_IOPRIO_WHO_PROCESS, 0, cls << 13 | proc.io_priority.get("priority", 0))
        except OSError as e:
            raise PyrunError("process.ioPriority (%s): ioprio_set: %s" % (proc.io_priority["class"], e.strerror)) \
                from None
    if memory_policy is not None:
        mode = MPOL_MODES[memory_policy["mode"]]
        for f in memory_policy.get("flags") or ():
            mode |= MPOL_FLAGS[f]
        nodes = parse_list(memory_policy["nodes"], "linux.memoryPolicy.nodes") if memory_policy.get("nodes") else []
        try:
            L.set_mempolicy(mode, nodes)
        except OSError as e:
            raise PyrunError("linux.memoryPolicy (%s, nodes %r): set_mempolicy: %s" % (
                memory_policy["mode"], memory_policy.get("nodes", ""), e.strerror)) from None


def set_affinity(proc, which: str) -> None:
    """`process.execCPUAffinity.initial` (the joining process, before it enters the container's cgroup)
    or `.final` (the process itself, right before execve)."""
    aff = proc.exec_cpu_affinity or {}
    if not aff.get(which):
        return
    cpus = parse_list(aff[which], "process.execCPUAffinity." + which)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as e:
        raise PyrunError("process.execCPUAffinity.%s %r: %s" % (which, aff[which], e.strerror)) from None
