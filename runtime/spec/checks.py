"""Checks of a process and its config that need nothing but the document: run by create and exec before
anything starts (spec.load, the engine), and again by the child stages that apply the fields
(init.process, init.sched) where a wrong value would do harm. No side effects, no child-side imports."""
import _struct as struct  # the C module struct re-exports (struct.py costs its own import)

from runtime.errors import ConfigError, PyrunError

POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4, "SCHED_IDLE": 5,
            "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}


def check_process(p) -> None:
    """Every document-only check of a process (config.json's, or exec's): args, env, ids, scheduling."""
    if not p.args:
        raise ConfigError("process.args: args must not be empty")
    check_env(p.env)
    check_user(p.user)
    check_process_scheduling(p)


def check_env(env) -> None:
    """runc's rules for process.env: NAME=VALUE, a name, no NUL (checked before anything starts)."""
    for pair in env:
        name, eq, value = pair.partition("=")
        if not eq:
            raise PyrunError("invalid environment variable: %r" % pair)
        if not name:
            raise PyrunError("environment variable name can't be empty: %r" % pair)
        if "\0" in pair:
            raise PyrunError("environment variable can't contain null(\\x00): %r" % pair)


# (uid_t)-1 and (gid_t)-1 mean "leave unchanged" to setresuid/setresgid/setgroups' callers: a process
# asking for uid 4294967295 would keep the runtime's uid 0. No id at or above it is valid (nor below 0).
ID_LIMIT = 0xFFFFFFFF


def check_user(user, where: str = "process.user") -> None:
    """Refuse ids that are not ids (checked at create and exec, before anything starts)."""
    for field, value in (("uid", user.uid), ("gid", user.gid)):
        _check_id(value, "%s.%s" % (where, field))
    for i, g in enumerate(user.additional_gids):
        _check_id(g, "%s.additionalGids[%d]" % (where, i))


def _check_id(value, field: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < ID_LIMIT:
        raise PyrunError("%s: %r is not a valid id (must be 0 to %d)" % (field, value, ID_LIMIT - 1))


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


def check_process_scheduling(p) -> None:
    """The process's scheduler and CPU affinity fields (create, and exec before it starts anything)."""
    if p.scheduler is not None:
        sched_attr(p.scheduler)
    for k in ("initial", "final"):
        if p.exec_cpu_affinity and p.exec_cpu_affinity.get(k):
            parse_list(p.exec_cpu_affinity[k], "process.execCPUAffinity." + k)
