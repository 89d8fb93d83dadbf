"""checkpoint / restore: the arguments checked as runc 1.1.5 checks them, then CRIU asked whether it can work.

runc drives CRIU for both commands. pyrun does not dump or restore a container itself: where CRIU cannot
work it says exactly why (the first error `criu check` reports, and, for the known case, what in the
kernel CRIU does not understand), and where it can, it refuses in one line too, so a checkpoint is never
taken half-way or silently skipped. Nothing is created before a refusal (runc makes the image directory
first); the container is left as it was.

On this machine (kernel 6.18, Debian's CRIU 3.17.1) CRIU cannot start at all: the kernel maps a
`[vvar_vclock]` area between `[vvar]` and `[vdso]`, and CRIU 3.17's kernel feature detection
requires the two to touch ("vdso: Unexpected rt vDSO area bounds"), so every `criu` action, and so every
`runc checkpoint` / `runc restore`, fails. See docs/checkpoint.md.

Imported only by these two commands."""
import os
import subprocess

from runtime.errors import PyrunError

# runc 1.1.5's --manage-cgroups-mode values ("" is its default, soft)
CGROUP_MODES = ("", "soft", "full", "strict")
# runc's --empty-ns names (runtime-spec namespace types)
NS_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup")
CHECK_TIMEOUT = 60


def criu_problem(criu: str) -> str | None:
    """Why CRIU cannot work on this host (one line), or None when `criu check` passes."""
    try:
        p = subprocess.run([criu, "check"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=CHECK_TIMEOUT)
    except FileNotFoundError:
        if "/" in criu:
            return "%s: no such file" % criu
        return "%s is not installed (Debian: apt-get install criu)" % criu
    except PermissionError as e:
        return "%s cannot be run: %s" % (criu, e.strerror)
    except subprocess.TimeoutExpired:
        return "`%s check` did not finish within %ds" % (criu, CHECK_TIMEOUT)
    if p.returncode == 0:
        return None
    lines = [ln.strip() for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error")]
    first = (errors or lines or ["exit status %d, no output" % p.returncode])[0]
    reason = "`%s check` failed: %s" % (criu, first)
    if "vDSO area bounds" in first and _vvar_vclock_between():
        reason += (" (this kernel maps [vvar_vclock] between [vvar] and [vdso], a layout %s does not know:"
                   " it needs the two to touch)" % _criu_version(criu))
    elif any("kernel features detection" in ln for ln in errors):
        reason += " (CRIU cannot start on this kernel)"
    return reason


def _vvar_vclock_between() -> bool:
    """True when our own address space shows [vvar] [vvar_vclock] [vdso] back to back."""
    areas = {}
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 6 and parts[5] in ("[vvar]", "[vvar_vclock]", "[vdso]"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                areas[parts[5]] = (start, end)
    if len(areas) != 3:
        return False
    vvar, clock, vdso = areas["[vvar]"], areas["[vvar_vclock]"], areas["[vdso]"]
    return vvar[1] == clock[0] and clock[1] == vdso[0]


def _criu_version(criu: str) -> str:
    try:
        out = subprocess.run([criu, "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=CHECK_TIMEOUT).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "this CRIU"
    for line in out.splitlines():
        if line.startswith("Version:"):
            return "CRIU " + line.split(":", 1)[1].strip()
    return "this CRIU"


def _common_options(opts: dict) -> None:
    """The option checks runc makes before it talks to CRIU, with its words."""
    if opts.get("manage-cgroups-mode", "") not in CGROUP_MODES:
        raise PyrunError("Invalid manage cgroups mode")
    ns = opts.get("empty-ns")
    if ns and ns not in NS_TYPES:
        raise PyrunError("namespace %r is not supported" % ns)


def _refuse(command: str, criu: str) -> None:
    problem = criu_problem(criu)
    if problem is not None:
        raise PyrunError("%s: CRIU cannot work on this host: %s" % (command, problem))
    # CRIU would work here, but pyrun has no dump/restore of its own to trust with a container.
    raise PyrunError("%s: not supported by pyrun (CRIU works on this host, but pyrun does not drive it)" % command)


def checkpoint(ctx, cid: str, opts: dict) -> None:
    from runtime.engine.container import Container

    c = Container(ctx.root, cid, lock=False)
    status = c.status
    if status in ("created", "stopped", "creating"):
        raise PyrunError("Container cannot be checkpointed in %s state" % status)
    image = os.path.abspath(opts.get("image-path") or os.path.join(os.getcwd(), "checkpoint"))
    parent = opts.get("parent-path")
    if parent:
        # runc: relative to the image directory; it must exist (a pre-dump's images)
        where = os.path.normpath(os.path.join(image, parent))
        if not os.path.isdir(where):
            raise PyrunError("invalid --parent-path: stat %s: no such file or directory" % where)
    ps = opts.get("page-server")
    if ps:
        host, sep, port = ps.rpartition(":")
        if not sep or not host:
            raise PyrunError("Use --page-server ADDRESS:PORT to specify page server")
        if not port.isdigit():
            raise PyrunError("Invalid port number")
    _common_options(opts)
    _refuse("checkpoint", ctx.criu)


def restore(ctx, cid: str, bundle: str, opts: dict) -> None:
    from runtime import state as S
    from runtime.spec.load import load_bundle

    S.check_id(cid)
    if os.path.exists(S.container_dir(ctx.root, cid)):
        raise PyrunError("container with given ID already exists")
    load_bundle(bundle)
    image = os.path.abspath(opts.get("image-path") or os.path.join(os.getcwd(), "checkpoint"))
    if not os.path.isdir(image):
        raise PyrunError("--image-path %s: no such directory (no checkpoint to restore)" % image)
    _common_options(opts)
    _refuse("restore", ctx.criu)
