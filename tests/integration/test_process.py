"""The container's process: identity, umask, cwd, env, rlimits, capabilities, no_new_privs, oom_score_adj,
and how args[0] is found."""
import resource

import pytest

from lifecycle_util import read

# Kernel numbering (include/uapi/linux/capability.h), written out here rather than taken from pyrun.
CAPS = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
        "CHECKPOINT_RESTORE"]


def mask(names) -> int:
    m = 0
    for n in names:
        m |= 1 << CAPS.index(n[4:] if n.startswith("CAP_") else n)
    return m


def status_fields(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k] = v.strip()
    return out


# -- identity -------------------------------------------------------------------------------------------
def test_user_gid_additional_gids(ct, sh):
    b = sh("grep -E '^(Uid|Gid|Groups):' /proc/self/status; id -u; id -g; id -G")
    b.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20, 30]}
    b.write()
    out = ct.output(b)
    st = status_fields(out)
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1001"] * 4
    assert sorted(map(int, st["Groups"].split())) == [10, 20, 30]
    lines = out.splitlines()
    assert lines[3:5] == ["1000", "1001"]
    assert sorted(map(int, lines[5].split())) == [10, 20, 30, 1001]


def test_root_user_has_no_supplementary_groups_by_default(ct, sh):
    out = ct.output(sh("grep -E '^(Uid|Gid|Groups):' /proc/self/status"))
    st = status_fields(out)
    assert st["Uid"].split() == ["0"] * 4 and st["Gid"].split() == ["0"] * 4
    assert st["Groups"] == "", "the host's groups must not leak into the container: %r" % st["Groups"]


def test_umask(ct, sh):
    b = sh("umask")
    b.process["user"]["umask"] = 0o027
    b.write()
    assert ct.output(b).strip() == "0027"
    b.process["user"].pop("umask")
    b.write()
    assert ct.output(b).strip() == "0022"


def test_cwd(ct, sh):
    b = sh("pwd")
    b.process["cwd"] = "/tmp"
    b.write()
    assert ct.output(b) == "/tmp\n"


def test_env_as_configured(ct, bundle, runc):
    """process.env exactly, plus HOME (from the image's /etc/passwd) when it is not given, as runc does."""
    b = bundle(args=["env"])
    b.process["env"] = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "WITH_EQ=a=b"]
    b.write()
    got = sorted(ct.output(b).splitlines())
    assert got == sorted(b.process["env"] + ["HOME=/root"])
    assert got == sorted(runc("run", "-b", b.path, "env-%d" % id(b), check=True).out.splitlines())
    b.process["env"].append("HOME=/elsewhere")
    b.write()
    assert sorted(ct.output(b).splitlines()) == sorted(b.process["env"])


def test_args_passed_verbatim(ct, bundle):
    b = bundle(args=["printf", "[%s]\\n", "two words", "", "$HOME", "*"])
    b.write()
    assert ct.output(b) == "[two words]\n[]\n[$HOME]\n[*]\n"


# -- rlimits --------------------------------------------------------------------------------------------
def test_rlimits(ct, sh):
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new_hard = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    b = sh("ulimit -n; ulimit -Hn; ulimit -c; ulimit -Hc")
    b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": new_hard // 2, "hard": new_hard},
                            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    b.write()
    assert ct.output(b).split() == [str(new_hard // 2), str(new_hard), "0", "0"]


def test_rlimit_hard_above_current_hard_is_refused(ct, sh):
    """Without CAP_SYS_RESOURCE a hard limit cannot be raised: create fails cleanly, like runc."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard != resource.RLIM_INFINITY, "test needs a finite RLIMIT_NOFILE hard limit"
    b = sh("true")
    b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1}]
    b.write()
    p = ct.pyrun("run", "-b", b.path, ct.id())
    if p.returncode == 0:
        # This machine lets us raise it (CAP_SYS_RESOURCE): then the container must really have it.
        b.process["args"] = ["sh", "-c", "ulimit -Hn"]
        b.write()
        assert ct.output(b).strip() == str(hard + 1)
        return
    assert p.returncode == 1 and "Traceback" not in p.err, p.err
    assert "rlimit" in p.err.lower(), p.err
    assert ct.pyrun.ids() == []


# -- capabilities ---------------------------------------------------------------------------------------
CAP_SCRIPT = "grep ^Cap /proc/self/status"
CAP_CONFIG = {
    "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_AUDIT_WRITE",
                 "CAP_SYS_CHROOT"],
    "effective": ["CAP_CHOWN", "CAP_KILL"],
    "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"],
    "inheritable": ["CAP_KILL", "CAP_SETUID"],
    "ambient": ["CAP_KILL"],
}


def _caps(out: str) -> dict:
    return {k: int(v, 16) for k, v in status_fields(out).items() if k.startswith("Cap")}


@pytest.mark.parametrize("nnp", [False, True])
def test_capabilities_root(ct, sh, runc, nnp):
    """uid 0 and execve (no file caps): permitted = effective = bounding | inheritable, ambient kept when
    both permitted and inheritable; bounding and inheritable as configured. With no_new_privs the exec
    cannot gain capabilities: permitted and effective stay within the configured permitted set."""
    b = sh(CAP_SCRIPT)
    b.process["capabilities"] = CAP_CONFIG
    b.process["noNewPrivileges"] = nnp
    b.write()
    caps = _caps(ct.output(b))
    bnd, inh, prm = mask(CAP_CONFIG["bounding"]), mask(CAP_CONFIG["inheritable"]), mask(CAP_CONFIG["permitted"])
    amb = mask(CAP_CONFIG["ambient"]) & prm & inh
    after = (bnd | inh) & prm if nnp else bnd | inh
    assert caps == {"CapBnd": bnd, "CapInh": inh, "CapPrm": after, "CapEff": after, "CapAmb": amb}
    assert caps == _caps(runc("run", "-b", b.path, "caps-root-%d" % id(b), check=True).out)


def test_capabilities_non_root(ct, sh, runc):
    """A non-root uid keeps after execve only its ambient set (in permitted and effective)."""
    b = sh(CAP_SCRIPT)
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.process["capabilities"] = CAP_CONFIG
    b.write()
    caps = _caps(ct.output(b))
    amb = mask(CAP_CONFIG["ambient"]) & mask(CAP_CONFIG["permitted"]) & mask(CAP_CONFIG["inheritable"])
    assert amb, "the test config must give an ambient capability"
    assert caps == {"CapBnd": mask(CAP_CONFIG["bounding"]), "CapInh": mask(CAP_CONFIG["inheritable"]),
                    "CapPrm": amb, "CapEff": amb, "CapAmb": amb}
    assert caps == _caps(runc("run", "-b", b.path, "caps-user-%d" % id(b), check=True).out)


def test_capabilities_default_spec(ct, sh, runc):
    """runc's default caps (ambient listed, inheritable empty: ambient cannot be raised)."""
    b = sh(CAP_SCRIPT)
    want = mask(b.process["capabilities"]["bounding"])
    caps = _caps(ct.output(b))
    assert caps == {"CapBnd": want, "CapInh": 0, "CapPrm": want, "CapEff": want, "CapAmb": 0}
    assert caps == _caps(runc("run", "-b", b.path, "caps-default-%d" % id(b), check=True).out)


def test_capabilities_empty_sets(ct, sh):
    b = sh(CAP_SCRIPT + "; chown 1 /tmp 2>&1 || echo chown-denied")
    b.process["capabilities"] = {k: [] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}
    b.write()
    out = ct.output(b)
    assert _caps(out) == {"CapBnd": 0, "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}
    assert "chown-denied" in out


def test_no_new_privileges(ct, sh):
    b = sh("grep ^NoNewPrivs /proc/self/status")
    assert ct.output(b).split() == ["NoNewPrivs:", "1"]  # the default spec sets it
    b.process["noNewPrivileges"] = False
    b.write()
    assert ct.output(b).split() == ["NoNewPrivs:", "0"]


def test_oom_score_adj(ct, sh):
    b = sh("cat /proc/self/oom_score_adj")
    assert ct.output(b).strip() == read("/proc/self/oom_score_adj").strip(), "unset: inherited"
    b.process["oomScoreAdj"] = 321
    b.write()
    assert ct.output(b).strip() == "321"


# -- args[0] lookup -------------------------------------------------------------------------------------
def test_args_looked_up_on_containers_path(ct, bundle):
    b = bundle(args=["echo", "found"])
    b.process["env"] = ["PATH=/nonexistent:/sbin:/bin"]
    b.write()
    assert ct.output(b) == "found\n"


def test_args_absolute_path(ct, bundle):
    b = bundle(args=["/bin/echo", "absolute"])
    b.process["env"] = []
    b.write()
    assert ct.output(b) == "absolute\n"


def test_args_relative_to_cwd(ct, bundle):
    b = bundle(args=["./echo", "relative"])
    b.process["cwd"] = "/bin"
    b.write()
    assert ct.output(b) == "relative\n"
