"""Where and how the process runs: `process.scheduler` (sched_setattr), `process.ioPriority` (ioprio_set),
`linux.memoryPolicy` (set_mempolicy) and, for exec, `process.execCPUAffinity` (sched_setaffinity).

Child-side stages, applied as runc 1.3+ applies them: before the identity switch (a realtime policy or a
raised I/O class needs the runtime's privileges), inherited through execve. Every error names its field."""
from runtime import lightos as os
from runtime import linux as L
from runtime.errors import PyrunError
from runtime.spec.checks import parse_list, sched_attr

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4,
              "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14, "MPOL_F_NUMA_BALANCING": 1 << 13}
_IOPRIO_WHO_PROCESS = 1


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
