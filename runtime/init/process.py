"""The last stage of an init (or an exec'd process): rlimits, identity, capabilities, no_new_privs,
then execve. Checks that can fail early (the executable, rlimits, oom_score_adj) run before the container
is reported created, so `create` fails instead of a later `start`."""
import _stat as stat  # the C module stat re-exports: the same S_IS* functions, without stat.py

from runtime import lightos as os
from runtime import linux as L
from runtime.errors import ConfigError, PyrunError
from runtime.init import capabilities as caps
from runtime.linux.syscall import REAL, Syscall
from runtime.spec.checks import check_user

_RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


def lookup_executable(name: str, env: list[str], sc: Syscall = REAL) -> str:
    """exec.LookPath on the container's PATH (from process.env), with runc's error texts."""
    if "/" in name:
        _check_exec(name, name, sc)
        return name
    path = ""
    for e in env:
        if e.startswith("PATH="):
            path = e[5:]
    for d in path.split(":"):
        cand = os.path.join(d or ".", name)
        try:
            st = sc.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise PyrunError('exec: "%s": executable file not found in $PATH' % name)


def _check_exec(name: str, path: str, sc: Syscall) -> None:
    try:
        st = sc.stat(path)
    except OSError as e:
        raise PyrunError('exec: "%s": stat %s: %s' % (name, path, os.strerror(e.errno).lower())) from None
    if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
        raise PyrunError('exec: "%s": permission denied' % name)


def set_rlimits(rlimits, sc: Syscall = REAL) -> None:
    for r in rlimits:
        n = _RLIMITS.get(r.type)
        if n is None:
            raise ConfigError("process.rlimits: unknown rlimit %r" % r.type)
        # a value at or above 2**64 - 1 is no limit (the kernel's RLIM_INFINITY is that value)
        soft, hard = min(r.soft, L.RLIM_INFINITY), min(r.hard, L.RLIM_INFINITY)
        try:
            sc.setrlimit(n, (soft, hard))
        except (OSError, ValueError) as e:
            raise PyrunError("error setting rlimit type %d: %s" % (n, getattr(e, "strerror", None) or e)) from None


def set_oom_score_adj(value, sc: Syscall = REAL) -> None:
    if value is None:
        return
    try:
        fd = sc.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
        try:
            sc.write(fd, str(value).encode())
        finally:
            sc.close(fd)
    except OSError as e:
        hint = " (lowering it needs CAP_SYS_RESOURCE, which a rootless container lacks)" if e.errno == 13 else ""
        raise PyrunError("process.oomScoreAdj: setting oom_score_adj to %s: %s%s" % (value, e.strerror, hint)) from None


def drop_bounding(bounding: int, sc: Syscall = REAL) -> None:
    for n in range(caps.last_cap() + 1):
        if not bounding & (1 << n):
            sc.prctl(L.PR_CAPBSET_DROP, n)


def switch_user(user, in_new_userns_without_setgroups: bool = False, sc: Syscall = REAL) -> None:
    """setgroups, then gid, then uid; KEEPCAPS so the permitted set survives leaving uid 0."""
    check_user(user)  # again here, last line of defence: -1 would leave us root
    sc.prctl(L.PR_SET_KEEPCAPS, 1)
    if not in_new_userns_without_setgroups:
        sc.setgroups(user.additional_gids)
    elif user.additional_gids:
        # A user namespace whose setgroups is "deny" (a rootless single-gid mapping): the groups cannot be
        # set, and running without them would hand the process other rights than asked for.
        raise PyrunError("process.user.additionalGids: setgroups is denied in the container's user namespace "
                         "(only one gid is mapped); map a gid range through newgidmap to set groups")
    sc.setresgid(user.gid, user.gid, user.gid)
    sc.setresuid(user.uid, user.uid, user.uid)
    sc.prctl(L.PR_SET_KEEPCAPS, 0)


def apply_capabilities(c: dict, warn=None, sc: Syscall = REAL) -> None:
    eff, perm, inh = (caps.mask(c[k], warn) for k in ("effective", "permitted", "inheritable"))
    try:
        sc.capset(eff, perm, inh)
    except OSError as e:
        raise PyrunError("setting capabilities: %s" % e.strerror) from None
    if c.get("ambient"):
        # As runc: an ambient capability that is not both permitted and inheritable is skipped (the kernel
        # refuses it), which runc's own default spec relies on (ambient set, inheritable empty).
        sc.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_CLEAR_ALL)
        want = caps.mask(c["ambient"], warn) & perm & inh
        for n in range(caps.last_cap() + 1):
            if want & (1 << n):
                sc.prctl(L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_RAISE, n)


def mark_fds_cloexec(keep_below: int, sc: Syscall = REAL) -> None:
    """Nothing of ours leaks into the container: every fd at or above 3+preserve-fds closes on exec.
    close_range needs no /proc (which, in the container, may be the image's own files)."""
    sc.close_range(keep_below, cloexec=True)


def close_fds_except(keep, sc: Syscall = REAL) -> None:
    """A freshly cloned child holds copies of all the parent's fds, among them the container directory's
    lock (a flock lasts while any copy is open) and the --log file. Keep only what this child uses."""
    first = 3
    for fd in sorted(set(k for k in keep if k >= 3)):
        if fd > first:
            sc.close_range(first, fd - 1)
        first = fd + 1
    sc.close_range(first)


def reset_signals(sc: Syscall = REAL) -> None:
    """Python ignores SIGPIPE and SIGXFSZ at start-up, and ignored signals survive execve: undo that so
    the container's process starts with default dispositions, as it would under runc."""
    import _signal

    for s in (_signal.SIGPIPE, _signal.SIGXFSZ):
        sc.signal(s, _signal.SIG_DFL)


def drop_privileges(proc, seccomp_program=None, warn=None, userns_setgroups=True, listener=None,
                    sc: Syscall = REAL) -> dict:
    """Take the process's identity, cwd, capabilities, no_new_privs and seccomp filter, in runc's order;
    returns the environment to exec with. Runs before the init waits for `start` (and right before an
    exec'd process starts), so every error here fails `create`, and nothing in the container ever meets
    a privileged init. `listener(fd)` takes a notifying filter's listener fd (for the seccomp agent).

    As runc, the init's filter is in place before it waits for `start`: startContainer hooks, which the
    init runs after that wait, run under it (and as the process's user)."""
    c = proc.capabilities
    if c is None:  # as runc: no capabilities object means none at all, not the runtime's own
        c = {k: [] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
    env = _env_dict(proc.env)
    if not env.get("HOME"):  # as runc: HOME from the container's /etc/passwd, else "/"
        env["HOME"] = _home(proc.user.uid, sc)
    if seccomp_program is not None and not proc.no_new_privileges:
        # Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we still have it.
        from runtime.seccomp import install

        _hand_over(install(seccomp_program, False), listener)
    fix_stdio_permissions(proc.user.uid, sc)
    drop_bounding(caps.mask(c["bounding"], warn), sc)
    # As runc: cwd first as root (a directory the runtime may enter but the user cannot), again as the
    # user if root was refused.
    in_cwd = _chdir(proc.cwd, True, sc)
    switch_user(proc.user, not userns_setgroups, sc)
    sc.umask(proc.user.umask if proc.user.umask is not None else 0o022)
    if not in_cwd:
        _chdir(proc.cwd, False, sc)
    _check_cwd(proc.cwd, sc)
    apply_capabilities(c, warn, sc)
    if proc.no_new_privileges:
        sc.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp_program is not None and proc.no_new_privileges:
        # As late as possible, so the filter sees as few of our own syscalls as it can.
        from runtime.seccomp import install

        _hand_over(install(seccomp_program, True), listener)
    return env


def _hand_over(fd, listener) -> None:
    if fd is not None:
        listener(fd)


def fix_stdio_permissions(uid: int, sc: Syscall = REAL) -> None:
    """As runc (fixStdioPermissions): stdin, stdout and stderr change owner to the process's uid before it
    switches to it (the group is left to what the devpts mount or the pipe has), so that a terminal, or
    /dev/stdout reopened through /proc, is the user's own. /dev/null is left alone, and so is an fd whose
    owner is not ours to change (EPERM, EINVAL: not mapped in a user namespace; EROFS)."""
    try:
        null = sc.stat("/dev/null").st_rdev
    except OSError:
        null = None
    for fd in (0, 1, 2):
        try:
            st = sc.fstat(fd)
        except OSError:
            continue  # a closed stdio stays closed
        if st.st_uid == uid or (null is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == null):
            continue
        try:
            sc.fchown(fd, uid, st.st_gid)
        except OSError as e:
            if e.errno not in (1, 22, 30):  # EPERM, EINVAL, EROFS
                raise PyrunError("changing the owner of fd %d to uid %d: %s" % (fd, uid, e.strerror)) from None


def _chdir(cwd: str, permission_ok: bool, sc: Syscall) -> bool:
    try:
        sc.chdir(cwd)
        return True
    except PermissionError:
        if permission_ok:
            return False
        raise PyrunError("chdir to cwd (%r) set in config.json failed: permission denied" % cwd) from None
    except OSError as e:
        raise PyrunError("chdir to cwd (%r) set in config.json failed: %s" % (cwd, e.strerror)) from None


def _check_cwd(cwd: str, sc: Syscall) -> None:
    """A cwd reached through a descriptor of the host (CVE-2024-21626: /proc/self/fd/N/..) lies outside
    the container's root, and the kernel says so: getcwd answers "(unreachable)" or fails."""
    try:
        where = sc.getcwd()
    except OSError:
        where = "(unreachable)"
    if not where.startswith("/"):
        raise PyrunError("process.cwd %r: the working directory is outside the container's root: possible "
                         "container breakout, refused" % cwd)


def exec_process(proc, executable: str, env: dict, preserve_fds: int, sc: Syscall = REAL) -> None:
    """Replace ourselves with the process (identity and privileges already taken). Never returns."""
    mark_fds_cloexec(3 + preserve_fds, sc)
    reset_signals(sc)
    try:
        sc.execve(executable, proc.args, env)
    except OSError as e:
        raise PyrunError('exec: "%s": %s' % (proc.args[0], e.strerror)) from None


def finalize_and_exec(proc, executable: str, preserve_fds: int, seccomp_program=None, warn=None,
                      userns_setgroups=True, listener=None, sc: Syscall = REAL) -> None:
    """An exec'd process: nothing waits between dropping privileges and execve."""
    env = drop_privileges(proc, seccomp_program, warn, userns_setgroups, listener, sc)
    exec_process(proc, executable, env, preserve_fds, sc)


def _home(uid: int, sc: Syscall) -> str:
    try:
        fd = sc.open("/etc/passwd", os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while True:
                b = sc.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)
        finally:
            sc.close(fd)
    except OSError:
        return "/"
    for line in b"".join(chunks).split(b"\n"):
        fields = line.split(b":")
        if len(fields) >= 6 and fields[2] == b"%d" % uid:
            return fields[5].decode(errors="surrogateescape") or "/"
    return "/"


def _env_dict(env: list[str]) -> dict:
    out = {}
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return out
