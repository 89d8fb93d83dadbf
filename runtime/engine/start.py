"""start: release the init blocked on the exec fifo; poststart hooks."""
from runtime import execfifo, state as S
from runtime.engine.container import Container
from runtime.errors import PyrunError


def start(ctx, cid: str) -> Container:
    c = Container(ctx.root, cid)
    status = c.status
    if status != "created":
        if status == "stopped":
            raise PyrunError("cannot start a container that has stopped")
        if status == "running" or status == "paused":
            raise PyrunError("cannot start an already running container")
        raise PyrunError("cannot start a container in the %s state" % status)
    return release(ctx, c)


def release(ctx, c: Container) -> Container:
    """start's own work, for a container known to be created: `run` calls it with the one it has just
    created and still holds locked (nothing could have started, paused or deleted it since; an init that
    died meanwhile is seen while waiting on the fifo)."""
    cid = c.id
    execfifo.release(c.dir, lambda: S.init_alive(c.record), "container init exited before it was started")
    if ctx.debug:
        ctx.log_debug("start %s: exec fifo opened, init pid %d goes on to exec the process" % (cid, c.pid))
    if "poststart" in c.record.get("hooks", ()):
        from runtime.hooks import run_hooks

        try:
            run_hooks(c.config().hooks["poststart"], c.hook_state("running", c.pid), "poststart",
                      debug=ctx.log_debug if ctx.debug else None)
        except PyrunError:
            from runtime.reap import kill_and_reap

            # runtime-spec 1.3: a failing poststart hook is an error; the container does not go on running
            kill_and_reap(c.pid, c.record.get("init_start"))
            raise
    return c
