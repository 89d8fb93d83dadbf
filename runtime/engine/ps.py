"""ps: the container's processes, and runc's table of them: the host's `ps` filtered to those pids."""
from runtime import state as S
from runtime.engine.container import Container
from runtime.errors import PyrunError


def processes(ctx, cid: str) -> list[int]:
    c = Container(ctx.root, cid, lock=False)
    cg = c.cgroup()
    if cg is None:
        return [c.pid] if S.init_alive(c.record) else []
    return cg.pids()


def ps_table(pids: list[int], ps_args: list[str]) -> str:
    """The host's `ps` (default -ef) run with ps_args, its header and the lines of `pids` only; "" when
    ps printed nothing."""
    import subprocess

    try:
        out = subprocess.run(["ps"] + (ps_args or ["-ef"]), capture_output=True, check=True).stdout.decode()
    except FileNotFoundError:
        raise PyrunError("ps: executable file not found in $PATH") from None
    except subprocess.CalledProcessError as e:
        raise PyrunError("ps: %s" % (e.stderr.decode().strip() or "exit status %d" % e.returncode)) from None
    lines = out.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise PyrunError("couldn't find PID field in ps output")
    col = header.index("PID")
    wanted = set(pids)
    keep = [lines[0]] + [ln for ln in lines[1:] if len(ln.split()) > col and ln.split()[col].isdigit()
                         and int(ln.split()[col]) in wanted]
    return "\n".join(keep) + "\n"
