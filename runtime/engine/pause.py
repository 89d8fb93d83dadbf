"""pause / resume: the container's cgroup frozen and thawed."""
from runtime.engine.container import Container, require_cgroup
from runtime.errors import PyrunError


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
