"""The command-line surface that needs no container: flags, spec, state/list of nothing, errors, logs."""
import json
import os
import re
import subprocess
import sys

import pytest

from runtime.cli import GLOBAL_FLAGS, parse_flags, UsageError
from runtime.commands import parse_signal
from runtime.errors import PyrunError


def pyrun(*args, root, cwd=None, env=None):
    p = subprocess.run([sys.executable, "-m", "runtime", "--root", str(root), *map(str, args)],
                       capture_output=True, cwd=cwd, env=env, stdin=subprocess.DEVNULL, timeout=60)
    p.out, p.err = p.stdout.decode(), p.stderr.decode()
    return p


def test_go_style_flags():
    opts, rest = parse_flags(GLOBAL_FLAGS, ["--root=/x", "-debug", "--log", "f", "state", "--root", "y"])
    assert opts == {"root": "/x", "debug": True, "log": "f"}
    assert rest == ["state", "--root", "y"]


def test_unknown_flag_is_a_usage_error():
    with pytest.raises(UsageError, match="flag provided but not defined: -nope"):
        parse_flags(GLOBAL_FLAGS, ["--nope"])


@pytest.mark.parametrize("text,num", [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("9", 9), ("TERM", 15),
                                      ("SIGUSR1", 10), ("0", 0)])
def test_signal_names_and_numbers(text, num):
    assert parse_signal(text) == num


@pytest.mark.parametrize("text", ["NOPE", "SIG", "65", "-1", ""])
def test_bad_signals(text):
    with pytest.raises(PyrunError, match="unknown signal"):
        parse_signal(text)


def test_version_has_runc_shape(tmp_path):
    p = pyrun("--version", root=tmp_path)
    lines = p.out.splitlines()
    assert p.returncode == 0
    assert lines[0].startswith("pyrun version ")
    assert lines[1].startswith("commit: ") and lines[2] == "spec: 1.3.0"


def test_help_lists_every_command(tmp_path):
    p = pyrun("--help", root=tmp_path)
    assert p.returncode == 0
    for name in ("create", "start", "run", "state", "kill", "delete", "exec", "ps", "list", "pause",
                 "resume", "update", "events", "spec", "features"):
        assert name in p.out


def test_state_of_missing_container(tmp_path):
    p = pyrun("state", "nope", root=tmp_path)
    assert p.returncode == 1
    assert "container does not exist" in p.err
    assert "Traceback" not in p.err and p.out == ""


@pytest.mark.parametrize("cid", ["../../etc", "a/b", ".."])
def test_state_refuses_path_like_ids(tmp_path, cid):
    p = pyrun("state", cid, root=tmp_path)
    assert p.returncode == 1
    assert "invalid container id" in p.err
    assert p.err.count("\n") == 1


def test_list_of_nothing(tmp_path):
    p = pyrun("list", root=tmp_path)
    assert p.returncode == 0
    assert p.out.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert pyrun("list", "--format", "json", root=tmp_path).out == "null\n"
    assert pyrun("list", "-q", root=tmp_path).out == ""
    bad = pyrun("list", "--format", "yaml", root=tmp_path)
    assert bad.returncode == 1 and "invalid format" in bad.err


def test_spec_writes_runc_defaults(tmp_path):
    p = pyrun("spec", "--bundle", tmp_path, root=tmp_path / "root")
    assert p.returncode == 0, p.err
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["ociVersion"] == "1.3.0"
    assert cfg["process"]["args"] == ["sh"] and cfg["process"]["terminal"] is True
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert [n["type"] for n in cfg["linux"]["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    assert "gid=5" in cfg["mounts"][2]["options"]
    again = pyrun("spec", "--bundle", tmp_path, root=tmp_path / "root")
    assert again.returncode == 1 and "exists" in again.err


def test_spec_rootless_maps_the_caller(tmp_path):
    p = pyrun("spec", "--rootless", cwd=tmp_path, root=tmp_path / "root")
    assert p.returncode == 0, p.err
    cfg = json.loads((tmp_path / "config.json").read_text())
    types = [n["type"] for n in cfg["linux"]["namespaces"]]
    assert "user" in types and "network" not in types
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert "resources" not in cfg["linux"]


def test_spec_matches_runc_when_runc_is_there(tmp_path):
    import shutil

    if not shutil.which("runc"):
        pytest.skip("runc not installed")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for rootless in ([], ["--rootless"]):
        for d in ("a", "b"):
            (tmp_path / d / "config.json").unlink(missing_ok=True)
        subprocess.run(["runc", "spec", *rootless], cwd=tmp_path / "a", check=True)
        assert pyrun("spec", *rootless, cwd=tmp_path / "b", root=tmp_path / "root").returncode == 0
        ours = json.loads((tmp_path / "b" / "config.json").read_text())
        theirs = json.loads((tmp_path / "a" / "config.json").read_text())
        for doc in (ours, theirs):
            doc.pop("ociVersion")
            doc.pop("hostname")
        assert ours == theirs


def test_features_document_validates(tmp_path):
    from runtime.spec.validate import validate

    p = pyrun("features", root=tmp_path)
    assert p.returncode == 0, p.err
    doc = json.loads(p.out)
    validate(doc, "features")
    assert doc["ociVersionMin"] == "1.0.0" and doc["ociVersionMax"] == "1.3.0"
    assert sorted(doc["linux"]["namespaces"]) == sorted(
        ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"])


def test_errors_go_to_a_json_log(tmp_path):
    log = tmp_path / "log.json"
    p = pyrun("--log", log, "--log-format", "json", "state", "nope", root=tmp_path)
    assert p.returncode == 1
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and "does not exist" in entry["msg"]
    assert entry["time"].endswith("Z")
    assert p.err.strip() == entry["msg"]


def test_log_file_exists_even_after_a_usage_error(tmp_path):
    log = tmp_path / "log.json"
    p = pyrun("--log", log, "--log-format=json", "create", "--nope", "x", root=tmp_path)
    assert p.returncode != 0
    entry = json.loads(log.read_text().splitlines()[-1])
    assert "flag provided but not defined" in entry["msg"]


def test_unknown_command(tmp_path):
    p = pyrun("frobnicate", root=tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.err and p.err.strip()


def test_systemd_cgroup_flag_is_accepted(tmp_path):
    """--systemd-cgroup selects the systemd driver (runtime/cgroups/systemd.py); other commands run as usual."""
    p = pyrun("--systemd-cgroup", "state", "x", root=tmp_path)
    assert p.returncode == 1 and "does not exist" in p.err and p.err.count("\n") == 1, p.err


@pytest.mark.parametrize("args,words", [
    (["create"], "requires exactly 1 argument"),
    (["start"], "requires exactly 1 argument"),
    (["kill"], "requires a minimum of 1"),
    (["delete", "a", "b"], "requires exactly 1 argument"),
])
def test_argument_counts(tmp_path, args, words):
    p = pyrun(*args, root=tmp_path)
    assert p.returncode == 1 and words in p.err


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_lines_only_with_debug(tmp_path, fmt, capfd):
    """--debug: level=debug lines in --log-format, to the log file, or to stderr without one."""
    import json as _json

    from runtime.cli import Context

    log = str(tmp_path / "log")
    quiet = Context({"log": log, "log-format": fmt})
    quiet.log_debug("not written")
    loud = Context({"log": log, "log-format": fmt, "debug": True})
    loud.log_debug('config "x" loaded')
    lines = open(log).read().splitlines()
    assert len(lines) == 1, lines
    if fmt == "json":
        assert _json.loads(lines[0])["level"] == "debug" and _json.loads(lines[0])["msg"] == 'config "x" loaded'
    else:
        assert re.match(r'^time="[^"]+" level=debug msg="config \\"x\\" loaded"$', lines[0]), lines[0]
    assert capfd.readouterr().err == ""  # with --log, debug lines go to the log only
    Context({"log-format": fmt, "debug": True}).log_debug("to stderr")
    err = capfd.readouterr().err
    assert "to stderr" in err and ("level=debug" in err if fmt == "text" else '"level": "debug"' in err)
