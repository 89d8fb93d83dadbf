"""One function per subcommand: check the arguments, call the engine, print what runc prints."""
import sys

from runtime import lightos as os
from runtime.errors import PyrunError


def _args(name: str, pos: list[str], n: int, most: int | None = None) -> None:
    most = n if most is None else most
    if not (n <= len(pos) <= most):
        if n == most:
            raise PyrunError('"%s" requires exactly %d argument(s)' % (name, n))
        raise PyrunError('"%s" requires a minimum of %d argument(s)' % (name, n))


def _bundle(opts) -> str:
    return os.path.abspath(opts.get("bundle") or os.getcwd())


def cmd_create(ctx, opts, pos):
    from runtime.engine.create import create

    _args("create", pos, 1)
    c = create(ctx, pos[0], _bundle(opts), opts.get("pid-file"), opts.get("console-socket"),
               opts.get("no-pivot", False), opts.get("preserve-fds", 0),
               no_new_keyring=opts.get("no-new-keyring", False), pidfd_socket=opts.get("pidfd-socket"))
    c.close()


def cmd_start(ctx, opts, pos):
    from runtime.engine.start import start

    _args("start", pos, 1)
    start(ctx, pos[0]).close()


def cmd_run(ctx, opts, pos):
    from runtime.engine.run import run

    _args("run", pos, 1)
    return run(ctx, pos[0], _bundle(opts), opts.get("pid-file"), opts.get("console-socket"),
               opts.get("no-pivot", False), opts.get("preserve-fds", 0), opts.get("detach", False),
               opts.get("keep", False), opts.get("no-subreaper", False),
               no_new_keyring=opts.get("no-new-keyring", False), pidfd_socket=opts.get("pidfd-socket"))


def cmd_state(ctx, opts, pos):
    from runtime import fastjson
    from runtime import state as S
    from runtime.engine.container import Container

    _args("state", pos, 1)
    c = Container(ctx.root, pos[0], lock=False)
    sys.stdout.write(fastjson.dumps(S.oci_state(c.record, c.status), indent=2))
    sys.stdout.flush()


def parse_signal(text: str) -> int:
    import _signal

    if text.isdigit():
        n = int(text)
        if n > 64:
            raise PyrunError("unknown signal %r" % text)
        return n
    name = text.upper()
    name = name[3:] if name.startswith("SIG") else name
    n = getattr(_signal, "SIG" + name, None)
    if not isinstance(n, int) or name.startswith("_"):
        raise PyrunError("unknown signal %r" % text)
    return n


def cmd_kill(ctx, opts, pos):
    from runtime.engine.kill import kill

    _args("kill", pos, 1, 2)
    sig = parse_signal(pos[1]) if len(pos) > 1 else 15
    kill(ctx, pos[0], sig, opts.get("all", False))


def cmd_delete(ctx, opts, pos):
    from runtime.engine.delete import delete

    _args("delete", pos, 1)
    delete(ctx, pos[0], opts.get("force", False))


def cmd_list(ctx, opts, pos):
    from runtime import fastjson
    from runtime.engine import list as engine_list

    rows = engine_list.rows(ctx)
    fmt = opts.get("format") or "table"
    if opts.get("quiet"):
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif fmt == "json":
        sys.stdout.write((fastjson.dumps(rows, compact=True) if rows else "null") + "\n")
    elif fmt == "table":
        table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        table += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]) for r in rows]
        sys.stdout.write(tabwriter(table))
    else:
        raise PyrunError("invalid format option")


def tabwriter(rows, minwidth: int = 12, padding: int = 3) -> str:
    """Go's text/tabwriter as runc uses it (minwidth 12, padding 3): every cell but the last in a row
    is padded to its column's width."""
    cols = max(len(r) for r in rows)
    widths = [max(minwidth, max(len(r[i]) + padding for r in rows if i < len(r) - 1) if any(
        i < len(r) - 1 for r in rows) else 0) for i in range(cols)]
    return "".join("".join(cell.ljust(widths[i]) if i < len(r) - 1 else cell for i, cell in enumerate(r)) + "\n"
                   for r in rows)


def cmd_spec(ctx, opts, pos):
    import json

    from runtime.spec.default import default_config

    bundle = opts.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise PyrunError("File %s exists. Remove it first" % path)
    data = json.dumps(default_config(bool(opts.get("rootless"))), indent="\t")
    try:
        with open(path, "w") as f:
            f.write(data)
    except OSError as e:
        raise PyrunError("writing %s: %s" % (path, e.strerror)) from None


def cmd_features(ctx, opts, pos):
    import json

    from runtime.features import features_document

    sys.stdout.write(json.dumps(features_document(), indent=4) + "\n")


def cmd_exec(ctx, opts, pos):
    from runtime.engine.exec import exec_process

    if not pos:
        raise PyrunError('"exec" requires a minimum of 1 argument(s)')
    cid = pos[0]
    sub_cgroups = None
    if opts.get("cgroup"):
        from runtime.cgroups import parse_exec_cgroups

        sub_cgroups = parse_exec_cgroups(opts["cgroup"])
    proc = args = overrides = None
    if opts.get("process"):
        from runtime.errors import ConfigError
        from runtime.spec.load import read_json, validate_config

        proc = read_json(opts["process"], "process.json")
        try:
            validate_config(proc, "process")  # the process definition of config.json's schema
        except ConfigError as e:
            raise ConfigError("--process %s: %s" % (opts["process"], e)) from None
    else:
        if len(pos) < 2:
            raise PyrunError("exec: process args cannot be empty")
        args, overrides = pos[1:], _exec_overrides(opts)
    return exec_process(ctx, cid, proc, opts.get("detach", False), opts.get("pid-file"),
                        opts.get("console-socket"), opts.get("preserve-fds", 0),
                        opts.get("ignore-paused", False), sub_cgroups, opts.get("pidfd-socket"), args, overrides)


def _exec_overrides(opts: dict) -> dict:
    """runc's exec flags as the engine's overrides of the container's process (engine.exec.configured_process)."""
    o = {"cwd": opts.get("cwd"), "env": opts.get("env"), "terminal": opts.get("tty"),
         "noNewPrivileges": opts.get("no-new-privs"), "apparmorProfile": opts.get("apparmor"),
         "selinuxLabel": opts.get("process-label"), "capabilities": opts.get("cap")}
    if opts.get("user"):
        uid, _, gid = opts["user"].partition(":")
        try:
            o["uid"] = _id(uid, "--user: uid")
            if gid:
                o["gid"] = _id(gid, "--user: gid")
        except ValueError:
            raise PyrunError("--user: %r: expected <uid>[:<gid>] as numbers" % opts["user"]) from None
    if opts.get("additional-gids"):
        try:
            o["additionalGids"] = [_id(g, "--additional-gids") for g in opts["additional-gids"]]
        except ValueError:
            raise PyrunError("--additional-gids: expected numbers") from None
    return o


def _id(text: str, what: str) -> int:
    """A uid/gid from the command line: 4294967295 is (uid_t)-1, "leave unchanged" (we would stay root)."""
    from runtime.spec.checks import ID_LIMIT

    n = int(text)
    if not 0 <= n < ID_LIMIT:
        raise PyrunError("%s: %s is not a valid id (0 to %d)" % (what, text, ID_LIMIT - 1))
    return n


def cmd_ps(ctx, opts, pos):
    """runc's ps: the host's `ps` (default -ef) filtered to the container's processes."""
    from runtime import fastjson
    from runtime.engine import ps

    _args("ps", pos, 1, 1 << 30)
    pids = ps.processes(ctx, pos[0])
    fmt = opts.get("format") or "table"
    if fmt == "json":
        # runc marshals a nil slice: `null` once no process is left
        sys.stdout.write((fastjson.dumps(pids, compact=True) if pids else "null") + "\n")
        return
    if fmt != "table":
        raise PyrunError("invalid format option")
    sys.stdout.write(ps.ps_table(pids, pos[1:]))


def cmd_pause(ctx, opts, pos):
    from runtime.engine.pause import pause

    _args("pause", pos, 1)
    pause(ctx, pos[0])


def cmd_resume(ctx, opts, pos):
    from runtime.engine.pause import resume

    _args("resume", pos, 1)
    resume(ctx, pos[0])


def cmd_update(ctx, opts, pos):
    from runtime.engine.update import update

    _args("update", pos, 1)
    update(ctx, pos[0], _update_resources(opts))


def _update_resources(opts: dict) -> dict:
    """From -r FILE (or - for stdin), then runc's individual flags on top."""
    import json

    res: dict = {}
    if opts.get("resources"):
        try:
            text = sys.stdin.read() if opts["resources"] == "-" else open(opts["resources"]).read()
            res = json.loads(text)
        except (OSError, ValueError) as e:
            raise PyrunError("--resources: %s" % e) from None
        except RecursionError:
            raise PyrunError("--resources: invalid JSON: nested too deeply") from None
        if not isinstance(res, dict):
            raise PyrunError("--resources: expected a JSON object")

    def num(flag):
        try:
            return int(opts[flag])
        except ValueError:
            raise PyrunError("invalid value for --%s: %r" % (flag, opts[flag])) from None

    mapping = {
        "blkio-weight": ("blockIO", "weight"), "cpu-period": ("cpu", "period"), "cpu-quota": ("cpu", "quota"),
        "cpu-share": ("cpu", "shares"), "cpu-rt-period": ("cpu", "realtimePeriod"),
        "cpu-rt-runtime": ("cpu", "realtimeRuntime"), "memory": ("memory", "limit"),
        "memory-reservation": ("memory", "reservation"), "memory-swap": ("memory", "swap"),
        "pids-limit": ("pids", "limit"),
    }
    for flag, (group, key) in mapping.items():
        if flag in opts:
            res.setdefault(group, {})[key] = num(flag)
    for flag, key in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if flag in opts:
            res.setdefault("cpu", {})[key] = opts[flag]
    return res


def cmd_events(ctx, opts, pos):
    """--stats: one stats event and exit. Otherwise a stats event every --interval, and an oom event
    whenever the container's OOM count grows, until the container stops."""
    from runtime import fastjson
    from runtime.engine.events import events

    _args("events", pos, 1)
    import gc

    gc.enable()
    interval = _duration(opts.get("interval") or "5s")

    def emit(kind, data=None):
        ev = {"type": kind, "id": pos[0]}
        if data is not None:
            ev["data"] = data
        sys.stdout.write(fastjson.dumps(ev, compact=True) + "\n")
        sys.stdout.flush()

    events(ctx, pos[0], emit, interval, bool(opts.get("stats")))


def _duration(text: str) -> float:
    """Go durations as runc takes them: 5s, 500ms, 1m, 1.5h."""
    units = (("ms", 0.001), ("us", 1e-6), ("ns", 1e-9), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    for suffix, scale in units:
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * scale
            except ValueError:
                break
            if value <= 0:
                raise PyrunError("duration interval must be greater than 0")
            return value
    raise PyrunError("invalid --interval %r (use e.g. 5s, 500ms)" % text)


def cmd_checkpoint(ctx, opts, pos):
    from runtime.engine import checkpoint

    _args("checkpoint", pos, 1)
    checkpoint.checkpoint(ctx, pos[0], opts)


def cmd_restore(ctx, opts, pos):
    from runtime.engine import checkpoint

    _args("restore", pos, 1)
    checkpoint.restore(ctx, pos[0], _bundle(opts), opts)
