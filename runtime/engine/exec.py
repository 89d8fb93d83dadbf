"""exec: another process in a created or running container (runtime.init.join.spawn_in)."""
from runtime.engine.container import Container, write_pid_file
from runtime.errors import PyrunError
from runtime.reap import forward_signals, wait_exit


def configured_process(c: Container, args: list[str], overrides: dict) -> dict:
    """The process exec runs without --process: the container's own (config.json's), running `args`, with
    runc's exec flags on top (as runc: they shape a process built from the config; a --process file is
    taken as it is). The config's terminal is not inherited, only -t gives one.

    overrides (each optional): cwd, env (appended), terminal, noNewPrivileges, apparmorProfile,
    selinuxLabel, uid, gid, additionalGids, capabilities (names added to the process's sets)."""
    proc = dict(c.config().raw.get("process") or {})
    proc["args"] = list(args)
    proc["terminal"] = False
    o = overrides
    if o.get("cwd"):
        proc["cwd"] = o["cwd"]
    if o.get("env"):
        proc["env"] = list(proc.get("env") or ()) + list(o["env"])
    for key in ("terminal", "noNewPrivileges"):
        if o.get(key):
            proc[key] = True
    for key in ("apparmorProfile", "selinuxLabel"):
        if o.get(key):
            proc[key] = o[key]
    user = dict(proc.get("user") or {})
    for key in ("uid", "gid", "additionalGids"):
        if o.get(key) is not None:
            user[key] = o[key]
    proc["user"] = user
    if o.get("capabilities"):
        caps = {k: list(v) for k, v in (proc.get("capabilities") or {}).items() if v is not None}
        # As runc: not inheritable; ambient only when the process has an inheritable set at all.
        kinds = ("bounding", "effective", "permitted") + (("ambient",) if "inheritable" in caps else ())
        for kind in kinds:
            caps[kind] = list(caps.get(kind) or ()) + [n for n in o["capabilities"] if n not in (caps.get(kind) or ())]
        proc["capabilities"] = caps
    return proc


def exec_process(ctx, cid: str, proc_doc: dict | None, detach=False, pid_file=None, console_socket=None,
                 preserve_fds=0, ignore_paused=False, sub_cgroups=None, pidfd_socket=None, args=None,
                 overrides=None) -> int:
    """Run another process in a created or running container; foreground returns its status.
    proc_doc: the process of --process, taken as it is; None: the container's own process with `args`
    and exec's flags (`overrides`, see configured_process). sub_cgroups: `exec --cgroup`, parsed
    (cgroups.parse_exec_cgroups): existing sub-cgroups of the container's to run the process in.
    pidfd_socket: --pidfd-socket's path, sent the process's pidfd."""
    from runtime.spec.model import Process

    c = Container(ctx.root, cid, lock=False)
    if proc_doc is None:
        proc_doc = configured_process(c, args, overrides or {})
    status = c.status
    if status == "stopped":
        raise PyrunError("cannot exec in a stopped container")
    if status == "paused" and not ignore_paused:
        raise PyrunError("cannot exec in a paused container (use --ignore-paused)")
    if status not in ("created", "running", "paused"):
        raise PyrunError("cannot exec in a container in the %s state" % status)
    proc = Process(proc_doc)
    from runtime.spec.load import check_process

    check_process(proc)
    if proc.terminal and not console_socket and detach:
        raise PyrunError("cannot allocate tty if pyrun will detach without setting console socket")
    cgroup = c.cgroup()
    if sub_cgroups:
        if cgroup is None:
            raise PyrunError("--cgroup: container %s has no cgroup" % cid)
        cgroup = cgroup.exec_cgroup(sub_cgroups)
    pidfd_sock = None
    if pidfd_socket:
        from runtime.pidfd import PidfdSocket

        pidfd_sock = PidfdSocket(pidfd_socket)
    try:
        return _exec(ctx, c, proc, cgroup, detach, pid_file, console_socket, preserve_fds, pidfd_sock)
    finally:
        if pidfd_sock is not None:
            pidfd_sock.close()


def _exec(ctx, c, proc, cgroup, detach, pid_file, console_socket, preserve_fds, pidfd_sock) -> int:
    from runtime import linux as L
    from runtime.init.join import spawn_in

    console = None
    if proc.terminal:
        from runtime.console import Console

        console = Console(console_socket)
    pipes = None
    if not detach:
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
        if not proc.terminal:
            from runtime.stdio import Pipes

            pipes = Pipes(3 + preserve_fds)
    try:
        pid = spawn_in(c.config(), proc, c.pid, cgroup, preserve_fds, console, ctx.warn,
                       pipes.child_fds() if pipes is not None else None, lambda: c.hook_state("running", c.pid),
                       ctx.log_debug if ctx.debug else None, pidfd_sock)
    except BaseException:
        if pipes is not None:
            pipes.close()
        raise
    if pipes is not None:
        pipes.after_clone()
    if ctx.debug:
        ctx.log_debug("exec %s: process %s started, pid %d" % (c.id, proc.args[0], pid))
    try:
        if pid_file:
            write_pid_file(pid_file, pid)
        if detach:
            return 0
        forward_signals(pid)
        if console is not None and console.local:
            return console.proxy_until_exit(pid, wait_exit)
        if pipes is not None:
            code = pipes.pump_until_exit(pid, wait_exit)
            pipes.drain(0.2)  # what the process left running in the container may hold them open
            return code
        return wait_exit(pid)
    finally:
        if pipes is not None:
            pipes.close()
