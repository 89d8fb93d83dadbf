"""OCI hooks: each gets the container state JSON on stdin and must finish within its timeout."""
from __future__ import annotations

import json
import os

from runtime.errors import PyrunError


def run_hooks(hooks, state: dict, name: str, warn=None) -> None:
    """Run `hooks` in order; the first failure stops them and raises (the caller decides whether a
    failure is fatal: poststop failures only warn)."""
    if not hooks:
        return
    import subprocess

    data = json.dumps(state).encode()
    for h in hooks:
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
