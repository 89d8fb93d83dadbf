"""`exec`: a new process inside a running container. Parent half (`spawn_in`) and child half
(`_intermediate`) side by side, over the sync channel (its messages: runtime/init/sync.py; the clone
around both halves, shared with create: runtime/init/clone.py).

    parent                         intermediate (clone)              process (clone again)
    add intermediate to cgroup
    JOIN ------------------------> not dumpable; setns into every
                                   namespace of the init
                                   clone (pid ns applies to children) -> executable lookup,
                                   report its pid <-----------------     rlimits, identity, caps,
    read until EOF: an ERROR                                           no_new_privs, seccomp, execve
    line means it failed, EOF means execve happened (the channel is close-on-exec)
"""
import errno

from runtime import lightos as os
from runtime import linux as L
from runtime.errors import PyrunError
from runtime.init import clone
from runtime.init.namespaces import join, sort_joins
from runtime.init import sync as M
from runtime.init.sync import Channel, ChannelClosed, ChildError
from runtime.linux.syscall import REAL


def namespace_paths(cfg, init_pid: int) -> list[tuple[str, str]]:
    """Every namespace the container has: its configured path, or the init's own."""
    out = []
    for ns in cfg.linux.namespaces:
        out.append((ns.type, ns.path or "/proc/%d/ns/%s" % (init_pid, L.NAMESPACES[ns.type][1])))
    sort_joins(out)
    return out


def spawn_in(cfg, proc, init_pid: int, cgroup, preserve_fds: int = 0, console=None, warn=None,
             stdio=None, state=None, debug=None, pidfd_sock=None, sc=REAL) -> int:
    """Start `proc` inside the container of `init_pid`; returns its host pid once it has exec'd.
    `state()`: the container's runtime-spec state, for a seccomp agent (SCMP_ACT_NOTIFY). `debug(msg)`:
    --debug lines, the child's included. pidfd_sock: a runtime.pidfd.PidfdSocket, sent the process's pidfd
    by the intermediate (its parent, so the pid cannot have been reaped and reused by then)."""
    fds = []
    try:
        for t, path in namespace_paths(cfg, init_pid):
            fds.append((t, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
    except OSError as e:
        for _, fd in fds:
            os.close(fd)
        raise PyrunError("container is not running: opening its namespaces: %s" % e.strerror) from None
    # Read on the host side, before any join: whether this user namespace lets the process set groups.
    setgroups_ok = _setgroups_allowed(init_pid)
    agent = None
    if cfg.linux.seccomp is not None:
        from runtime.seccomp import AgentChannel, needs_agent

        if needs_agent(cfg.linux.seccomp):
            agent = AgentChannel()

    def before_entry():  # child
        if proc.exec_cpu_affinity:
            from runtime.init import sched

            sched.set_affinity(proc, "initial")  # before it enters the container's cgroup (v1)

    def keep():  # child: the namespaces to join, the fds passed on, the pidfd socket
        return [fd for _, fd in fds] + list(range(3, 3 + preserve_fds)) + (
            [pidfd_sock.fileno()] if pidfd_sock is not None else [])

    def body(child):
        _intermediate(cfg, proc, fds, child, preserve_fds, console, warn, agent, debug is not None, setgroups_ok,
                      pidfd_sock, sc)

    def after_clone():  # parent
        for _, fd in fds:
            os.close(fd)

    def protocol(parent, spawned):
        first = spawned.pid
        pid = 0
        if cgroup is not None and spawned.entry is None:
            try:
                cgroup.add_exec(first, init_pid)
            except PyrunError as e:
                # Rootless, a caller outside the delegated subtree may not move a process in (cgroup2 wants
                # write access to the common ancestor): as runc, the process runs where the caller is.
                if not cgroup.rootless:
                    raise
                if warn is not None:
                    warn("%s: the exec'd process stays in the caller's cgroup (rootless)" % e)
        parent.send(M.JOIN)
        while True:  # the intermediate's half and its child's: _intermediate
            try:
                verb, payload = parent.recv()
            except ChannelClosed:
                break
            if verb == M.PID:
                pid = int(payload)
                spawned.made(pid)
            elif verb == M.DEBUG:
                debug("exec: " + payload)
            elif verb == M.SECCOMP:
                while not pid:  # the intermediate's PID is on its way (the process is waiting for us)
                    try:
                        verb, payload = parent.recv()
                    except ChannelClosed:
                        raise ChildError(_EXITED) from None
                    if verb == M.ERROR:
                        raise ChildError(payload)
                    if verb == M.PID:
                        pid = int(payload)
                        spawned.made(pid)
                    elif verb == M.DEBUG:
                        debug("exec: " + payload)
                # As runc: the exec'd process's pid; the container's state says running, with the init's
                st = state() if state is not None else {}
                clone.seccomp_forward(agent, parent, cfg.linux.seccomp, pid, st)
            elif verb == M.ERROR:
                raise ChildError(payload)
        if not pid:
            raise ChildError(_EXITED)
        spawned.wait(first)  # the intermediate exits once it has reported the pid
        return pid

    # The intermediate's modules imported before the clone, as spawn() does for the init: in the clone
    # every import also pays copy-on-write faults (and, sealed, extension modules' loads through overlays).
    from runtime.init import capabilities, process, sched  # noqa: F401

    return clone.spawn(0, cgroup.open_entry() if cgroup is not None else None, keep, body, protocol, stdio=stdio,
                       before_entry=before_entry, console=console, agent=agent, after_clone=after_clone,
                       died=lambda status: _EXITED, sc=sc)


_EXITED = "the exec'd process exited before it started"


def _setgroups_allowed(init_pid: int) -> bool:
    try:
        with open("/proc/%d/setgroups" % init_pid) as f:
            return f.read().strip() != "deny"
    except OSError:
        return True


def _intermediate(cfg, proc, fds, chan: Channel, preserve_fds: int, console, warn, agent=None,
                  debug=False, setgroups_ok=True, pidfd_sock=None, sc=REAL) -> None:
    # Not dumpable before touching the container: a process inside must not ptrace or read our memory
    # (and the host fds we hold) through /proc while we are half-way in.
    L.prctl(L.PR_SET_DUMPABLE, 0)
    chan.expect(M.JOIN)
    from runtime.init import process as P

    seccomp_program = None
    if cfg.linux.seccomp is not None:
        from runtime.seccomp import compile_filter

        seccomp_program = compile_filter(cfg.linux.seccomp)
    from runtime import sealed
    from runtime.init import capabilities, sched  # noqa: F401  (sched: used once inside, out of reach then)

    capabilities.last_cap()  # read on the host: the container's /proc may be the image's own files
    sealed.close_held()  # nothing of the runtime's own files is reachable once we are inside
    join(fds, sc)
    if debug:
        chan.send(M.DEBUG, "joined the namespaces of the container (%s)" % ",".join(t for t, _ in fds))
    try:
        pid = sc.clone(0)
    except OSError as e:
        if e.errno == errno.EAGAIN:
            raise PyrunError("cannot start the process: fork refused (EAGAIN): the container's pids limit "
                             "(linux.resources.pids.limit) or the host's is reached") from None
        raise
    if pid != 0:
        chan.send(M.PID, str(pid))
        if pidfd_sock is not None:
            from runtime.pidfd import EXEC

            pidfd_sock.send_pid(pid, EXEC)
        os.exit_now(0)
    if pidfd_sock is not None:
        pidfd_sock.close()  # the caller's socket is no business of the container's process
    if os.path.isdir(proc.cwd):
        sc.chdir(proc.cwd)  # a relative args[0] is looked up from the cwd, as runc
    exe = P.lookup_executable(proc.args[0], proc.env, sc)
    sc.chdir("/")
    P.set_rlimits(proc.rlimits, sc)
    P.set_oom_score_adj(proc.oom_score_adj, sc)
    from runtime.init import sched

    sched.apply(proc, (cfg.raw.get("linux") or {}).get("memoryPolicy"))
    if console is not None:
        from runtime.console import attach_pty

        attach_pty(console, proc.console_size, sc=sc)
    sched.set_affinity(proc, "final")
    if debug:
        chan.send(M.DEBUG, "taking the process's identity %d:%d, capabilities%s; exec %s"
                  % (proc.user.uid, proc.user.gid, ", seccomp filter" if seccomp_program else "", exe))
    P.finalize_and_exec(proc, exe, preserve_fds, seccomp_program, warn, userns_setgroups=setgroups_ok,
                        sc=sc, listener=clone.seccomp_handoff(agent, chan) if agent is not None else None)
