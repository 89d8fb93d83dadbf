"""OCI hooks: each gets the container state JSON on stdin and must finish within its timeout."""
from runtime import fastjson
from runtime.errors import PyrunError


def run_hooks(hooks, state: dict, name: str, warn=None, debug=None) -> None:
    """Run `hooks` in order. The first failure stops them and raises; with `warn` (poststop, whose
    failures the spec says must not stop the rest) each failure is reported and the rest still run.
    `debug(msg)`, under --debug, is told of each hook before it runs."""
    if not hooks:
        return
    data = fastjson.dumps(state, compact=True).encode()
    for i, h in enumerate(hooks):
        if debug is not None:
            debug("running %s hook %d: %s" % (name, i, h.path))
        try:
            _run_one(h, data, name)
        except PyrunError as e:
            if warn is None:
                raise
            warn(str(e))


def _run_one(h, data: bytes, name: str) -> None:
    import subprocess

    env = dict(e.partition("=")[::2] for e in h.env)
    args = h.args or [h.path]
    try:
        p = subprocess.run(args, executable=h.path, input=data, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=h.timeout, close_fds=True)
    except subprocess.TimeoutExpired:
        raise PyrunError("error running %s hook %s: timed out after %ds" % (name, h.path, h.timeout)) from None
    except OSError as e:
        raise PyrunError("error running %s hook %s: %s" % (name, h.path, e.strerror)) from None
    if p.returncode != 0:
        msg = (p.stderr or p.stdout).decode(errors="replace").strip()
        raise PyrunError("error running %s hook %s: exit status %d%s" % (
            name, h.path, p.returncode, (": " + msg) if msg else ""))
