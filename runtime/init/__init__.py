"""Starting a container's init: the parent half (`spawn`) and the child half (`container_init`), in
explicit stages over a sync channel (its messages: runtime/init/sync.py; the clone around both halves,
shared with exec: runtime/init/clone.py).

    parent                                   child (the init, born by clone in its namespaces)
    clone(flags) ---------------------------> wait for SETUP
    [slow path: intermediate joins namespace paths, unshares, forks the init, reports its pid]
    write uid/gid maps
    [mount sources: a helper in the init's mount namespace opens bind sources (user namespace) and
     id-mapped mounts detached, sends them over a socket (runtime/mountsrc.py)]
    join cgroup, SETUP ------------------->
                                             unshare cgroup/time ns, become root of the user ns
                                             mounts, devices
                              <------------- HOOKS (only if there are prestart/createRuntime hooks)
    run prestart + createRuntime, HOOKS_DONE >
                                             createContainer hooks, pivot_root, hostname, sysctl,
                                             read-only and masked paths, executable lookup, rlimits
                              <------------- READY
    write state, pid file; exit              block opening the exec fifo until `start`
                                             identity, capabilities, no_new_privs, seccomp, execve
"""

from runtime import execfifo, linux as L
from runtime import lightos as os
from runtime.errors import PyrunError
from runtime.init.namespaces import NamespacePlan, join, unshare_late, write_id_maps, become_root_in_userns
from runtime.init import clone
from runtime.init import sync as M
from runtime.init.sync import Channel, ChildError
from runtime.linux.syscall import REAL
from runtime.state import in_user_namespace


class InitOptions:
    debug = None  # callable(msg) writing a debug log line, when --debug
    keyring = None  # the session keyring's name ("_ses.<id>", as runc), None for --no-new-keyring
    stdio = None  # (stdin, stdout, stderr) fds the child dup2()s onto 0, 1, 2; None: pyrun's own
    loopback = False  # `lo` up from inside (rootless: the parent cannot setns into a netns the init's user ns owns)
    # callable(pid): the parent's work that needs only the init's pid and namespaces (its record, the
    # network), done once SETUP is sent, while the init builds the container, instead of after READY
    while_building = None

    def __init__(self, state_dir: str, preserve_fds: int = 0, no_pivot: bool = False, console_socket=None,
                 hook_state=None, warn=None, console=None):
        self.state_dir = state_dir
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.console_socket = console_socket
        self.hook_state = hook_state  # callable(status, pid) -> dict
        self.warn = warn
        self.console = console  # runtime.console.Console when process.terminal


def spawn(cfg, opts: InitOptions, cgroup, sc=REAL) -> int:
    """Parent half. Returns the init's pid once the init reports READY; on failure the init is killed
    and reaped, and the error is raised as PyrunError. The clone itself: runtime/init/clone.py."""
    plan = NamespacePlan(cfg)
    sources = _mount_sources(cfg, plan)
    join_fds = plan.open_joins()
    src_socks = None
    if sources:
        from runtime import mountsrc

        src_socks = mountsrc.socketpair()
    state_fd = os.open(opts.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    fast = not join_fds
    agent = None
    if cfg.linux.seccomp is not None:
        from runtime.seccomp import AgentChannel, needs_agent

        if needs_agent(cfg.linux.seccomp):
            agent = AgentChannel()

    def keep():  # child: what the init goes on using
        fds = [state_fd] + [fd for _, fd in join_fds] + list(range(3, 3 + opts.preserve_fds))
        if src_socks is not None:
            src_socks[0].close()
            fds.append(src_socks[1].fileno())
        return fds

    def body(child):
        if not fast:
            _intermediate(plan, join_fds, child, sc)
        container_init(cfg, opts, plan, child, state_fd, agent, (src_socks[1], len(sources)) if sources else None,
                        sc)

    def after_clone():  # parent: what only the child needed
        if src_socks is not None:
            src_socks[1].close()
        os.close(state_fd)
        for _, fd in join_fds:
            os.close(fd)

    def protocol(parent, spawned):
        pid = init = spawned.pid
        if opts.debug:
            opts.debug("init: cloned pid %d into new namespaces %s%s" % (
                pid, ",".join(sorted(plan.new)) or "none", "" if fast else " (joining namespace paths first)"))
        if fast:
            if plan.new_user:
                write_id_maps(pid, cfg, sc)
        else:
            while True:  # the intermediate's half: _intermediate
                verb, payload = parent.recv()
                if verb == M.USERMAP:
                    write_id_maps(pid, cfg, sc)
                    parent.send(M.MAPPED)
                elif verb == M.PID:
                    init = int(payload)
                    spawned.made(init)
                    break
                elif verb == M.ERROR:
                    raise ChildError(payload)
            spawned.wait(pid)
        if sources:
            from runtime import mountsrc

            mountsrc.send(sources, init, src_socks[0])
        if cgroup is not None and spawned.entry is None:
            cgroup.add(init)
        parent.send(M.SETUP, str(init))  # the init's pid as the host sees it, for hooks' state
        if opts.while_building is not None:
            opts.while_building(init)
        while True:  # the init's half: container_init
            verb, payload = parent.recv()
            if verb == M.HOOKS:
                from runtime.hooks import run_hooks

                st = opts.hook_state("creating", init)
                run_hooks(cfg.hooks["prestart"], st, "prestart", debug=opts.debug)
                run_hooks(cfg.hooks["createRuntime"], st, "createRuntime", debug=opts.debug)
                parent.send(M.HOOKS_DONE)
            elif verb == M.DEBUG:  # the init's own --debug lines, logged here (it has no log of its own)
                opts.debug("init: " + payload)
            elif verb == M.SECCOMP:  # as runc: the init's state, status creating, with the listener
                clone.seccomp_forward(agent, parent, cfg.linux.seccomp, init, opts.hook_state("creating", init))
                if opts.debug:
                    opts.debug("seccomp: listener sent to the agent at %s" % cfg.linux.seccomp["listenerPath"])
            else:
                break
        if verb == M.ERROR:
            raise ChildError(payload)
        if verb != M.READY:
            raise ChildError("protocol error: unexpected %s" % verb)
        return init

    def finish():
        if src_socks is not None:
            src_socks[0].close()

    # The init's code imported here, before the clone: in the clone every import also pays copy-on-write
    # faults on the pages it touches (and, sealed, extension modules' loads through the overlays); the
    # init has them all before pivot_root as it must.
    _preload(cfg)
    import runtime.rootfs  # noqa: F401

    return clone.spawn(plan.clone_flags if fast else 0, cgroup.open_entry() if cgroup is not None else None,
                       keep, body, protocol, stdio=opts.stdio, console=opts.console, agent=agent,
                       after_clone=after_clone, died=lambda status: _died_early(status, cfg), finish=finish, sc=sc)


def _mount_sources(cfg, plan: NamespacePlan) -> list:
    """The mounts whose sources the runtime opens for the init (runtime/mountsrc.py), checked; imported
    only for configs that have any."""
    if os.geteuid() != 0:
        # Rootless, the runtime is the very user the container's root maps to: it reaches no source the
        # init cannot (the init opens them itself), and id-mapped mounts are refused at create.
        return []
    in_userns = plan.new_user or any(t == "user" for t, _ in plan.join_paths)
    if not any(m.uid_mappings or m.gid_mappings or "idmap" in m.options or "ridmap" in m.options
               or (in_userns and (m.type == "bind" or "bind" in m.options or "rbind" in m.options))
               for m in cfg.mounts):
        return []
    from runtime import mountsrc

    return mountsrc.plan(cfg, in_userns)


def _died_early(status, cfg) -> str:
    """Why the init went away before READY, as far as its wait status tells."""
    if status is None or not os.WIFSIGNALED(status):
        return "container init exited before it was ready"
    sig = os.WTERMSIG(status)
    msg = "container init was killed by signal %d before it was ready" % sig
    memory = (cfg.linux.resources or {}).get("memory") or {}
    if sig == 9 and memory.get("limit"):
        msg += " (out of memory? linux.resources.memory.limit is %d bytes)" % memory["limit"]
    return msg


def _intermediate(plan: NamespacePlan, join_fds, chan: Channel, sc=REAL) -> None:
    """Slow path (namespace paths to join): join them, create the rest, then fork the init so it is
    inside the pid namespace (joined or new). This process reports the init's pid and exits."""
    join(join_fds, sc)
    if plan.clone_flags:
        L.unshare(plan.clone_flags)
        if plan.new_user:
            chan.send(M.USERMAP)
            chan.expect(M.MAPPED)
    pid = sc.clone(0)
    if pid != 0:
        chan.send(M.PID, str(pid))
        os.exit_now(0)


def container_init(cfg, opts: InitOptions, plan: NamespacePlan, chan: Channel, state_fd: int,
                    agent=None, sources=None, sc=REAL) -> None:
    """Child half; returns only by raising (the final step is execve).

    What a process in the container could reach through this init is kept to nothing: it is not
    dumpable from the start, holds no directory of the host once it pivots (the state directory is
    dropped for an O_PATH fd of the exec fifo, the runtime's own code fds are closed before pivot_root),
    reads kernel facts (cap_last_cap, setgroups) before the rootfs can fake them, and has dropped to the
    process's identity, capabilities and seccomp filter before it reports ready and waits for `start`, as
    runc's init does (so an `exec` into a created container meets an unprivileged process)."""
    from runtime.init import capabilities as caps
    from runtime.init import process as P
    from runtime.rootfs import RootfsBuilder

    # Non-dumpable makes /proc/<init>/* the host root's: a runtime without root could then no longer open
    # the uid_map and gid_map it writes for an init born in a new user namespace. So such an init stays
    # dumpable until SETUP, which the parent sends once the maps are written (as runc's nsexec does);
    # until then nothing of the container runs, and nothing else shares its new namespaces.
    maps_pending = plan.new_user and not plan.join_paths
    if not maps_pending:
        sc.prctl(L.PR_SET_DUMPABLE, 0)
    _die_on_signals()
    host_pid = int(chan.expect(M.SETUP))
    if maps_pending:
        sc.prctl(L.PR_SET_DUMPABLE, 0)
    _preload(cfg)
    caps.last_cap()  # read (and kept) now: after pivot_root /proc may be the image's own files
    # Also when pyrun itself runs in a user namespace (rootless podman's): no device node can be made there.
    in_userns = plan.new_user or any(t == "user" for t, _ in plan.join_paths) or in_user_namespace()
    # Before taking the user namespace's root: from then on the init's /proc files belong to the host's
    # root, out of its reach (timens_offsets), as is the 0700 state directory.
    unshare_late(plan, cfg, sc)
    fifo = execfifo.hold(state_fd)
    os.close(state_fd)
    P.set_oom_score_adj(cfg.process.oom_score_adj, sc)
    if plan.new_user:
        become_root_in_userns(cfg, sc)
    if opts.keyring:
        _join_session_keyring(opts.keyring)
    if opts.loopback:
        from runtime.network import loopback_up_here

        loopback_up_here()
    setgroups_ok = not plan.new_user or _setgroups_allowed()
    # Without a mount namespace of its own the container is set up in the runtime's, as runc does (its
    # mounts stay there, under the rootfs), and chroots instead of pivoting.
    mount_ns = "mount" in plan.new or any(t == "mount" for t, _ in plan.join_paths)
    src_fds = None
    if sources is not None:
        from runtime import mountsrc

        sock, count = sources
        try:
            src_fds = mountsrc.receive(sock, count)
        finally:
            sock.close()
    rootfs = RootfsBuilder(cfg, in_userns, "cgroup" in plan.new or any(t == "cgroup" for t, _ in plan.join_paths),
                           src_fds, mount_ns, sc=sc)
    rootfs.prepare()
    if opts.debug:
        chan.send(M.DEBUG, "mounts and devices made in the new root %s" % cfg.root_path)
    if cfg.hooks["prestart"] or cfg.hooks["createRuntime"]:
        chan.send(M.HOOKS)
        chan.expect(M.HOOKS_DONE)
    if cfg.hooks["createContainer"]:
        from runtime.hooks import run_hooks

        run_hooks(cfg.hooks["createContainer"], opts.hook_state("creating", host_pid), "createContainer")
    seccomp_program = None
    if cfg.linux.seccomp is not None:
        from runtime.seccomp import compile_filter

        seccomp_program = compile_filter(cfg.linux.seccomp)
    from runtime import sealed

    sealed.close_held()  # the runtime's own code (read-only): not to be reachable from the container either
    rootfs.pivot(opts.no_pivot)
    if opts.debug:
        chan.send(M.DEBUG, "%s done" % ("chroot (no mount namespace)" if not mount_ns else
                                        "chroot (--no-pivot)" if opts.no_pivot else "pivot_root"))
    if opts.console is not None:
        from runtime.console import attach_pty

        attach_pty(opts.console, cfg.process.console_size, dev_console=True, sc=sc)
    else:
        # A session of its own, as runc's init (nsexec) has: the caller's session lies outside the pid
        # namespace, and CRIU refuses to dump a tree whose session leader it cannot see.
        sc.setsid()
    if cfg.hostname is not None:
        sc.sethostname(cfg.hostname)
    if cfg.domainname is not None:
        sc.setdomainname(cfg.domainname)
    if cfg.linux.sysctl:
        _write_sysctls(cfg.linux.sysctl)
    try:  # as runc: a missing cwd is made, before the root goes read-only
        os.makedirs(cfg.process.cwd, 0o755, exist_ok=True)
    except OSError as e:
        raise PyrunError("creating cwd %s: %s" % (cfg.process.cwd, e.strerror)) from None
    rootfs.finish()
    proc = cfg.process
    if os.path.isdir(proc.cwd):
        sc.chdir(proc.cwd)  # a relative args[0] is looked up from the cwd, as runc
    exe = P.lookup_executable(proc.args[0], proc.env, sc)
    sc.chdir("/")
    P.set_rlimits(proc.rlimits, sc)
    from runtime.init import sched

    sched.apply(proc, (cfg.raw.get("linux") or {}).get("memoryPolicy"))
    if opts.debug:
        chan.send(M.DEBUG, "taking the process's identity %d:%d, capabilities%s; then waiting for start to exec %s"
                  % (proc.user.uid, proc.user.gid, ", seccomp filter" if seccomp_program else "", exe))
    env = P.drop_privileges(proc, seccomp_program, opts.warn, setgroups_ok,
                            clone.seccomp_handoff(agent, chan) if agent is not None else None, sc)
    fds = _proc_self_fd()
    chan.send(M.READY)
    chan.close()
    execfifo.wait(fds, fifo)
    if cfg.hooks["startContainer"]:
        from runtime.hooks import run_hooks

        run_hooks(cfg.hooks["startContainer"], opts.hook_state("created", host_pid), "startContainer")
    P.exec_process(proc, exe, env, opts.preserve_fds, sc)


_KEYCTL_JOIN_SESSION_KEYRING, _KEYCTL_SETPERM, _KEYCTL_DESCRIBE = 1, 5, 6


def _join_session_keyring(name: str) -> None:
    """A session keyring of the container's own (as runc): its processes do not share the host's keys,
    nor each other's. Made searchable by its user, as runc does (KEY_USR_SEARCH on top of the kernel's
    default permissions)."""
    try:
        key = L.keyctl(_KEYCTL_JOIN_SESSION_KEYRING, name)
        buf = bytearray(256)
        n = L.keyctl(_KEYCTL_DESCRIBE, key, buf, len(buf))
        perm = int(bytes(buf[:max(0, n - 1)]).decode().split(";")[3], 16)
        L.keyctl(_KEYCTL_SETPERM, key, perm | 0x00080000)
    except OSError as e:
        if e.errno == 38:  # ENOSYS: a kernel without keys (runc goes on too)
            return
        raise PyrunError("creating the session keyring %s: %s (pass --no-new-keyring to do without)"
                         % (name, e.strerror)) from None


def _proc_self_fd() -> int:
    """This process's fd table in the container's /proc, checked to be procfs (so an image cannot plant
    a /proc/self/fd of its own), before READY: a create without a real /proc fails, and says why."""
    try:
        fds = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrunError("/proc/self/fd in the container: %s (is /proc mounted?)" % e.strerror) from None
    if L.fs_type(fds) != L.PROC_SUPER_MAGIC:
        os.close(fds)
        raise PyrunError("/proc/self/fd in the container is not on procfs: refusing to go on")
    return fds


_STAY = (9, 13, 17, 18, 19, 20, 21, 22, 23, 28)  # KILL PIPE CHLD CONT STOP TSTP TTIN TTOU URG WINCH


def _die_on_signals() -> None:
    """As pid 1 of a pid namespace, a signal without a handler is ignored. Until it execs the user's
    process, the init must still die of `kill` (a created container that gets SIGTERM stops, as
    runc's does), so each terminating signal gets a handler that exits."""
    import _signal

    def die(sig, _frame):
        os.exit_now(128 + sig)

    for sig in range(1, 32):
        if sig not in _STAY:
            _signal.signal(sig, die)


def _preload(cfg) -> None:
    """Import now what the stages after pivot_root need: the host's Python library is out of reach then."""
    import runtime.init.process  # noqa: F401
    import runtime.init.sched  # noqa: F401

    if cfg.hooks["startContainer"]:
        import runtime.hooks  # noqa: F401
        import subprocess  # noqa: F401
    if cfg.linux.seccomp is not None:
        import runtime.seccomp  # noqa: F401


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return True


def _write_sysctls(sysctl: dict) -> None:
    """Written through the container's /proc/sys, checked to be procfs: a rootfs without a /proc mount
    (or with files of its own there) must not turn a sysctl into a silent file write."""
    try:
        d = os.open("/proc/sys", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrunError("linux.sysctl: /proc/sys in the container: %s" % e.strerror) from None
    try:
        if L.fs_type(d) != L.PROC_SUPER_MAGIC:
            raise PyrunError("linux.sysctl: /proc/sys in the container is not procfs (is /proc mounted?)")
        for key, value in sysctl.items():
            try:
                fd = L.openat2(d, key.replace(".", "/"), os.O_WRONLY | os.O_TRUNC, 0,
                               L.RESOLVE_BENEATH | L.RESOLVE_NO_SYMLINKS | L.RESOLVE_NO_XDEV)
                try:
                    os.write(fd, value.encode())
                finally:
                    os.close(fd)
            except OSError as e:
                raise PyrunError("linux.sysctl: writing %s=%s: %s" % (key, value, e.strerror)) from None
    finally:
        os.close(d)
