"""runc's command line: global flags, subcommands, exit codes, and errors as one line (plus JSON log lines).

Flags are parsed from one declarative table with a small parser that follows Go's flag package, as runc
does: `--flag value`, `--flag=value`, `-flag`, flags stop at the first positional argument. argparse is
only built (from the same table) for --help: importing it costs ~7 ms, a fifth of runc's whole start."""
import sys

from runtime import lightos as os
from runtime.errors import PyrunError

BOOL, STR, INT, MULTI = "bool", "str", "int", "multi"

GLOBAL_FLAGS = {
    "root": (STR, None, "root directory for storage of container state (default /run/pyrun; rootless: "
                        "$XDG_RUNTIME_DIR/pyrun)"),
    "log": (STR, None, "set the log file to write pyrun logs to (default is stderr)"),
    "log-format": (STR, None, "set the log format ('text' (default), or 'json')"),
    "debug": (BOOL, None, "enable debug logging"),
    "systemd-cgroup": (BOOL, None, "enable systemd cgroup support (cgroup2 hosts; cgroupsPath slice:prefix:name)"),
    "rootless": (STR, None, "ignore cgroup permission errors ('true', 'false', or 'auto' (default))"),
    "criu": (STR, None, "path to the criu binary used by checkpoint and restore (default: criu)"),
    "help": (BOOL, "h", "show help"),
    "version": (BOOL, "v", "print the version"),
}

_CREATE_FLAGS = {
    "bundle": (STR, "b", "path to the root of the bundle directory (default: current directory)"),
    "console-socket": (STR, None, "path to an AF_UNIX socket which will receive the pty master fd"),
    "pid-file": (STR, None, "file to write the process id to"),
    "no-pivot": (BOOL, None, "do not use pivot_root to jail the process inside rootfs"),
    "no-new-keyring": (BOOL, None, "do not create a new session keyring for the container"),
    "preserve-fds": (INT, None, "pass N additional file descriptors to the container"),
    "pidfd-socket": (STR, None, "path to an AF_UNIX socket which will receive a file descriptor referencing the init process"),
}

# name: (flags, positional names, summary)
COMMANDS = {
    "create": (_CREATE_FLAGS, ["container-id"], "create a container"),
    "start": ({}, ["container-id"], "executes the user defined process in a created container"),
    "run": (dict(_CREATE_FLAGS, **{
        "detach": (BOOL, "d", "detach from the container's process"),
        "keep": (BOOL, None, "do not delete the container after it exits"),
        "no-subreaper": (BOOL, None, "disable the use of the subreaper used to reap reparented processes"),
    }), ["container-id"], "create and run a container"),
    "state": ({}, ["container-id"], "output the state of a container"),
    "kill": ({"all": (BOOL, "a", "send the specified signal to all processes inside the container")},
             ["container-id", "[signal]"], "kill sends the specified signal (default: SIGTERM) to the container's init process"),
    "delete": ({"force": (BOOL, "f", "forcibly delete the container if it is still running (uses SIGKILL)")},
               ["container-id"], "delete any resources held by the container"),
    "exec": ({
        "console-socket": (STR, None, "path to an AF_UNIX socket which will receive the pty master fd"),
        "cwd": (STR, None, "current working directory in the container"),
        "env": (MULTI, "e", "set environment variables"),
        "tty": (BOOL, "t", "allocate a pseudo-TTY"),
        "user": (STR, "u", "UID (format: <uid>[:<gid>])"),
        "additional-gids": (MULTI, "g", "additional gids"),
        "process": (STR, "p", "path to the process.json"),
        "detach": (BOOL, "d", "detach from the container's process"),
        "pid-file": (STR, None, "specify the file to write the process id to"),
        "process-label": (STR, None, "set the asm process label for the process commonly used with selinux"),
        "apparmor": (STR, None, "set the apparmor profile for the process"),
        "no-new-privs": (BOOL, None, "set the no new privileges value for the process"),
        "cap": (MULTI, "c", "add a capability to the bounding set for the process"),
        "preserve-fds": (INT, None, "pass N additional file descriptors to the container"),
        "cgroup": (MULTI, None, "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>."),
        "pidfd-socket": (STR, None, "path to an AF_UNIX socket which will receive a file descriptor referencing the exec process"),
        "ignore-paused": (BOOL, None, "allow exec in a paused container"),
    }, ["container-id", "[command...]"], "execute new process inside the container"),
    "ps": ({"format": (STR, "f", "select one of: table or json (default: table)")},
           ["container-id", "[ps options...]"], "ps displays the processes running inside a container"),
    "list": ({"format": (STR, "f", "select one of: table or json (default: table)"),
              "quiet": (BOOL, "q", "display only container IDs")}, [], "lists containers started by pyrun with the given root"),
    "pause": ({}, ["container-id"], "pause suspends all processes inside the container"),
    "resume": ({}, ["container-id"], "resumes all processes that have been previously paused"),
    "update": ({
        "resources": (STR, "r", "path to the file containing the resources to update or '-' to read from the standard input"),
        "blkio-weight": (INT, None, "specifies per cgroup weight, range is from 10 to 1000"),
        "cpu-period": (STR, None, "CPU CFS period to be used for hardcapping (in usecs)"),
        "cpu-quota": (STR, None, "CPU CFS hardcap limit (in usecs)"),
        "cpu-share": (STR, None, "CPU shares (relative weight vs. other containers)"),
        "cpu-rt-period": (STR, None, "CPU realtime period to be used for hardcapping (in usecs)"),
        "cpu-rt-runtime": (STR, None, "CPU realtime hardcap limit (in usecs)"),
        "cpuset-cpus": (STR, None, "CPU(s) to use"),
        "cpuset-mems": (STR, None, "memory node(s) to use"),
        "memory": (STR, None, "memory limit (in bytes)"),
        "memory-reservation": (STR, None, "memory reservation or soft_limit (in bytes)"),
        "memory-swap": (STR, None, "total memory usage (memory + swap); set '-1' to enable unlimited swap"),
        "pids-limit": (INT, None, "maximum number of pids allowed in the container"),
    }, ["container-id"], "update container resource constraints"),
    "events": ({"interval": (STR, None, "set the stats collection interval (default 5s)"),
                "stats": (BOOL, None, "display the container's stats then exit")},
               ["container-id"], "display container events such as OOM notifications, cpu, memory, and IO usage statistics"),
    "spec": ({"bundle": (STR, "b", "path to the root of the bundle directory"),
              "rootless": (BOOL, None, "generate a configuration for a rootless container")},
             [], "create a new specification file"),
    "features": ({}, [], "show the enabled features"),
    # runc's flags, checked as runc checks them; the CRIU work itself is refused (runtime/engine/checkpoint.py)
    "checkpoint": ({
        "image-path": (STR, None, "path for saving criu image files"),
        "work-path": (STR, None, "path for saving work files and logs"),
        "parent-path": (STR, None, "path for previous criu image files in pre-dump"),
        "leave-running": (BOOL, None, "leave the process running after checkpointing"),
        "tcp-established": (BOOL, None, "allow open tcp connections"),
        "ext-unix-sk": (BOOL, None, "allow external unix sockets"),
        "shell-job": (BOOL, None, "allow shell jobs"),
        "lazy-pages": (BOOL, None, "use userfaultfd to lazily restore memory pages"),
        "status-fd": (INT, None, "criu writes \\0 to this FD once lazy-pages is ready"),
        "page-server": (STR, None, "ADDRESS:PORT of the page server"),
        "file-locks": (BOOL, None, "handle file locks, for safety"),
        "pre-dump": (BOOL, None, "dump container's memory information only, leave the container running after this"),
        "manage-cgroups-mode": (STR, None, "cgroups mode: 'soft' (default), 'full' and 'strict'"),
        "empty-ns": (STR, None, "create a namespace, but don't restore its properties"),
        "auto-dedup": (BOOL, None, "enable auto deduplication of memory images"),
    }, ["container-id"], "checkpoint a running container"),
    "restore": ({
        "console-socket": (STR, None, "path to an AF_UNIX socket which will receive the pty master fd"),
        "image-path": (STR, None, "path to criu image files for restoring"),
        "work-path": (STR, None, "path for saving work files and logs"),
        "tcp-established": (BOOL, None, "allow open tcp connections"),
        "ext-unix-sk": (BOOL, None, "allow external unix sockets"),
        "shell-job": (BOOL, None, "allow shell jobs"),
        "file-locks": (BOOL, None, "handle file locks, for safety"),
        "manage-cgroups-mode": (STR, None, "cgroups mode: 'soft' (default), 'full' and 'strict'"),
        "bundle": (STR, "b", "path to the root of the bundle directory"),
        "detach": (BOOL, "d", "detach from the container's process"),
        "pid-file": (STR, None, "specify the file to write the process id to"),
        "no-subreaper": (BOOL, None, "disable the use of the subreaper used to reap reparented processes"),
        "no-pivot": (BOOL, None, "do not use pivot root to jail process inside rootfs"),
        "empty-ns": (STR, None, "create a namespace, but don't restore its properties"),
        "auto-dedup": (BOOL, None, "enable auto deduplication of memory images"),
        "lazy-pages": (BOOL, None, "use userfaultfd to lazily restore memory pages"),
        "lsm-profile": (STR, None, "Specify an LSM profile to be used during restore in the form of TYPE:NAME"),
        "lsm-mount-context": (STR, None, "Specify an LSM mount context to be used during restore"),
    }, ["container-id"], "restore a container from a previous checkpoint"),
}


class UsageError(PyrunError):
    pass


def _lookup(table: dict, name: str):
    if name in table:
        return name
    for long, (_, short, _h) in table.items():
        if short == name:
            return long
    return None


def parse_flags(table: dict, argv: list[str]) -> tuple[dict, list[str]]:
    """Go flag semantics: -x and --x are the same; stop at the first non-flag or after `--`."""
    opts: dict = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        long = _lookup(table, name)
        if long is None:
            raise UsageError("flag provided but not defined: -%s" % name)
        kind = table[long][0]
        if kind == BOOL:
            if eq and value not in ("true", "false", "1", "0"):
                raise UsageError("invalid boolean value %r for -%s" % (value, name))
            opts[long] = value in ("true", "1") if eq else True
        else:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError("flag needs an argument: -%s" % name)
                value = argv[i]
            if kind == INT:
                try:
                    value = int(value)
                except ValueError:
                    raise UsageError("invalid value %r for flag -%s: parse error" % (value, name)) from None
            if kind == MULTI:
                opts.setdefault(long, []).append(value)
            else:
                opts[long] = value
        i += 1
    return opts, argv[i:]


class Context:
    """What every command gets: the global options, the log, and the state root."""

    def __init__(self, g: dict):
        self._root = os.path.abspath(g["root"]) if g.get("root") else None
        self.debug = bool(g.get("debug"))
        self.log_format = g.get("log-format") or "text"
        self.log_path = g.get("log")
        self.systemd_cgroup = bool(g.get("systemd-cgroup"))
        self.rootless = g.get("rootless")
        self.criu = g.get("criu") or "criu"
        self._log_fd = None
        if self.log_format not in ("text", "json"):
            raise UsageError("invalid log-format: %s" % self.log_format)
        if self.log_path:
            # containerd reads this file after any failure: it must exist even when we fail early.
            self._log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @property
    def root(self) -> str:
        """The state root, resolved when a command needs it: rootless without XDG_RUNTIME_DIR there is no
        default, and only the commands that keep state fail for it."""
        if self._root is None:
            from runtime.state import default_root

            self._root = os.path.abspath(default_root())
        return self._root

    def log(self, level: str, msg: str) -> None:
        if level == "debug" and not self.debug:
            return
        if self._log_fd is None:
            if level in ("error", "warning"):
                os.write(2, ('time="%s" level=%s msg="%s"\n' % (_now(), level, _quote(msg))).encode())
            elif level == "debug":  # as runc: without --log, debug lines go to stderr, in --log-format
                os.write(2, self._line(level, msg).encode())
            return
        os.write(self._log_fd, self._line(level, msg).encode())
        if level in ("error", "warning"):
            os.write(2, (msg + "\n").encode())

    def _line(self, level: str, msg: str) -> str:
        if self.log_format == "json":
            from runtime import fastjson

            return fastjson.dumps({"level": level, "msg": msg, "time": _now()}) + "\n"
        return 'time="%s" level=%s msg="%s"\n' % (_now(), level, _quote(msg))

    def warn(self, msg: str) -> None:
        self.log("warning", msg)

    def log_debug(self, msg: str) -> None:
        """--debug lines (runc's level=debug). Callers test `ctx.debug` first, so that without --debug
        not even the message is formatted."""
        self.log("debug", msg)


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _quote(msg: str) -> str:
    return msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help(command: str | None = None) -> str:
    """Built on demand from the tables, so help and parsing cannot drift apart."""
    import argparse

    if command is None:
        p = argparse.ArgumentParser(prog="pyrun", description="pyrun: an OCI container runtime (runc-compatible)",
                                    add_help=False)
        table = GLOBAL_FLAGS
        sub = p.add_subparsers(title="commands", metavar="COMMAND")
        for name, (_f, _pos, summary) in COMMANDS.items():
            sub.add_parser(name, help=summary, add_help=False)
    else:
        table, pos, summary = COMMANDS[command]
        p = argparse.ArgumentParser(prog="pyrun " + command, description=summary, add_help=False)
        for name in pos:
            p.add_argument(name)
    for name, (kind, short, h) in table.items():
        names = ["--" + name] + (["-" + short] if short else [])
        if kind == BOOL:
            p.add_argument(*names, action="store_true", help=h)
        else:
            p.add_argument(*names, metavar="value", help=h)
    return p.format_help()


def version_text() -> str:
    from runtime import OCI_VERSION, __version__

    return "pyrun version %s\ncommit: none\nspec: %s\npython: %s\n" % (
        __version__, OCI_VERSION, sys.version.split()[0])


def main(argv: list[str] | None = None) -> int:
    # A command lives for milliseconds and makes no garbage cycles worth collecting; the collector's
    # passes during the imports cost ~1 ms of a start. (`events`, which can run for hours, turns it on.)
    import gc

    gc.disable()
    argv = sys.argv[1:] if argv is None else argv
    ctx = None
    command = None
    try:
        g, rest = parse_flags(GLOBAL_FLAGS, argv)
        if g.get("version"):
            sys.stdout.write(version_text())
            return 0
        if not rest or g.get("help"):
            sys.stdout.write(_help())
            return 0 if g.get("help") else 1
        command, args = rest[0], rest[1:]
        if command == "help":
            sys.stdout.write(_help(args[0] if args and args[0] in COMMANDS else None))
            return 0
        if command not in COMMANDS:
            raise UsageError("No help topic for '%s'" % command)
        table = dict(COMMANDS[command][0], help=(BOOL, "h", "show help"))
        opts, pos = parse_flags(table, args)
        if command == "update" and len(pos) > 1:
            # as runc's users type it: `update ID --memory 1G` (flags after the container's id)
            more, rest = parse_flags(table, pos[1:])
            opts.update(more)
            pos = pos[:1] + rest
        if opts.get("help"):
            sys.stdout.write(_help(command))
            return 0
        if command in ("create", "run", "exec"):
            # These start processes a container can see: from a read-only copy of the runtime only.
            from runtime import sealed

            sealed.ensure()
        ctx = Context(g)
        from runtime import commands

        return getattr(commands, "cmd_" + command.replace("-", "_"))(ctx, opts, pos) or 0
    except PyrunError as e:
        _report(ctx, argv, str(e))
        return 255 if command == "exec" else e.exit_code
    except OSError as e:
        _report(ctx, argv, str(e))
        return 255 if command == "exec" else 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: still one line, with the traceback only under --debug
        if ctx is not None and ctx.debug:
            import traceback

            traceback.print_exc()
        _report(ctx, argv, "internal error: %s: %s" % (type(e).__name__, e))
        return 255 if command == "exec" else 1


def run() -> None:
    """The `pyrun` command: main(), then leave without the interpreter's finalisation (module teardown,
    a last collection: ~2 ms of every command). Nothing of pyrun's needs it: files are written with
    os.write and closed, and the only buffers are stdout's and stderr's, flushed here."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.exit_now(code if isinstance(code, int) else 1)


def _report(ctx, argv, msg: str) -> None:
    if ctx is None:
        # The error came before the log file was opened (bad flags): still honour --log if we can find it.
        try:
            g, _ = parse_flags(GLOBAL_FLAGS, argv)
        except PyrunError:
            g = {}
        try:
            ctx = Context({"log": g.get("log"), "log-format": g.get("log-format") if g.get("log-format") in ("text", "json") else "text"})
        except (PyrunError, OSError):
            os.write(2, ('time="%s" level=error msg="%s"\n' % (_now(), _quote(msg))).encode())
            return
    ctx.log("error", msg)
