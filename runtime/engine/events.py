"""events: the container's stats, and an oom event whenever its OOM count grows, until it stops."""
import time

from runtime import state as S
from runtime.engine.container import Container, require_cgroup
from runtime.errors import PyrunError


def events(ctx, cid: str, emit, interval: float, stats_once: bool = False) -> None:
    """emit(kind, data=None) for each event. stats_once: one stats event and return. Otherwise a stats
    event every `interval` seconds, and "oom" whenever the OOM count grows, until the init is gone."""
    c = Container(ctx.root, cid, lock=False)
    cg = require_cgroup(c, "events")
    if stats_once:
        if c.status == "stopped":
            raise PyrunError("container not running")
        emit("stats", cg.stats())
        return
    ooms = cg.oom_count()
    next_stats = time.monotonic()
    while S.init_alive(c.record):
        n = cg.oom_count()
        if n > ooms:
            emit("oom")
            ooms = n
        if time.monotonic() >= next_stats:
            emit("stats", cg.stats())
            next_stats += interval
        time.sleep(min(0.1, interval))
    if cg.oom_count() > ooms:  # the OOM kill that ended the init itself
        emit("oom")
