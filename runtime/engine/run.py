"""run: create + start; in the foreground, forward signals, reap, and delete the container at its end."""
from runtime.engine.container import Container
from runtime.engine.create import create
from runtime.engine.delete import destroy, poststop_hooks, run_poststop
from runtime.engine.start import release
from runtime.errors import NotFound
from runtime.reap import forward_signals, wait_exit


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
        release(ctx, c)  # start, without finding out again that the container we hold is created
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
            poststop = poststop_hooks(mine)
            destroy(mine)
            run_poststop(ctx, mine, poststop)
        mine.close()
