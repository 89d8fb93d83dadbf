"""Differential conformance harness: run one case under runc (the reference) and under pyrun, side by side,
and compare what a user or a client would see.

A case is a config mutation applied to the base config (pyrun's default spec, non-interactive, rooted at the
shared busybox rootfs), a probe run as the container's process, and a sequence of CLI steps. Each runtime
gets its own state root, work directory, bundle and container IDs (`<token>-<case>-rc` / `-py`, so their
cgroups never clash); everything runtime-specific is normalised away before comparing:

- every CLI step: its exit code, its (normalised) stdout, and for a failure that both runtimes report, that
  each printed something on stderr;
- `run` / `exec` / the container's output: the probe's stdout after normalisation (IDs, paths, namespace
  inodes, mount IDs and device numbers, host PIDs in JSON);
- `state`: the keys (in order), status, id, bundle, rootfs, pid zero or not, `created` as RFC3339Nano;
- `list --format json`: null or, per container, the keys in order and the same fields as `state`;
- `ps --format json`: a JSON array of integers, how many, and whether it holds the init's pid.

Pseudo-steps (names starting with `@`) run in the harness: wait for a status, read a file the case wrote on
the host (hook state JSON, a pid file), the container's output so far, a background `run` and its end.
"""
from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from tests import leaks
from tests.conftest import EXAMPLE_ROOTFS, REPO, Runtime, base_config, pyrun_argv

RUNC = "/usr/sbin/runc"
SUFFIX = {"runc": "rc", "pyrun": "py"}  # same length, so table output lines up the same way
STEP_TIMEOUT = 30


# -- cases ----------------------------------------------------------------------------------------------
class Case:
    """name: unique (the test id). what: one line for the report. config: a dict merged into the base
    config (lists replace) or a callable(cfg, ctx) editing it. probe: a shell script (run with `sh -c`) or
    an argv list. steps: CLI steps (tuples; `{id}`, `{id:x}`, `{bundle}`, `{dir}` are substituted), RUN by
    default. expect: a regex that runc's combined (normalised) results must match, so a probe that tests
    nothing cannot pass. differs: the reason for a known, deliberate difference (the case must still
    differ: a stale mark fails). pyrun_expect: for a marked case, required: a regex pyrun's combined
    results must match, so the case also asserts what pyrun does instead. setup(ctx): prepares per-runtime host state (ctx.defer(fn) to undo it).
    files: {name: text or JSON-able} written into the per-runtime work dir ({dir}), placeholders
    substituted. wrap: an argv prefix for the runtime's CLI steps (a private mount namespace, say, for a
    case whose runtime mounts in its own namespace).

    on: {host shape: {field: value}}, what the case is on a host of another shape (SHAPES): cgroup files
    live elsewhere on pure cgroup2, so a case about them there has a probe, an expectation or a
    difference of its own. The case still runs, under both runtimes, on every shape: a per-host
    expectation says what both must show there, never that the case is left out."""

    FIELDS = ("what", "config", "probe", "steps", "expect", "differs", "pyrun_expect", "setup", "files", "norm",
              "tmp", "wrap")

    def __init__(self, name, what, config=None, probe=None, steps=None, expect=None, differs=None, setup=None,
                 files=None, norm=(), tmp=False, pyrun_expect=None, wrap=(), on=None):
        if differs and not pyrun_expect:
            raise ValueError("case %s: a marked difference must say what pyrun does instead (pyrun_expect)" % name)
        self.name, self.what, self.config, self.probe = name, what, config, probe
        self.pyrun_expect = pyrun_expect
        self.steps = [tuple(s) for s in (steps or [RUN])]
        self.expect, self.differs, self.setup, self.files, self.norm = expect, differs, setup, files or {}, norm
        self.tmp = tmp  # add a tmpfs on /tmp (the shared rootfs is read-only and must stay untouched)
        self.wrap = list(wrap)
        self.on = on or {}
        for shape, fields in self.on.items():
            if shape not in SHAPES:
                raise ValueError("case %s: unknown host shape %r (known: %s)" % (name, shape, ", ".join(SHAPES)))
            bad = set(fields) - set(self.FIELDS)
            if bad:
                raise ValueError("case %s: on[%r]: not case fields: %s" % (name, shape, ", ".join(sorted(bad))))
            if fields.get("differs", differs) and not fields.get("pyrun_expect", pyrun_expect):
                raise ValueError("case %s: on[%r]: a marked difference must say what pyrun does instead "
                                 "(pyrun_expect)" % (name, shape))
        self.shape = None  # the host shape this case was resolved for (for_host)

    def for_host(self, shape: str) -> "Case":
        """This case as it runs on a host of `shape`: its own fields with that shape's `on` entries over them."""
        c = copy.copy(self)
        for k, v in self.on.get(shape, {}).items():
            setattr(c, k, [tuple(s) for s in v] if k == "steps" else list(v) if k == "wrap" else v)
        c.shape = shape
        return c

    def __repr__(self):
        return "Case(%s)" % self.name


# The host shapes a case may say something of its own about: "hybrid" (cgroup v1 controllers with an
# empty cgroup2 beside them, this project's development machine), "v2" (pure cgroup2, every current
# distribution; the plain VM of tests/vm), "v1" (v1 controllers only).
SHAPES = ("hybrid", "v2", "v1")


def shard(cases: list, spec: str | None = None) -> list:
    """The cases of one shard, "I/N" (every N-th from the I-th; default $PYRUN_CF_SHARD, none: all): the
    VM runs split them over emulators running side by side."""
    spec = spec if spec is not None else os.environ.get("PYRUN_CF_SHARD", "")
    if not spec:
        return list(cases)
    i, _, n = spec.partition("/")
    if not (i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
        raise ValueError("PYRUN_CF_SHARD=%r: expected I/N with 0 <= I < N" % spec)
    return list(cases)[int(i)::int(n)]


def host_shape() -> str:
    """This host's shape, read the way runc decides it (what is mounted at /sys/fs/cgroup)."""
    from runtime.cgroups import mounts

    return mounts.detect().mode


RUN = ("run", "--bundle", "{bundle}", "{id}")
RUN_D = ("run", "-d", "--bundle", "{bundle}", "{id}")
CREATE = ("create", "--bundle", "{bundle}", "{id}")
START = ("start", "{id}")
STATE = ("state", "{id}")
DELETE = ("delete", "{id}")
DELETE_F = ("delete", "--force", "{id}")
OUTPUT = ("@output",)


def wait(status):
    return ("@wait", status)


def kill(sig=None, *flags):
    return ("kill", *flags, "{id}") + ((sig,) if sig else ())


# -- per-runtime context ---------------------------------------------------------------------------------
class Ctx:
    def __init__(self, harness, case, rt):
        self.case, self.rt, self.name = case, rt, rt.name
        self.token = harness.token
        self.dir = os.path.join(harness.workdir, case.name, SUFFIX[rt.name])
        self.bundle = os.path.join(self.dir, "bundle")
        self.rootfs = harness.rootfs
        self.extra: dict[str, str] = {}      # more placeholders, from setup
        self.labels: dict[str, str] = {}     # host strings -> stable labels, from setup
        self._undo: list = []
        self.bg = None
        self.output_file = None
        os.makedirs(self.bundle, exist_ok=True)
        # The work dir as mountinfo's root field names it in a bind mount's line: relative to the file
        # system it is on (the VM's /tmp is a tmpfs of its own; here it is the root's).
        self.dir_in_fs = path_in_fs(self.dir)

    def cid(self, key: str = "") -> str:
        return "%s-%s%s-%s" % (self.token, self.case.name, ("-" + key) if key else "", SUFFIX[self.name])

    def ids(self) -> list[str]:
        """Every container ID this case may have used (so leaks can be looked for)."""
        keys = {""} | set(re.findall(r"\{id:([\w.-]+)\}", json.dumps([list(s) for s in self.case.steps])))
        return [self.cid(k) for k in sorted(keys)]

    def defer(self, fn) -> None:
        self._undo.append(fn)

    def undo(self) -> None:
        while self._undo:
            try:
                self._undo.pop()()
            except Exception:
                pass

    def sub(self, s: str) -> str:
        if "{" not in s:
            return s
        s = re.sub(r"\{id:([\w.-]+)\}", lambda m: self.cid(m.group(1)), s)
        for k, v in (("{id}", self.cid()), ("{bundle}", self.bundle), ("{dir}", self.dir),
                     ("{rootfs}", self.rootfs), ("{rt}", SUFFIX[self.name])):
            s = s.replace(k, v)
        for k, v in self.extra.items():
            s = s.replace("{%s}" % k, v)
        return s

    def sub_all(self, obj):
        if isinstance(obj, str):
            return self.sub(obj)
        if isinstance(obj, list):
            return [self.sub_all(x) for x in obj]
        if isinstance(obj, dict):
            return {k: self.sub_all(v) for k, v in obj.items()}
        return obj


def path_in_fs(path: str) -> str:
    """`path` relative to the mount it is on (the mount's own root taken as /), as mountinfo shows a bind
    mount's source."""
    best, root = "/", "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4]
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, root = mp, fields[3]
    rel = os.path.relpath(path, best)
    return os.path.normpath(os.path.join(root, rel))


def merge(dst: dict, patch: dict) -> dict:
    """Merge `patch` into `dst`: dicts recursively, anything else (lists included) replaces; None deletes."""
    for k, v in patch.items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


TMP_MOUNT = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}


def build_config(case: Case, ctx: Ctx) -> dict:
    cfg = base_config(ctx.rootfs)
    if case.probe is not None:
        cfg["process"]["args"] = ["sh", "-c", case.probe] if isinstance(case.probe, str) else list(case.probe)
    if case.tmp:
        cfg["mounts"].append(copy.deepcopy(TMP_MOUNT))
    if callable(case.config):
        case.config(cfg, ctx)
    elif case.config:
        merge(cfg, case.config)
    return ctx.sub_all(cfg)


# -- normalisation ---------------------------------------------------------------------------------------
_MOUNTINFO = re.compile(r"^(\d+) (\d+) (\d+):(\d+) ", re.M)
_NS = re.compile(r"\b(\w+):\[(\d+)\]")
_RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def host_ns() -> dict[str, str]:
    out = {}
    for n in os.listdir("/proc/self/ns"):
        try:
            out[os.readlink("/proc/self/ns/" + n)] = "host"
        except OSError:
            pass
    return out


def normalise(text: str, ctx: Ctx, norm=()) -> str:
    for cid in sorted(ctx.ids(), key=len, reverse=True):
        key = cid[len(ctx.token) + len(ctx.case.name) + 2:-3]
        text = text.replace(cid, "<ID%s>" % ((":" + key) if key else ""))
    for path, label in ((ctx.bundle, "<BUNDLE>"), (ctx.dir, "<DIR>"), (ctx.rt.root, "<ROOT>"),
                        (ctx.dir_in_fs, "<DIR>")):
        text = text.replace(path, label)
    for s, label in sorted(ctx.labels.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(s, label)
    # Namespace links: the host's own, those a setup made (labels), the rest numbered by first appearance.
    seen: dict[str, str] = {}
    known = host_ns()

    def ns(m):
        full = m.group(0)
        if full in known:
            return "%s:[host]" % m.group(1)
        if m.group(2) not in seen:
            seen[m.group(2)] = "new%d" % (len(seen) + 1)
        return "%s:[%s]" % (m.group(1), seen[m.group(2)])

    text = _NS.sub(ns, text)
    # mountinfo: mount and parent IDs, device numbers, peer group numbers.
    if _MOUNTINFO.search(text):
        text = _MOUNTINFO.sub("M P D:D ", text)
        text = re.sub(r"\b(shared|master|propagate_from):\d+", r"\1:N", text)
    if "pids" in norm:
        text = re.sub(r"\b\d{2,}\b", "<N>", text)
    return text


# Stats fields runc leaves out when zero (omitempty) whose being zero depends on the run, not on the
# runtime: memory "cache" is the page cache charged to the container's cgroup, and a page is charged to
# the cgroup that first reads it, so whichever of the two containers (runc's, pyrun's) runs the probe's
# binary first, or reads it again after reclaim, has it. The shape compared leaves them out for both;
# tests/unit/test_cgroup_stats.py checks that pyrun reports them when they are not zero.
_USAGE_DEPENDENT = {"memory": {"cache"}}


def summarize_state(doc, ctx: Ctx, init_pid=None) -> str:
    """The parts of a state document that must agree: keys in order and normalised values."""
    if not isinstance(doc, dict):
        return "not an object: %r" % (doc,)
    parts = ["keys=" + ",".join(doc)]
    for k, v in doc.items():
        if k == "ociVersion":
            continue
        if k == "pid":
            v = "0" if v == 0 else ("<PID>" if isinstance(v, int) and v > 0 else "bad:%r" % (v,))
        elif k == "created":
            v = "<RFC3339NANO>" if isinstance(v, str) and _RFC3339NANO.match(v) else "bad:%r" % (v,)
        elif k == "rootfs":
            v = "<ROOTFS>" if v == ctx.rootfs else v
        elif isinstance(v, str):
            v = normalise(v, ctx)
        else:
            v = json.dumps(v, sort_keys=True)
        parts.append("%s=%s" % (k, v))
    return " ".join(parts)


def summarize_hook_state(doc, ctx: Ctx) -> str:
    """A hook's stdin: the state keys it got (sorted: runtime-spec fixes no order) and their values."""
    if not isinstance(doc, dict):
        return "not an object: %r" % (doc,)
    return summarize_state({k: doc[k] for k in sorted(doc)}, ctx)


# -- running ---------------------------------------------------------------------------------------------
class StepResult:
    def __init__(self, label, code, out="", err="", raw_err=""):
        self.label, self.code, self.out, self.err = label, code, out, err
        self.raw_err = raw_err

    def as_dict(self):
        return {"label": self.label, "exit": self.code, "out": self.out, "stderr": bool(self.err.strip())}

    def brief(self) -> str:
        s = "%s: %s" % (self.label.split()[0], self.code)
        return s


class Harness:
    def __init__(self, rootfs: str | None = None):
        self.token = "cf" + secrets.token_hex(2)
        self.rootfs = rootfs or find_rootfs()
        self.workdir = "/tmp/pyrun-cf-" + self.token
        self.shape = host_shape()
        self.runtimes = {
            "runc": lambda: Runtime([RUNC], "/run/%s-runc" % self.token, "runc"),
            "pyrun": lambda: Runtime(pyrun_argv(), "/run/%s-pyrn" % self.token, "pyrun"),
        }
        os.makedirs(self.workdir, exist_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run_case(self, case: Case) -> "CaseResult":
        case = case.for_host(self.shape)
        with ThreadPoolExecutor(2) as pool:
            futs = {name: pool.submit(self._run_one, case, name) for name in ("runc", "pyrun")}
            res = {name: f.result() for name, f in futs.items()}
        return CaseResult(case, res["runc"], res["pyrun"])

    def _run_one(self, case: Case, name: str):
        rt = self.runtimes[name]()
        ctx = Ctx(self, case, rt)
        steps: list[StepResult] = []
        problems: list[str] = []
        try:
            if case.setup:
                case.setup(ctx)
            for fname, content in case.files.items():
                content = ctx.sub_all(content)
                with open(os.path.join(ctx.dir, fname), "w") as f:
                    f.write(content if isinstance(content, str) else json.dumps(content))
            cfg = build_config(case, ctx)
            with open(os.path.join(ctx.bundle, "config.json"), "w") as f:
                json.dump(cfg, f, indent=1)
            for i, step in enumerate(case.steps):
                steps.append(self._step(ctx, i, step))
        except Exception as e:  # a harness failure is reported as such, for both sides alike
            steps.append(StepResult("harness-error", -1, "%s: %s" % (type(e).__name__, e)))
        finally:
            problems += self._cleanup(ctx)
        return steps, problems

    # The steps ------------------------------------------------------------------------------------------
    def _cli(self, ctx: Ctx, i: int, args: list[str], background=False):
        out = os.path.join(ctx.dir, "step%d.out" % i)
        err = os.path.join(ctx.dir, "step%d.err" % i)
        argv = ctx.case.wrap + ctx.rt.argv + ["--root", ctx.rt.root] + args
        with open(out, "wb") as fo, open(err, "wb") as fe:
            if background:
                return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, cwd=ctx.dir,
                                        start_new_session=True), out, err
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, cwd=ctx.dir,
                                   timeout=STEP_TIMEOUT)
                code = p.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        return code, out, err

    def _step(self, ctx: Ctx, i: int, step: tuple) -> StepResult:
        args = [ctx.sub(a) for a in step]
        label = normalise(" ".join(args), ctx)
        cmd = args[0]
        if cmd == "@wait":
            return StepResult(label, 0, self._wait(ctx, args[1]))
        if cmd == "@sleep":
            time.sleep(float(args[1]))
            return StepResult(label, 0)
        if cmd == "@await-output":  # until the container has printed TEXT (say, after setting a trap)
            end = time.monotonic() + 10
            while args[1] not in _read(ctx.output_file) and time.monotonic() < end:
                time.sleep(0.02)
            return StepResult(label, 0, "seen" if args[1] in _read(ctx.output_file) else "not seen")
        if cmd == "@output":
            return StepResult(label, 0, self._read_output(ctx))
        if cmd == "@file":
            return StepResult(label, 0, self._read_file(ctx, args[1]))
        if cmd == "@await":  # a file something on the host (a console reader) writes when done
            end = time.monotonic() + 10
            while not os.path.exists(os.path.join(ctx.dir, args[1])) and time.monotonic() < end:
                time.sleep(0.02)
            return StepResult(label, 0, self._read_file(ctx, args[1]))
        if cmd == "@json":  # a JSON document the runtime wrote (spec): sorted, runtime names normalised
            return StepResult(label, 0, self._read_json_doc(ctx, args[1]))
        if cmd == "@logshape":  # a --log file in JSON: per line, its keys, level and message
            return StepResult(label, 0, self._log_shape(ctx, args[1]))
        if cmd == "@loglevels":  # a log (text or JSON, --log or a step's stderr): levels seen, lines well formed
            return StepResult(label, 0, self._log_levels(ctx, args[1]))
        if cmd == "@exists":
            return StepResult(label, 0, "yes" if os.path.exists(os.path.join(ctx.dir, args[1])) else "no")
        if cmd == "@pidfile":
            return StepResult(label, 0, self._check_pidfile(ctx, args[1]))
        if cmd == "@run&":
            ctx.bg, out, _ = self._cli(ctx, i, args[1:], background=True)
            ctx.output_file = out
            return StepResult(label, 0)
        if cmd == "@join":
            try:
                code = ctx.bg.wait(timeout=STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(ctx.bg.pid, signal.SIGKILL)
                ctx.bg.wait()
                code = "timeout"
            return StepResult(label, code, self._read_output(ctx))
        if cmd == "@signal-run":
            ctx.bg.send_signal(getattr(signal, "SIG" + args[1]))
            return StepResult(label, 0)
        if cmd.startswith("@"):
            raise ValueError("unknown pseudo-step %s" % cmd)
        code, out_path, err_path = self._cli(ctx, i, args)
        raw_err = _read(err_path)
        sub = args[0]
        if sub == "create" or (sub == "run" and ("-d" in args or "--detach" in args)):
            ctx.output_file = out_path
            out = ""
        else:
            out = self._summarize(ctx, sub, args, _read(out_path))
        return StepResult(label, code, out, normalise(raw_err, ctx), raw_err)

    def _summarize(self, ctx, sub, args, text) -> str:
        if sub == "state" and text.strip():
            try:
                return summarize_state(json.loads(text), ctx)
            except ValueError:
                return "not JSON: " + normalise(text, ctx)
        if sub == "list" and "json" in args:
            try:
                doc = json.loads(text)
            except ValueError:
                return "not JSON: " + normalise(text, ctx)
            if doc is None:
                return "null" + ("" if text == "null\n" else " (text %r)" % text)
            return "\n".join(summarize_state(d, ctx) for d in doc)
        if sub == "list":
            # columns: widths depend on PIDs and times; compare the cells
            lines = [normalise(ln, ctx).split() for ln in text.splitlines()]
            return "\n".join(" ".join(_cell(c) for c in ln) for ln in lines)
        if sub == "events":
            out = []
            for line in text.splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    out.append("not JSON: " + normalise(line, ctx))
                    continue
                data = ev.get("data")
                shape = ""
                if isinstance(data, dict):
                    shape = " data=" + ",".join(
                        "%s%s" % (k, "{%s}" % ",".join(sorted(set(v) - _USAGE_DEPENDENT.get(k, set())))
                                  if isinstance(v, dict) else "")
                        for k, v in sorted(data.items()))
                out.append("keys=%s type=%s id=%s%s" % (",".join(ev), ev.get("type"), normalise(str(ev.get("id")), ctx),
                                                        shape))
            return "\n".join(out)
        if sub == "ps" and "json" in args:
            try:
                doc = json.loads(text)
            except ValueError:
                return "not JSON: " + normalise(text, ctx)
            if not isinstance(doc, list) or not all(isinstance(p, int) for p in doc):
                return "not a list of pids: %r" % (doc,)
            init = self._init_pid(ctx, args[-1])
            return "%d pids%s" % (len(doc), ", init among them" if init in doc else "")
        if sub == "ps":
            lines = text.splitlines()
            if not lines:
                return ""
            rows = [ln.split(None, 7) for ln in lines[1:]]
            return "\n".join([" ".join(lines[0].split())] + ["%s %s" % (_cell(r[0]), r[-1]) for r in rows if r])
        return normalise(text, ctx, ctx.case.norm)

    def _init_pid(self, ctx, cid):
        try:
            return json.loads(ctx.rt("state", cid).out)["pid"]
        except (ValueError, KeyError):
            return None

    def _wait(self, ctx: Ctx, status: str, timeout: float = 10) -> str:
        end = time.monotonic() + timeout
        last = "?"
        while time.monotonic() < end:
            p = ctx.rt("state", ctx.cid())
            if p.returncode != 0:
                last = "missing"
            else:
                try:
                    last = json.loads(p.out)["status"]
                except (ValueError, KeyError):
                    last = "bad state"
            if last == status:
                break
            time.sleep(0.02)
        return last

    def _read_output(self, ctx: Ctx) -> str:
        return normalise(_read(ctx.output_file), ctx, ctx.case.norm) if ctx.output_file else "<no output file>"

    def _read_file(self, ctx: Ctx, name: str) -> str:
        path = os.path.join(ctx.dir, name)
        if not os.path.exists(path):
            return "<missing>"
        text = _read(path)
        try:
            doc = json.loads(text)
        except ValueError:
            return normalise(text, ctx, ctx.case.norm)
        return summarize_hook_state(doc, ctx)

    def _read_json_doc(self, ctx: Ctx, name: str) -> str:
        try:
            doc = json.loads(_read(os.path.join(ctx.dir, name)))
        except ValueError as e:
            return "not JSON: %s" % e
        if isinstance(doc, dict) and "ociVersion" in doc:
            doc["ociVersion"] = "<VERSION>"
        text = json.dumps(doc, indent=1, sort_keys=True)
        return re.sub(r'"(runc|pyrun)"', '"<RUNTIME>"', normalise(text, ctx))

    def _log_shape(self, ctx: Ctx, name: str) -> str:
        path = os.path.join(ctx.dir, name)
        if not os.path.exists(path):
            return "<missing>"
        out = []
        for line in _read(path).splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                out.append("not JSON: " + normalise(line, ctx))
                continue
            ok = isinstance(d.get("time"), str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", d["time"])
            out.append("keys=%s level=%s msg=%s time=%s" % (",".join(d), d.get("level"), normalise(str(d.get("msg")), ctx),
                                                         "RFC3339" if ok else repr(d.get("time"))))
        return "\n".join(out) or "<empty>"

    def _log_levels(self, ctx: Ctx, name: str) -> str:
        """The levels a log holds and whether every line is a log line (logrus text: time="..." level=L
        msg="..."; JSON: an object with time, level and msg). Messages differ between runtimes."""
        path = os.path.join(ctx.dir, name)
        if not os.path.exists(path):
            return "<missing>"
        levels, bad = set(), []
        for line in _read(path).splitlines():
            if line.startswith("{"):
                try:
                    d = json.loads(line)
                except ValueError:
                    d = {}
                if isinstance(d, dict) and {"time", "level", "msg"} <= set(d):
                    levels.add(d["level"])
                    continue
            else:
                m = re.match(r'^time="[^"]+" level=(\w+) msg="', line)
                if m:
                    levels.add(m.group(1))
                    continue
            bad.append(normalise(line, ctx))
        return "levels=%s%s" % (",".join(sorted(levels)) or "none", ("; not log lines: %r" % bad[:3]) if bad else "")

    def _check_pidfile(self, ctx: Ctx, name: str) -> str:
        path = os.path.join(ctx.dir, name)
        if not os.path.exists(path):
            return "<missing>"
        text = _read(path)
        if not text.isdigit():
            return "not digits only: %r" % text
        pid = self._init_pid(ctx, ctx.cid())
        return "digits only, %s the state's pid" % ("equals" if int(text) == pid else "differs from")

    # Clean-up --------------------------------------------------------------------------------------------
    def _cleanup(self, ctx: Ctx) -> list[str]:
        """Force-delete everything under the root, undo the setup, then look for leaks."""
        problems = []
        if ctx.bg is not None and ctx.bg.poll() is None:
            for cid in ctx.rt.ids():
                ctx.rt("kill", cid, "KILL")
            try:
                ctx.bg.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(ctx.bg.pid, signal.SIGKILL)
                ctx.bg.wait()
        ctx.rt.cleanup()
        ctx.undo()
        if os.path.exists(ctx.rt.root):
            problems.append("%s: state root left: %s" % (ctx.name, ctx.rt.root))
        for cid in ctx.ids():
            for path in cgroup_dirs(cid):
                # rmdir may lag the last process by a moment
                for _ in range(50):
                    if not os.path.exists(path):
                        break
                    time.sleep(0.02)
                else:
                    if ctx.name == "runc" and _remove_reference_leak(path):
                        # runc 1.1.5's own failure path can leave the cgroup of a create that failed in
                        # nsexec: its rmdir races the exit of its stage processes (seen in the slow VM).
                        # The reference's leak, not pyrun's: removed here, so that no case after this one
                        # meets it, and said.
                        warnings.warn("case %s: runc left its cgroup %s (removed by the harness)"
                                      % (ctx.case.name, path))
                        continue
                    problems.append("%s: cgroup left: %s" % (ctx.name, path))
        mounts = leaks.host_mounts([ctx.dir])
        if mounts:
            problems.append("%s: mounts left: %s" % (ctx.name, sorted(mounts)))
        strays = leaks.settle(lambda: leaks.stray_processes([ctx.dir], ctx.rt.root, ctx.ids()))
        if strays:
            problems.append("%s: processes left: %s" % (ctx.name, strays))
        return problems


def _expectation(name: str, pattern, steps, with_err=False) -> str | None:
    """None when `pattern` (a regex over '$ step -> code' lines, outputs and, with_err, 'stderr: ' lines)
    matches the runtime's results."""
    if pattern is None:
        return None
    text = "\n".join("$ %s -> %s\n%s%s" % (r.label, r.code, r.out, "".join(
        "\nstderr: " + ln for ln in r.err.splitlines()) if with_err else "") for r in steps)
    if re.search(pattern, text, re.M):
        return None
    return "%s's results do not match the case's expectation %r:\n%s" % (name, pattern, text)


def _cell(c: str) -> str:
    if c.isdigit():
        return "<N>"
    if _RFC3339NANO.match(c):
        return "<TIME>"
    return c


def _read(path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except (OSError, TypeError):
        return ""


def _remove_reference_leak(path: str, timeout: float = 5.0) -> bool:
    """Remove a cgroup directory the reference runtime left: once the processes still in it have exited
    (SIGKILLed when they outlast `timeout`), rmdir. False if it cannot be removed."""
    end = time.monotonic() + timeout
    killed = False
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            pass
        if time.monotonic() > end:
            if killed:
                return False
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            except OSError:
                return False
            killed, end = True, time.monotonic() + timeout
        time.sleep(0.05)


def cgroup_dirs(cid: str) -> list[str]:
    """Where a container named `cid` could have a cgroup: under each hierarchy's root, under this process's
    own cgroup there (runc nests relative paths under the caller's), and any cgroupsPath ending in it."""
    out = []
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            own[ctrls] = path
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, opts = fields[sep + 1], fields[sep + 3]
            mp = fields[4]
            if fstype == "cgroup2":
                key = ""
            elif fstype == "cgroup":
                key = ",".join(o for o in opts.split(",") if o not in ("rw", "ro") and "=" not in o or o.startswith("name="))
            else:
                continue
            for base in {"/", own.get(key, "/")}:
                out.append(os.path.join(mp, base.lstrip("/"), cid))
    return sorted(set(out))


def find_rootfs() -> str:
    if os.path.exists(os.path.join(EXAMPLE_ROOTFS, "bin", "busybox")):
        return EXAMPLE_ROOTFS
    d = "/tmp/pyrun-cf-rootfs"
    if not os.path.exists(os.path.join(d, "bin", "busybox")):
        subprocess.run(["sh", os.path.join(REPO, "examples", "busybox", "make-rootfs.sh"), d], check=True,
                       stdout=subprocess.DEVNULL)
    return d


# -- comparing -------------------------------------------------------------------------------------------
class CaseResult:
    def __init__(self, case: Case, runc, pyrun):
        self.case = case
        self.runc, self.runc_problems = runc
        self.pyrun, self.pyrun_problems = pyrun
        self.diffs = self._compare()
        self.expect_failure = _expectation("runc", case.expect, self.runc)
        self.pyrun_expect_failure = _expectation("pyrun", case.pyrun_expect, self.pyrun, with_err=True)

    def _compare(self) -> list[str]:
        diffs = []
        if len(self.runc) != len(self.pyrun):
            diffs.append("runc ran %d steps, pyrun %d" % (len(self.runc), len(self.pyrun)))
        for a, b in zip(self.runc, self.pyrun):
            if a.code != b.code:
                diffs.append("%s: exit code runc %s, pyrun %s%s" % (a.label, a.code, b.code, _errs(a, b)))
            if a.out != b.out:
                diffs.append("%s: output differs\n--- runc\n%s\n--- pyrun\n%s" % (a.label, a.out, b.out))
            if a.code not in (0, "timeout") and a.code == b.code and _runtime_failure(a):
                for name, r in (("runc", a), ("pyrun", b)):
                    if not r.err.strip():
                        diffs.append("%s: %s failed without a message on stderr" % (a.label, name))
        return diffs

    @property
    def matches(self) -> bool:
        return not self.diffs

    @property
    def problems(self) -> list[str]:
        return self.runc_problems + self.pyrun_problems

    def side(self, which: str) -> str:
        """A one-line summary for the report: exit codes, then the first output line that differs between the
        runtimes (or, when they agree, the first that says something)."""
        steps = self.runc if which == "runc" else self.pyrun
        other = self.pyrun if which == "runc" else self.runc
        codes = " ".join("%s" % (r.code,) for r in steps if not r.label.startswith("@") or r.label.startswith("@join"))
        first = ""
        for i, r in enumerate(steps):
            o = other[i].out.splitlines() if i < len(other) else []
            mine = r.out.splitlines()
            diff = [ln for j, ln in enumerate(mine) if j >= len(o) or o[j] != ln]
            if diff or len(o) > len(mine):
                first = (diff or ["(no output)"])[0]
                break
        if not first:
            outs = [r.out.strip() for r in steps if r.out.strip() and not r.label.startswith("@wait")]
            first = outs[0].splitlines()[0] if outs else ""
        first = " ".join(first.split())
        if len(first) > 70:
            first = first[:67] + "..."
        return "exit %s%s" % (codes or "-", ("; " + first) if first else "")

    def explain(self) -> str:
        lines = ["case %s: %s" % (self.case.name, self.case.what)]
        for name, steps in (("runc", self.runc), ("pyrun", self.pyrun)):
            lines.append("== %s" % name)
            for r in steps:
                lines.append("  $ %s -> %s" % (r.label, r.code))
                if r.out:
                    lines += ["    " + ln for ln in r.out.splitlines()]
                if r.raw_err.strip():
                    lines += ["    stderr: " + ln for ln in r.raw_err.strip().splitlines()[:5]]
        if self.diffs:
            lines.append("== differences")
            lines += self.diffs
        return "\n".join(lines)


def _runtime_failure(r: StepResult) -> bool:
    """A failure the runtime reports (not a foreground process's own exit code)."""
    words = r.label.split()
    if words[0].startswith("@"):
        return False
    if words[0] == "run" and "-d" not in words and "--detach" not in words:
        return False
    if words[0] == "exec" and "-d" not in words and "--detach" not in words:
        return r.code == 255
    return True


def _errs(a: StepResult, b: StepResult) -> str:
    s = ""
    for name, r in (("runc", a), ("pyrun", b)):
        if r.raw_err.strip():
            s += "\n  %s stderr: %s" % (name, r.raw_err.strip().splitlines()[-1][:300])
    return s

