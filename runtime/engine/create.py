"""create: set up everything but the user process and leave the init blocked on the exec fifo."""
import time

from runtime import execfifo, state as S
from runtime import lightos as os
from runtime.engine.container import Container, pid_ns, remove_dir, write_pid_file
from runtime.errors import PyrunError
from runtime.reap import kill_and_reap


def create(ctx, cid: str, bundle: str, pid_file=None, console_socket=None, no_pivot=False,
           preserve_fds=0, foreground=False, no_new_keyring=False, pidfd_socket=None):
    """Set up everything but the user process and leave the init blocked on the exec fifo.
    pidfd_socket: the path of --pidfd-socket, sent the init's pidfd once it is ready."""
    from runtime.spec.load import load_bundle

    S.check_id(cid)
    cfg = load_bundle(bundle)
    if ctx.debug:
        ctx.log_debug("create %s: config %s/config.json loaded and valid" % (cid, cfg.bundle))
    if cfg.process is None:
        raise PyrunError("config.json: process: a process is required to create a container")
    if cfg.process.terminal and not console_socket and not foreground:
        raise PyrunError("cannot allocate tty if pyrun will detach without setting console socket")
    if not os.path.isdir(cfg.root_path):
        raise PyrunError("rootfs (%s) does not exist" % cfg.root_path)
    from runtime import network, rootless

    rootless.check_config(cfg)  # what cannot work without root, refused before anything exists
    net = network.plan(cfg)  # bad annotations / netDevices fail here, before anything exists
    # Without root the parent cannot enter a netns the container's user namespace owns, nor, as root of a
    # user namespace (rootless podman's), come back to the host's: the init brings lo up itself.
    lo_in_init = net.mode == "none" and not net.devices and (rootless.unprivileged() or rootless.in_user_namespace())
    rootless_cgroups = rootless.rootless_cgroups(ctx.rootless)
    if ctx.systemd_cgroup and rootless.unprivileged():
        raise PyrunError("--systemd-cgroup: pyrun's systemd driver talks to the system manager, which needs root; "
                         "rootless, use the cgroupfs driver in a delegated cgroup2 subtree")
    pidfd_sock = None
    if pidfd_socket:
        from runtime.pidfd import PidfdSocket

        pidfd_sock = PidfdSocket(pidfd_socket)  # an unreachable socket fails here, before anything exists
    try:
        return _create(ctx, cid, cfg, net, pid_file, console_socket, no_pivot, preserve_fds, foreground,
                       no_new_keyring, pidfd_sock, lo_in_init, rootless_cgroups)
    finally:
        if pidfd_sock is not None:
            pidfd_sock.close()


def _create(ctx, cid, cfg, net, pid_file, console_socket, no_pivot, preserve_fds, foreground, no_new_keyring,
            pidfd_sock, lo_in_init, rootless_cgroups):
    from runtime import network, rootless

    path = S.make_container_dir(ctx.root, cid)
    lock_fd = S.lock(path)
    record = {
        "id": cid, "status": "creating", "pid": 0, "init_start": None, "bundle": cfg.bundle,
        "rootfs": cfg.root_path, "created": time.time_ns(), "owner": "",
        "annotations": cfg.annotations, "cgroup": None, "foreign": [],
        "hooks": [n for n, hooks in cfg.hooks.items() if hooks],
    }
    cgroup = None
    c = None
    pipes = None
    try:
        S.write_new(os.path.join(path, S.CONFIG_COPY), _config_bytes(cfg))
        execfifo.make(path)
        from runtime.cgroups import Cgroup

        cgroup = Cgroup.for_container(cfg.linux.cgroups_path, cid, systemd=ctx.systemd_cgroup,
                                      annotations=cfg.annotations)
        if rootless_cgroups:
            cgroup = rootless.usable_cgroup(cgroup, cfg, ctx.warn)  # None: the container goes without
            record["rootless"] = True
        if cgroup is not None:
            cgroup.check(cfg.linux.resources)
            cgroup.plan()
            record["cgroup"] = cgroup.to_state()
            if cgroup.rootless:
                record["cgroup"]["rootless"] = True
            # An existing cgroupsPath may hold others' processes: remembered before anything of ours can be
            # in it, so that killing the container's processes never touches them (a pid alone could be
            # recycled).
            record["foreign"] = [[p, t] for p in cgroup.pids() for t in (S.proc_start_time(p),) if t is not None]
        S.save(path, record)  # from here on, delete --force cleans up after a killed pyrun
        if cgroup is not None:
            cgroup.create()
            if cgroup.frozen_anywhere():  # the init would stop half-way through its set-up, create wait forever
                raise PyrunError("container's cgroup unexpectedly frozen (cgroupsPath %s)" % cfg.linux.cgroups_path)
            if record["foreign"]:
                ctx.warn("container's cgroup is not empty: %d process(es) found" % len(record["foreign"]))
            cgroup.apply(cfg.linux.resources)
            if ctx.debug:
                ctx.log_debug("create %s: cgroup %s made, resources applied" % (cid, cfg.linux.cgroups_path or cid))
        c = Container.held(cid, path, lock_fd, record)
        from runtime.init import InitOptions, spawn

        c.console = None
        if cfg.process.terminal:
            from runtime.console import Console

            c.console = Console(console_socket)
        opts = InitOptions(path, preserve_fds, no_pivot, console_socket, c.hook_state, ctx.warn, c.console)
        opts.keyring = None if no_new_keyring else "_ses." + cid
        opts.debug = ctx.log_debug if ctx.debug else None
        opts.loopback = lo_in_init
        c.stdio = None

        def while_building(pid: int) -> None:
            # The init exists, in its namespaces, and builds the container meanwhile (the parent would
            # only wait for it otherwise): its record and its network need nothing more. This runs before
            # the parent answers the init's HOOKS, so prestart hooks find the network up.
            record["pid"] = pid
            record["init_start"] = S.proc_start_time(pid)
            if cfg.linux.namespace("pid") is not None:
                record["pidns"] = pid_ns(pid)
            if net.needs_setup and not lo_in_init:
                netrec = network.record_for(net, ctx.root, cid)
                if netrec:
                    record["network"] = netrec
                    S.save(path, record)  # what is about to be made, for delete --force
                network.setup(net, pid, ctx.root, cid, netrec, lambda: S.save(path, record))

        opts.while_building = while_building
        if foreground and not cfg.process.terminal:
            from runtime.stdio import Pipes

            pipes = Pipes(3 + preserve_fds)
            opts.stdio = pipes.child_fds()
        try:
            pid = spawn(cfg, opts, cgroup)
        finally:
            if pipes is not None:
                pipes.after_clone()
        c.stdio = pipes
        if pidfd_sock is not None:
            from runtime.pidfd import INIT

            # The init waits on the exec fifo; the start time recorded says the pidfd pins that process.
            pidfd_sock.send_pid(pid, INIT, record["init_start"])
        record["status"] = "created"
        S.save(path, record)
        if pid_file:
            write_pid_file(pid_file, pid)
        if ctx.debug:
            ctx.log_debug("create %s: init pid %d ready, waiting on the exec fifo" % (cid, pid))
    except BaseException:
        if pipes is not None:
            pipes.close()
        if record.get("network"):
            try:
                network.teardown(record["network"], ctx.root, cid, record["pid"] if S.init_alive(record) else 0)
            except Exception:
                pass
        if record["pid"]:
            kill_and_reap(record["pid"], record["init_start"])
        if cgroup is not None:
            try:
                cgroup.destroy()
            except Exception:
                pass
        remove_dir(path)
        os.close(lock_fd)
        raise
    return c


def _config_bytes(cfg) -> bytes:
    from runtime import fastjson

    return fastjson.dumps(cfg.raw).encode()
