"""The engine: create / start / run / kill / delete, orchestrating state, cgroups and the init.

Every step that changes the host is undone when a later one fails, so a failed create leaves nothing
behind; a pyrun killed half-way leaves a "creating" record that `delete --force` cleans."""
from __future__ import annotations

import os
import time

from runtime import state as S
from runtime.errors import NotFound, PyrunError


class Container:
    """A container directory held under its lock, with its record."""

    console = None

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
           preserve_fds=0, foreground=False):
    """Set up everything but the user process and leave the init blocked on the exec fifo."""
    from runtime.spec.load import load_bundle

    S.check_id(cid)
    cfg = load_bundle(bundle)
    if cfg.process is None:
        raise PyrunError("config.json: process: a process is required to create a container")
    if cfg.process.terminal and not console_socket and not foreground:
        raise PyrunError("cannot allocate tty if pyrun will detach without setting console socket")
    if not os.path.isdir(cfg.root_path):
        raise PyrunError("rootfs (%s) does not exist" % cfg.root_path)
    path = S.make_container_dir(ctx.root, cid)
    lock_fd = S.lock(path)
    record = {
        "id": cid, "status": "creating", "pid": 0, "init_start": None, "bundle": cfg.bundle,
        "rootfs": cfg.root_path, "created": time.time_ns(), "owner": "",
        "annotations": cfg.annotations, "cgroup": None,
        "hooks": [n for n, hooks in cfg.hooks.items() if hooks],
    }
    cgroup = None
    c = None
    try:
        S.write_new(os.path.join(path, S.CONFIG_COPY), _config_bytes(cfg))
        os.mkfifo(os.path.join(path, S.EXEC_FIFO), 0o622)
        os.chmod(os.path.join(path, S.EXEC_FIFO), 0o622)  # not the caller's umask: a user ns root writes it
        from runtime.cgroups import Cgroup

        cgroup = Cgroup.for_container(cfg.linux.cgroups_path, cid, systemd=ctx.systemd_cgroup,
                                      annotations=cfg.annotations)
        cgroup.plan()
        record["cgroup"] = cgroup.to_state()
        S.save(path, record, durable=False)  # from here on, delete --force cleans up after a killed pyrun
        cgroup.create()
        cgroup.apply(cfg.linux.resources)
        c = Container.__new__(Container)
        c.id, c.dir, c.lock_fd, c.record = cid, path, lock_fd, record
        from runtime.init import InitOptions, spawn

        c.console = None
        if cfg.process.terminal:
            from runtime.console import Console

            c.console = Console(console_socket)
        opts = InitOptions(path, preserve_fds, no_pivot, console_socket, c.hook_state, ctx.warn, c.console)
        pid = spawn(cfg, opts, cgroup)
        record["pid"] = pid
        record["init_start"] = S.proc_start_time(pid)
        record["status"] = "created"
        S.save(path, record)
        if pid_file:
            write_pid_file(pid_file, pid)
    except BaseException:
        if record["pid"]:
            _kill_wait(record["pid"], record["init_start"])
        if cgroup is not None:
            try:
                cgroup.destroy()
            except Exception:
                pass
        _remove_dir(path)
        os.close(lock_fd)
        raise
    return c


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
    _release_init(c)
    if "poststart" in c.record.get("hooks", ()):
        from runtime.hooks import run_hooks

        try:
            run_hooks(c.config().hooks["poststart"], c.hook_state("running", c.pid), "poststart")
        except PyrunError:
            _kill_wait(c.pid, c.record.get("init_start"))
            raise
    return c


def _release_init(c: Container) -> None:
    """Open the exec fifo's read end and take the init's byte; the init then goes on to execve.
    Non-blocking open plus poll, so a dead init cannot hang `start`."""
    import select

    fifo = os.path.join(c.dir, S.EXEC_FIFO)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(50):
                if os.read(fd, 1):
                    break
            if not S.init_alive(c.record):
                raise PyrunError("container init exited before it was started")
    finally:
        os.close(fd)
    os.unlink(fifo)


def kill(ctx, cid: str, sig: int, all_processes: bool = False) -> None:
    c = Container(ctx.root, cid)
    status = c.status
    if status not in ("created", "running", "paused"):
        if all_processes and status == "stopped":
            cg = c.cgroup()
            for p in cg.pids() if cg else ():
                _signal(p, sig)
            return
        raise PyrunError("container not running")
    if all_processes:
        cg = c.cgroup()
        pids = cg.pids() if cg else [c.pid]
        if status == "paused" or sig == 9:
            # A frozen task only acts on a signal once thawed.
            for p in pids:
                _signal(p, sig)
            if status == "paused" and cg:
                cg.thaw()
        else:
            for p in pids:
                _signal(p, sig)
        return
    _signal(c.pid, sig)
    if status == "paused" and sig == 9:
        # As runc: a frozen init only dies of SIGKILL once thawed (other signals wait for resume).
        cg = c.cgroup()
        if cg is not None:
            cg.thaw()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


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
    cg = c.cgroup()
    if S.init_alive(c.record):
        if cg is not None and c.status == "paused":
            for p in cg.pids():
                _signal(p, 9)
            cg.thaw()
        _kill_wait(c.pid, c.record.get("init_start"))
    if cg is not None:
        for _ in range(100):
            pids = cg.pids()
            if not pids:
                break
            for p in pids:
                _signal(p, 9)
            time.sleep(0.01)
        cg.destroy()
    _remove_dir(c.dir)


def _poststop_hooks(c: Container) -> list:
    """Read before destroy(): the config copy goes with the state directory."""
    return c.config().hooks["poststop"] if "poststop" in c.record.get("hooks", ()) else []


def run_poststop(ctx, c: Container, hooks: list) -> None:
    if hooks:
        from runtime.hooks import run_hooks

        run_hooks(hooks, c.hook_state("stopped", 0), "poststop", warn=ctx.warn)


def _kill_wait(pid: int, start_time, timeout: float = 10.0) -> None:
    """SIGKILL and wait until the process is gone or a zombie (its reaper is not us)."""
    if not pid or S.proc_start_time(pid) != start_time:
        return
    _signal(pid, 9)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    deadline = time.monotonic() + timeout
    while S.proc_start_time(pid) == start_time and time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        time.sleep(0.002)


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
        detach=False, keep=False, no_subreaper=False) -> int:
    """create + start; in the foreground, forward signals, reap, and return the container's status."""
    from runtime import linux as L

    if not detach and not no_subreaper:
        # The init may be a grandchild (namespace paths to join): it must come back to us to be reaped.
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    c = create(ctx, cid, bundle, pid_file, console_socket, no_pivot, preserve_fds, foreground=not detach)
    try:
        if not detach:
            _forward_signals(c.pid)
        start(ctx, cid, c)
    except BaseException:
        destroy(c)
        c.close()
        raise
    c.close()  # while it runs, kill / delete --force / pause / exec must be able to take the lock
    if detach:
        return 0
    if c.console is not None and c.console.local:
        code = c.console.proxy_until_exit(c.pid, _wait_exit)
    else:
        code = _wait_exit(c.pid)
    if not keep:
        try:
            mine = Container(ctx.root, cid)
        except NotFound:  # deleted meanwhile (delete --force)
            return code
        if mine.record.get("created") == c.record.get("created"):
            poststop = _poststop_hooks(mine)
            destroy(mine)
            run_poststop(ctx, mine, poststop)
        mine.close()
    return code


_NOT_FORWARDED = (9, 17, 19, 23, 28)  # KILL, CHLD, STOP, URG, WINCH


def _forward_signals(pid: int) -> None:
    import _signal

    def forward(sig, _frame):
        _signal_pid(pid, sig)

    for sig in range(1, 32):
        if sig not in _NOT_FORWARDED:
            try:
                _signal.signal(sig, forward)
            except (OSError, ValueError, RuntimeError):
                pass


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_exit(pid: int) -> int:
    """Reap until the init is gone (as a subreaper we also collect orphans); 128+N for signal N."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


def exec_process(ctx, cid: str, proc_doc: dict, detach=False, pid_file=None, console_socket=None,
                 preserve_fds=0, ignore_paused=False) -> int:
    """Run another process in a created or running container; foreground returns its status."""
    from runtime import linux as L
    from runtime.init.join import spawn_in
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
    if not proc.args:
        raise PyrunError("process.args: args must not be empty")
    from runtime.init.process import check_env

    check_env(proc.env)
    if proc.terminal and not console_socket and detach:
        raise PyrunError("cannot allocate tty if pyrun will detach without setting console socket")
    console = None
    if proc.terminal:
        from runtime.console import Console

        console = Console(console_socket)
    if not detach:
        L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    pid = spawn_in(c.config(), proc, c.pid, c.cgroup(), preserve_fds, console, ctx.warn)
    if pid_file:
        write_pid_file(pid_file, pid)
    if detach:
        return 0
    _forward_signals(pid)
    if console is not None and console.local:
        return console.proxy_until_exit(pid, _wait_exit)
    return _wait_exit(pid)


def pause(ctx, cid: str) -> None:
    c = Container(ctx.root, cid)
    status = c.status
    if status not in ("running", "created"):
        raise PyrunError("container not running" if status != "paused" else "container already paused")
    _require_cgroup(c).freeze()


def resume(ctx, cid: str) -> None:
    c = Container(ctx.root, cid)
    if c.status != "paused":
        raise PyrunError("container not paused")
    _require_cgroup(c).thaw()


def update(ctx, cid: str, resources: dict) -> None:
    c = Container(ctx.root, cid)
    if c.status == "stopped":
        raise PyrunError("container not running")
    _require_cgroup(c).update(resources)


def processes(ctx, cid: str) -> list[int]:
    c = Container(ctx.root, cid, lock=False)
    cg = c.cgroup()
    if cg is None:
        return [c.pid] if S.init_alive(c.record) else []
    return cg.pids()


def _require_cgroup(c: Container):
    cg = c.cgroup()
    if cg is None:
        raise PyrunError("container %s has no cgroup" % c.id)
    return cg
