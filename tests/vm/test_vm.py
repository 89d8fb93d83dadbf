"""Real host shapes, in a VM (tests/vm/harness.py): pure cgroup2 with a plain init, and systemd as PID 1.
Each test boots QEMU, runs a pytest subset inside as root, and fails with the guest's failing lines.

Root tests (the harness shares this machine's / with the guest); under CI a skip is a failure. The VM
part of CI: about 16 minutes on 2 cores, most of it the conformance cases in two VMs side by side (see the
README)."""
from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile

import pytest

from tests.conftest import in_ci, require_root
from tests.vm import harness

pytestmark = pytest.mark.root

PY = sys.executable
CONFORMANCE_TIMEOUT = 1200
CONFORMANCE_VMS = min(2, os.cpu_count() or 1)
# v1-only tests of tests/integration/test_cgroups.py and test_cgroup_exec.py: they skip on v2, and a skip
# inside the guest is a failure under CI. The eBPF device program is tested by its own tests.
V1_ONLY = ("tests/integration/test_cgroups.py::test_devices_list_matches_runc",
           "tests/integration/test_cgroups.py::test_devices_default_whitelist_without_rules_and_privileged",
           "tests/integration/test_cgroup_exec.py::test_update_of_device_rules_has_no_deny_all_window",
           "tests/integration/test_cgroup_exec.py::test_unified_on_v1_is_an_invalid_configuration")


def _job_dirs() -> list:
    return glob.glob(os.path.join(tempfile.gettempdir(), harness.JOB_PREFIX + "*"))


@pytest.fixture(autouse=True)
def vm_host():
    """Needs root and QEMU; afterwards no emulator of ours runs and no job directory is left."""
    require_root()
    if shutil.which(harness.QEMU) is None:
        pytest.skip("%s is not installed (Debian: qemu-system-x86)" % harness.QEMU)
    before = set(_job_dirs())
    assert not harness.leftover_qemus(), "an emulator from an earlier run is still running"
    yield
    assert not harness.leftover_qemus(), "the VM was not stopped"
    assert set(_job_dirs()) <= before, "job directories left: %s" % (set(_job_dirs()) - before)


def _guest_env() -> dict:
    return {"CI": "true" if in_ci() else "", "PYTHONDONTWRITEBYTECODE": "1"}


def _pytest_cmd(paths, deselect=()) -> str:
    return " ".join([PY, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", *paths,
                     *("--deselect=" + d for d in deselect)])


def _failure(res: harness.VmResult, flavour: str) -> str | None:
    """None if the guest's pytest passed, else what to fail the outer test with."""
    summary = (res.stdout.strip().splitlines() or ["(no output)"])[-1]
    print("guest (%s): status %s in %.1fs: %s" % (flavour, res.status, res.seconds, summary))
    if res.status == 0:
        return None
    out = res.stdout.splitlines()
    failing = [ln for ln in out if ln.startswith(("FAILED ", "ERROR ", "SKIPPED "))]
    return ("pytest in the %s VM: status %s\n%s\n--- guest output (tail) ---\n%s\n--- stderr ---\n%s%s"
            % (flavour, res.status, "\n".join(failing) or "(no FAILED lines)", "\n".join(out[-80:]),
               res.stderr[-3000:], "" if res.status is not None else "\n--- console ---\n" + res.console[-3000:]))


def _pytest_in_vm(paths, flavour: str, timeout: float, deselect=()) -> harness.VmResult:
    res = harness.run(_pytest_cmd(paths, deselect), flavour=flavour, timeout=timeout, env=_guest_env())
    failure = _failure(res, flavour)
    if failure:
        pytest.fail(failure, pytrace=False)
    return res


# -- the harness itself ----------------------------------------------------------------------------------
def test_vm_reports_status_output_and_pure_cgroup2():
    res = harness.run("echo out; echo err >&2; cat /sys/fs/cgroup/cgroup.subtree_control; "
                      "stat -f -c %T /sys/fs/cgroup; pwd; test -w . && echo writable; exit 7", timeout=120)
    assert res.status == 7, res.__dict__
    lines = res.stdout.splitlines()
    assert lines[0] == "out" and res.stderr.strip() == "err", res.__dict__
    assert {"cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma"} <= set(lines[1].split()), lines
    assert lines[2] == "cgroup2fs", lines
    assert lines[3] == harness.REPO and lines[4] == "writable", lines  # the checkout, writable (overlay)


def test_vm_past_its_time_limit_is_killed():
    with pytest.raises(harness.VmError, match="did not finish within 12s"):
        harness.run("echo started; sleep 600", timeout=12)


# -- pure cgroup2, plain init ------------------------------------------------------------------------------
def test_pure_cgroup2_in_vm():
    res = _pytest_in_vm(["tests/vm/guest/test_cgroup2.py", "tests/integration/test_cgroups.py",
                         "tests/integration/test_cgroup_exec.py", "tests/security/test_devices_v2.py"], "plain",
                        timeout=480, deselect=V1_ONLY)
    assert " passed" in res.stdout and " failed" not in res.stdout, res.stdout[-2000:]


# -- the conformance cases against runc, on pure cgroup2 ------------------------------------------------------
def test_conformance_on_pure_cgroup2_in_vm():
    """tests/conformance inside plain VMs: runc and pyrun compared on pure cgroup v2, every case (those about
    v1 files with their v2 variant, cases.py). An unmarked difference there fails here. The cases are split
    over CONFORMANCE_VMS emulators side by side (each uses one host CPU: TCG, single-threaded)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        env = dict(_guest_env(), PYRUN_CF_SHARD="%d/%d" % (i, CONFORMANCE_VMS))
        return harness.run(_pytest_cmd(["tests/conformance/test_conformance.py"]), flavour="plain",
                           timeout=CONFORMANCE_TIMEOUT, env=env)

    with ThreadPoolExecutor(CONFORMANCE_VMS) as pool:
        results = list(pool.map(one, range(CONFORMANCE_VMS)))
    failures = [f for f in (_failure(r, "plain, shard %d/%d" % (i, CONFORMANCE_VMS))
                            for i, r in enumerate(results)) if f]
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    for res in results:
        assert " passed" in res.stdout and " failed" not in res.stdout, res.stdout[-2000:]


# -- systemd as PID 1 ----------------------------------------------------------------------------------------
def test_systemd_host_in_vm():
    """The systemd driver against runc's, and containerd (SystemdCgroup) and podman (--cgroup-manager
    systemd) driving pyrun."""
    res = _pytest_in_vm(["tests/vm/guest/test_systemd.py", "tests/vm/guest/test_clients_systemd.py"], "systemd",
                        timeout=600)
    assert " passed" in res.stdout and " failed" not in res.stdout, res.stdout[-2000:]


def test_rootless_user_session_in_vm():
    """A real user's systemd session with a delegated cgroup2 subtree: limits applied rootless."""
    res = _pytest_in_vm(["tests/vm/guest/test_rootless.py"], "systemd", timeout=300)
    assert " passed" in res.stdout and " failed" not in res.stdout, res.stdout[-2000:]
