"""delete: kill what is left of a container, remove its cgroup and state; poststop hooks."""
import time

from runtime import lightos as os
from runtime import state as S
from runtime.cgroups import Cgroup
from runtime.engine.container import Container, container_pids, remove_dir
from runtime.errors import NotFound, PyrunError

# engine.kill and runtime.reap are imported where something is left to kill: the delete of a stopped
# container (the common one) goes without them.


def delete(ctx, cid: str, force: bool = False) -> None:
    try:
        c = Container(ctx.root, cid)
    except NotFound:
        if force:
            # runc exits 0 here, and removes whatever partial directory a crashed create left.
            remove_dir(S.container_dir(ctx.root, cid))
            return
        raise
    status = c.status
    if status in ("running", "paused") and not force:
        raise PyrunError("cannot delete container %s that is not stopped: %s" % (cid, status))
    poststop = poststop_hooks(c)
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
    alive = S.init_alive(c.record)
    # The common delete, of a stopped container: its cgroup is empty and goes by rmdir alone, without the
    # v1/v2 modules or a listing of its processes and sub-cgroups.
    if alive or not c.record.get("cgroup") or not Cgroup.remove_empty_in_state(c.record["cgroup"]):
        _kill_and_remove_cgroup(c, alive)
    remove_dir(c.dir)
    if net_error is not None:
        raise net_error


def _kill_and_remove_cgroup(c: Container, alive: bool) -> None:
    cg = c.cgroup()
    if alive:
        from runtime.engine.kill import kill_all
        from runtime.reap import kill_and_reap

        if cg is not None:
            paused = c.status == "paused"
            kill_all(c, cg, 9)
            if paused:
                cg.thaw()
        kill_and_reap(c.pid, c.record.get("init_start"))
    if cg is None:
        return
    for _ in range(100):
        if not container_pids(c, cg):
            break
        from runtime.engine.kill import kill_all

        kill_all(c, cg, 9)
        time.sleep(0.01)
    try:
        cg.destroy()
    except PyrunError:
        # A cgroup we made that others' processes joined since: theirs now, left in place.
        if not cg.pids() or container_pids(c, cg):
            raise


def poststop_hooks(c: Container) -> list:
    """Read before destroy(): the config copy goes with the state directory."""
    return c.config().hooks["poststop"] if "poststop" in c.record.get("hooks", ()) else []


def run_poststop(ctx, c: Container, hooks: list) -> None:
    if hooks:
        from runtime.hooks import run_hooks

        run_hooks(hooks, c.hook_state("stopped", 0), "poststop", warn=ctx.warn)
