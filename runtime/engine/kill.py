"""kill: a signal to the init, or to every process of the container (--all)."""
from runtime.engine.container import Container, container_pids, judge
from runtime.errors import PyrunError
from runtime.reap import signal


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
    mine = judge(c)
    return all(mine(p) is not False for p in cg.pids_killed_by())  # gone meanwhile: no one's
