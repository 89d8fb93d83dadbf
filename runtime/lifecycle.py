"""The engine: create / start / run / kill / delete, orchestrating state, cgroups and the init.

Every step that changes the host is undone when a later one fails, so a failed create leaves nothing
behind; a pyrun killed half-way leaves a "creating" record that `delete --force` cleans."""
from __future__ import annotations

import os
import time

from runtime import execfifo, state as S
from runtime.reap import forward_signals, kill_and_reap, signal, wait_exit
from runtime.errors import NotFound, PyrunError


class Container:
    """A container directory held under its lock, with its record."""

    console = None
    stdio = None  # runtime.stdio.Pipes of a foreground run without a terminal

    def __init__(self, root: str, cid: str, lock: bool = True):
        self.id = cid
        self.dir = S.container_dir(root, cid)
        self.lock_fd = S.lock(self.dir) if lock else None
        try:
            self.record = S.load(root, cid)
        except NotFound:
            if self.lock_fd is not None:
                os.close(self.lock_fd)
            raise NotFound("container does not exist") from None

    @property
    def status(self) -> str:
        return S.derive_status(self.record, self.dir)

    @property
    def pid(self) -> int:
        return self.record.get("pid") or 0

    def cgroup(self):
        if not self.record.get("cgroup"):
            return None
        from runtime.cgroups import Cgroup

        return Cgroup.from_state(self.record["cgroup"])

    def save(self) -> None:
        S.save(self.dir, self.record)

    def hook_state(self, status: str, pid: int) -> dict:
        """The runtime-spec state, as runc gives hooks: no rootfs/created/owner, pid left out when 0."""
        st = {"ociVersion": S.OCI_VERSION, "id": self.id, "status": status}
        if pid:
            st["pid"] = pid
        st["bundle"] = self.record["bundle"]
        if self.record.get("annotations"):
            st["annotations"] = self.record["annotations"]
        return st

    def config(self):
        from runtime.spec.load import read_json
        from runtime.spec.model import Config

        doc = read_json(os.path.join(self.dir, S.CONFIG_COPY))
        return Config(doc, self.record["bundle"])

    def close(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


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
        S.save(path, record, durable=False)  # from here on, delete --force cleans up after a killed pyrun
        if cgroup is not None:
            cgroup.create()
            if cgroup.frozen_anywhere():  # the init would stop half-way through its set-up, create wait forever
                raise PyrunError("container's cgroup unexpectedly frozen (cgroupsPath %s)" % cfg.linux.cgroups_path)
            if record["foreign"]:
                ctx.warn("container's cgroup is not empty: %d process(es) found" % len(record["foreign"]))
            cgroup.apply(cfg.linux.resources)
            if ctx.debug:
                ctx.log_debug("create %s: cgroup %s made, resources applied" % (cid, cfg.linux.cgroups_path or cid))
        c = Container.__new__(Container)
        c.id, c.dir, c.lock_fd, c.record = cid, path, lock_fd, record
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
        record["pid"] = pid
        record["init_start"] = S.proc_start_time(pid)
        if pidfd_sock is not None:
            from runtime.pidfd import INIT

            # The init waits on the exec fifo; the start time recorded says the pidfd pins that process.
            pidfd_sock.send_pid(pid, INIT, record["init_start"])
        if cfg.linux.namespace("pid") is not None:
            record["pidns"] = _pid_ns(pid)
        # the init waits on the exec fifo: eth0 is ready before the user process runs
        if net.needs_setup and not lo_in_init:
            netrec = network.record_for(net, ctx.root, cid)
            if netrec:
                record["network"] = netrec
                S.save(path, record, durable=False)  # what is about to be made, for delete --force
            network.setup(net, pid, ctx.root, cid, netrec, lambda: S.save(path, record, durable=False))
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
        _remove_dir(path)
        os.close(lock_fd)
        raise
    return c


def _pid_ns(pid: int):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def container_pids(c: Container, cg=None) -> list[int]:
    """The processes in the container's cgroup (and below) that are the container's: not one of those
    found there at create (pid and start time), none started before the init, and, with a pid namespace,
    only those inside it. Everything that kills "all the container's processes" goes through this."""
    cg = cg if cg is not None else c.cgroup()
    if cg is None:
        return [c.pid] if S.init_alive(c.record) else []
    judge = _judge(c)
    return [p for p in cg.pids() if judge(p)]


def _judge(c: Container):
    """p -> True if p is the container's, False if not, None if it is gone."""
    foreign = {(p, t) for p, t in c.record.get("foreign") or ()}
    since = c.record.get("init_start")
    pidns = c.record.get("pidns")

    def judge(p: int):
        t = S.proc_start_time(p)
        if t is None:
            return None
        if (p, t) in foreign or (since is not None and t < since):
            return False
        if pidns is not None:
            ns = _pid_ns(p)
            if ns is None:
                return None
            return ns == pidns
        return True

    return judge


def _config_bytes(cfg) -> bytes:
    from runtime import fastjson

    return fastjson.dumps(cfg.raw).encode()


def write_pid_file(path: str, pid: int) -> None:
    """Digits only, no newline (containerd Atoi()s the whole file), via a temp file and rename."""
    path = os.path.abspath(path)
    try:
        S.write_atomic(path, str(pid).encode(), 0o644)
    except OSError as e:
        raise PyrunError("writing pid file %s: %s" % (path, e.strerror)) from None


def start(ctx, cid: str, c: Container | None = None) -> Container:
    c = c or Container(ctx.root, cid)
    status = c.status
    if status != "created":
        if status == "stopped":
            raise PyrunError("cannot start a container that has stopped")
        if status == "running" or status == "paused":
            raise PyrunError("cannot start an already running container")
        raise PyrunError("cannot start a container in the %s state" % status)
    execfifo.release(c.dir, lambda: S.init_alive(c.record), "container init exited before it was started")
    if ctx.debug:
        ctx.log_debug("start %s: exec fifo opened, init pid %d goes on to exec the process" % (cid, c.pid))
    if "poststart" in c.record.get("hooks", ()):
        from runtime.hooks import run_hooks

        try:
            run_hooks(c.config().hooks["poststart"], c.hook_state("running", c.pid), "poststart",
                      debug=ctx.log_debug if ctx.debug else None)
        except PyrunError:
            # runtime-spec 1.3: a failing poststart hook is an error; the container does not go on running
            kill_and_reap(c.pid, c.record.get("init_start"))
            raise
    return c


def kill(ctx, cid: str, sig: int, all_processes: bool = False) -> None:
    c = Container(ctx.root, cid)
    status = c.status
    if status not in ("created", "running", "paused"):
        if all_processes and status == "stopped":
            cg = c.cgroup()
            if cg is not None:
                kill_all(c, cg, sig)
            return
        raise PyrunError("container not running")
    if all_processes:
        cg = c.cgroup()
        kill_all(c, cg, sig)
        if status == "paused" and cg is not None:
            cg.thaw()  # a frozen task only acts on a signal once thawed (runc thaws after kill --all too)
        return
    signal(c.pid, sig)
    if status == "paused" and sig == 9:
        # As runc: a frozen init only dies of SIGKILL once thawed (other signals wait for resume).
        cg = c.cgroup()
        if cg is not None:
            cg.thaw()


def kill_all(c: Container, cg, sig: int) -> None:
    """Signal every process of the container. SIGKILL goes through cgroup.kill where the kernel has it
    (as runc 1.2): one write that no fork can race. But cgroup.kill kills whatever is in the cgroup, so
    only when that is the container alone: a cgroup pyrun made for it, with nobody else's process found
    there at create (record["foreign"]) nor now. Otherwise, and for anything cgroup.kill did not reach
    (hybrid: a process outside the unified tree), each of the container's pids is signalled."""
    if sig == 9 and cg is not None and _cgroup_is_the_containers(c, cg):
        cg.write_kill()
    for p in container_pids(c, cg):
        signal(p, sig)


def _cgroup_is_the_containers(c: Container, cg) -> bool:
    d = cg.kill_dir()
    if not d or d not in cg.created or c.record.get("foreign"):
        return False
    judge = _judge(c)
    return all(judge(p) is not False for p in cg.pids_killed_by())  # gone meanwhile: no one's


def delete(ctx, cid: str, force: bool = False) -> None:
    try:
        c = Container(ctx.root, cid)
    except NotFound:
        if force:
            # runc exits 0 here, and removes whatever partial directory a crashed create left.
            _remove_dir(S.container_dir(ctx.root, cid))
            return
        raise
    status = c.status
    if status in ("running", "paused") and not force:
        raise PyrunError("cannot delete container %s that is not stopped: %s" % (cid, status))
    poststop = _poststop_hooks(c)
    destroy(c)
    run_poststop(ctx, c, poststop)
    c.close()


def destroy(c: Container) -> None:
    """Kill whatever is left, remove the cgroup and the state directory."""
    net_error = None
    if c.record.get("network"):  # while the init lives: moved devices go back from its netns
        from runtime import network

        try:
            network.teardown(c.record["network"], os.path.dirname(c.dir), c.id, c.pid if S.init_alive(c.record) else 0)
        except PyrunError as e:
            net_error = e
    cg = c.cgroup()
    if S.init_alive(c.record):
        if cg is not None:
            paused = c.status == "paused"
            kill_all(c, cg, 9)
            if paused:
                cg.thaw()
        kill_and_reap(c.pid, c.record.get("init_start"))
    if cg is not None:
        for _ in range(100):
            if not container_pids(c, cg):
                break
            kill_all(c, cg, 9)
            time.sleep(0.01)
        try:
            cg.destroy()
        except PyrunError:
            # A cgroup we made that others' processes joined since: theirs now, left in place.
            if not cg.pids() or container_pids(c, cg):
                raise
    _remove_dir(c.dir)
    if net_error is not None:
        raise net_error


def _poststop_hooks(c: Container) -> list:
    """Read before destroy(): the config copy goes with the state directory."""
    return c.config().hooks["poststop"] if "poststop" in c.record.get("hooks", ()) else []


def run_poststop(ctx, c: Container, hooks: list) -> None:
    if hooks:
        from runtime.hooks import run_hooks

        run_hooks(hooks, c.hook_state("stopped", 0), "poststop", warn=ctx.warn)


def _remove_dir(path: str) -> None:
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for n in names:
        try:
            os.unlink(os.path.join(path, n))
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def run(ctx, cid: str, bundle: str, pid_file=None, console_socket=None, no_pivot=False, preserve_fds=0,
        detach=False, keep=False, no_subreaper=False, no_new_keyring=False, pidfd_socket=None) -> int:
    """create + start; in the foreground, forward signals, reap, and return the container's status."""
    from runtime import linux as L

    if not detach and not no_subreaper:
        # The init may be a grandchild (namespace paths to join): it must come back to us to be reaped.
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    c = create(ctx, cid, bundle, pid_file, console_socket, no_pivot, preserve_fds, foreground=not detach,
               no_new_keyring=no_new_keyring, pidfd_socket=pidfd_socket)
    try:
        if not detach:
            forward_signals(c.pid)
        start(ctx, cid, c)
    except BaseException:
        destroy(c)
        if c.stdio is not None:
            c.stdio.drain(0.2)  # what the init said before it died is the caller's to read
            c.stdio.close()
        c.close()
        raise
    c.close()  # while it runs, kill / delete --force / pause / exec must be able to take the lock
    if detach:
        return 0
    if c.console is not None and c.console.local:
        code = c.console.proxy_until_exit(c.pid, wait_exit)
    elif c.stdio is not None:
        code = c.stdio.pump_until_exit(c.pid, wait_exit)
    else:
        code = wait_exit(c.pid)
    if ctx.debug:
        ctx.log_debug("run %s: process exited, status %d" % (cid, code))
    try:
        _end_run(ctx, cid, c, keep)
    finally:
        if c.stdio is not None:
            # After destroy() killed what was left: the pipes reach EOF; with --keep, whatever the
            # container left running may hold them, so stop after a quiet second.
            c.stdio.drain(1.0)
    return code


def _end_run(ctx, cid: str, c: Container, keep: bool) -> None:
    if not keep:
        try:
            mine = Container(ctx.root, cid)
        except NotFound:  # deleted meanwhile (delete --force)
            return
        if mine.record.get("created") == c.record.get("created"):
            poststop = _poststop_hooks(mine)
            destroy(mine)
            run_poststop(ctx, mine, poststop)
        mine.close()


def exec_process(ctx, cid: str, proc_doc: dict, detach=False, pid_file=None, console_socket=None,
                 preserve_fds=0, ignore_paused=False, sub_cgroups=None, pidfd_socket=None) -> int:
    """Run another process in a created or running container; foreground returns its status.
    sub_cgroups: `exec --cgroup`, parsed (cgroups.parse_exec_cgroups): existing sub-cgroups of the
    container's to run the process in. pidfd_socket: --pidfd-socket's path, sent the process's pidfd."""
    from runtime.spec.model import Process

    c = Container(ctx.root, cid, lock=False)
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


def pause(ctx, cid: str) -> None:
    c = Container(ctx.root, cid)
    status = c.status
    if status not in ("running", "created"):
        raise PyrunError("container not running" if status != "paused" else "container already paused")
    require_cgroup(c, "pause").freeze()


def resume(ctx, cid: str) -> None:
    c = Container(ctx.root, cid)
    if c.status != "paused":
        raise PyrunError("container not paused")
    require_cgroup(c, "resume").thaw()


def update(ctx, cid: str, resources: dict) -> None:
    c = Container(ctx.root, cid)
    if c.status == "stopped":
        raise PyrunError("container not running")
    require_cgroup(c, "update").update(resources)


def processes(ctx, cid: str) -> list[int]:
    c = Container(ctx.root, cid, lock=False)
    cg = c.cgroup()
    if cg is None:
        return [c.pid] if S.init_alive(c.record) else []
    return cg.pids()


def require_cgroup(c: Container, what: str):
    cg = c.cgroup()
    if cg is None:
        if c.record.get("rootless"):
            raise PyrunError("%s: container %s has no cgroup: it runs rootless and could not be given one (a "
                             "delegated cgroup2 subtree, writable by the user, is needed)" % (what, c.id))
        raise PyrunError("container %s has no cgroup" % c.id)
    return cg
