"""update: new resources for the container's cgroup."""
from runtime.engine.container import Container, require_cgroup
from runtime.errors import PyrunError


def update(ctx, cid: str, resources: dict) -> None:
    c = Container(ctx.root, cid)
    if c.status == "stopped":
        raise PyrunError("container not running")
    require_cgroup(c, "update").update(resources)
